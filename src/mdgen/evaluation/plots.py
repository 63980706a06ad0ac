"""PNG figures for the evaluation report (matplotlib, Agg backend: no display needed).

Each function draws one figure from arrays and writes it to `path`; none computes a metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mdgen.evaluation.decorrelation import RELAXATION_LEVEL, DecorrelationCurves  # noqa: E402

_REFERENCE_STYLE = {"color": "black", "label": "reference MD"}


def _grid(count: int, columns: int = 4, size: float = 2.6):
    rows = max(1, int(np.ceil(count / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size * 0.8), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, axes.flat


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def torsion_histograms(
    name: str,
    labels: Sequence[str],
    reference: np.ndarray,
    generated: np.ndarray,
    path: Path,
    bins: int = 100,
) -> Path:
    """Per-torsion densities, reference (T, F) vs generated (T', F) rad."""
    fig, axes = _grid(len(labels))
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    for f, (ax, label) in enumerate(zip(axes, labels)):
        ax.hist(reference[:, f], bins=edges, density=True, histtype="step", **_REFERENCE_STYLE)
        ax.hist(
            generated[:, f], bins=edges, density=True, histtype="step", color="tab:red", label="generated"
        )
        ax.set_title(label, fontsize=8)
        ax.set_xlim(-np.pi, np.pi)
        ax.set_yticks([])
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{name}: torsion distributions (rad)", fontsize=10)
    return _save(fig, path)


def tica_free_energy(
    name: str, reference: np.ndarray, generated: np.ndarray, path: Path, bins: int = 50
) -> Path:
    """-ln p on the first two TICA components (kT), reference and generated side by side on one grid."""
    both = np.concatenate([reference[:, :2], generated[:, :2]])
    edges = [np.linspace(both[:, d].min(), both[:, d].max(), bins + 1) for d in range(2)]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5), sharex=True, sharey=True)
    for ax, data, title in zip(axes, (reference, generated), ("reference MD", "generated")):
        counts, _, _ = np.histogram2d(data[:, 0], data[:, 1], bins=edges)
        with np.errstate(divide="ignore"):
            energy = -np.log(counts / counts.sum())
        energy -= energy[np.isfinite(energy)].min()
        image = ax.pcolormesh(edges[0], edges[1], energy.T, cmap="viridis", vmax=8)
        ax.set_title(title)
        ax.set_xlabel("TICA 0")
    axes[0].set_ylabel("TICA 1")
    fig.colorbar(image, ax=axes, label="free energy (kT)")
    fig.suptitle(name)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def decorrelation_curves(
    name: str,
    labels: Sequence[str],
    reference: DecorrelationCurves,
    rows: Mapping[str, DecorrelationCurves],
    path: Path,
) -> Path:
    """C(tau) per torsion on a log lag axis, reference vs each row."""
    fig, axes = _grid(len(labels))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for f, (ax, label) in enumerate(zip(axes, labels)):
        ax.plot(reference.lags_ps[1:], reference.curves[1:, f], **_REFERENCE_STYLE)
        for colour, (row, curves) in zip(colours, rows.items()):
            ax.plot(curves.lags_ps[1:], curves.curves[1:, f], color=colour, label=row, lw=1)
        ax.axhline(RELAXATION_LEVEL, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(-0.1, 1.05)
        ax.set_title(label, fontsize=8)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{name}: torsion decorrelation C(lag), lag in ps (dotted: 1/e)", fontsize=10)
    return _save(fig, path)


def state_populations(
    name: str, reference: Sequence[float], rows: Mapping[str, Sequence[float]], path: Path
) -> Path:
    """Metastable-state occupancies (the last bar is 'unassigned')."""
    n = len(reference)
    width = 0.8 / (len(rows) + 1)
    fig, ax = plt.subplots(figsize=(max(4.0, n * 0.7), 3))
    ax.bar(np.arange(n), reference, width, color="black", label="reference MD")
    for k, (row, populations) in enumerate(rows.items(), start=1):
        ax.bar(np.arange(n) + k * width, populations, width, label=row)
    ax.set_xticks(np.arange(n) + 0.4 - width / 2, [str(i) for i in range(n - 1)] + ["unassigned"])
    ax.set_ylabel("fraction of frames")
    ax.set_title(f"{name}: metastable states")
    ax.legend(fontsize=7)
    return _save(fig, path)


def relaxation_scatter(reference_ps: np.ndarray, generated_ps: np.ndarray, r: float, path: Path) -> Path:
    """log-log scatter of relaxation times, torsions measured in both."""
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.loglog(reference_ps, generated_ps, "o", ms=3, alpha=0.7)
    if len(reference_ps):
        low = min(reference_ps.min(), generated_ps.min())
        high = max(reference_ps.max(), generated_ps.max())
        ax.plot([low, high], [low, high], "k:", lw=0.8)
    ax.set_xlabel("reference MD relaxation time (ps)")
    ax.set_ylabel("generated relaxation time (ps)")
    ax.set_title(f"torsion relaxation, Pearson r(log10) = {r:.2f}", fontsize=9)
    return _save(fig, path)


def convergence_with_md_length(
    lengths_ps: Sequence[float],
    values: Mapping[str, Sequence[float]],
    generated: Mapping[str, float],
    path: Path,
) -> Path:
    """Mean JSD of MD prefixes against their length, with the generated value as a horizontal line."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, (metric, series) in zip(colours, values.items()):
        ax.plot(lengths_ps, series, "o-", color=colour, label=f"MD {metric}")
        if metric in generated and np.isfinite(generated[metric]):
            ax.axhline(generated[metric], color=colour, ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("MD length (ps)")
    ax.set_ylabel("JS distance to reference")
    ax.set_title("MD rows vs length (dashed: generated)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def flux_matrices(name: str, reference: np.ndarray, generated: np.ndarray | None, path: Path) -> Path:
    """pi_i T_ij of the reference coarse MSM and of an MSM on the generated paths (log colour scale)."""
    panels = [("reference MSM", reference)] + (
        [("generated paths", generated)] if generated is not None else []
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5), squeeze=False)
    for ax, (title, flux) in zip(axes[0], panels):
        with np.errstate(divide="ignore"):
            image = ax.imshow(np.log10(np.where(flux > 0, flux, np.nan)), cmap="magma")
        ax.set_title(f"{title}: log10 pi_i T_ij", fontsize=9)
        ax.set_xlabel("to state")
        ax.set_ylabel("from state")
        fig.colorbar(image, ax=ax)
    fig.suptitle(name)
    return _save(fig, path)


def upsampling_curves(
    name: str,
    labels: Sequence[str],
    reference: DecorrelationCurves,
    coarse: DecorrelationCurves,
    rows: Mapping[str, DecorrelationCurves],
    path: Path,
) -> Path:
    """C(tau) of the fine reference, the coarse input (points) and each upsampled row, per torsion."""
    fig, axes = _grid(len(labels))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for f, (ax, label) in enumerate(zip(axes, labels)):
        ax.plot(reference.lags_ps[1:], reference.curves[1:, f], **_REFERENCE_STYLE)
        ax.plot(coarse.lags_ps[1:], coarse.curves[1:, f], "o", color="grey", ms=3, label="coarse input")
        for colour, (row, curves) in zip(colours, rows.items()):
            ax.plot(curves.lags_ps[1:], curves.curves[1:, f], color=colour, label=row, lw=1)
        ax.set_xscale("log")
        ax.set_xlim(reference.lags_ps[1], reference.lags_ps[-1])
        ax.set_title(label, fontsize=8)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{name}: torsion decorrelation C(lag), lag in ps", fontsize=10)
    return _save(fig, path)


def protein_rmsf(name: str, rows: Mapping[str, object], path: Path) -> Path:
    """CA RMSF per residue (Å): all MD and each row's ensemble (rows of `proteins.ProteinScores`)."""
    fig, ax = plt.subplots(figsize=(6, 3))
    first = next(iter(rows.values()))
    ax.plot(np.arange(1, first.n_residues + 1), first.md_rmsf_A, lw=1.5, **_REFERENCE_STYLE)
    for row, scores in rows.items():
        style = {"lw": 1.2} if row == "generated" else {"lw": 0.7, "ls": "--", "alpha": 0.7}
        ax.plot(np.arange(1, scores.n_residues + 1), scores.generated_rmsf_A, label=row, **style)
    ax.set_xlabel("residue")
    ax.set_ylabel("CA RMSF (Å)")
    ax.set_title(f"{name}: RMSF per residue", fontsize=9)
    ax.legend(fontsize=6)
    return _save(fig, path)


def protein_pca(name: str, projections, path: Path) -> Path:
    """Frames on the top two MD principal components (Å; `proteins.PcaProjections`): left, all MD vs the
    generated frames; right, each MD replica on its own (consecutive frames joined), the replica-vs-replica
    spread that a generated ensemble is measured against. The star is the reference structure."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
    md_all = np.concatenate(projections.md)
    left, right = axes
    left.scatter(
        md_all[:, 0], md_all[:, 1], s=6, color="black", alpha=0.5, label=f"MD ({len(md_all)} frames)"
    )
    generated = projections.generated
    left.scatter(
        generated[:, 0],
        generated[:, 1],
        s=6,
        color="tab:red",
        alpha=0.5,
        label=f"generated ({len(generated)})",
    )
    left.set_title("MD vs generated", fontsize=9)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, run in enumerate(projections.md):
        colour = colours[k % len(colours)]
        right.plot(run[:, 0], run[:, 1], "-", color=colour, lw=0.5, alpha=0.6)
        right.scatter(run[:, 0], run[:, 1], s=6, color=colour, label=f"MD replica {k + 1}")
    right.set_title("MD replicas", fontsize=9)
    pc1, pc2 = projections.explained_variance
    for ax in axes:
        ax.plot(*projections.structure, "*", color="gold", mec="black", ms=11, label="structure")
        ax.set_xlabel(f"MD PC1 (Å, {100 * pc1:.0f}% of MD variance)")
        ax.legend(fontsize=6)
    left.set_ylabel(f"MD PC2 (Å, {100 * pc2:.0f}%)")
    fig.suptitle(f"{name}: CA frames on the MD principal components", fontsize=10)
    return _save(fig, path)
