"""Protein-ensemble metrics of AlphaFlow's ATLAS analysis (METHOD 7.6), with MD replicas as reference rows.

Coordinates in Å. CA metrics use every frame superposed on the reference structure (the reference
PDB) on its CA atoms:
- RMSF per residue for MD and generated, and their Pearson r per target (the global r over all
  targets' residues is computed when aggregating);
- mean pairwise CA RMSD within each ensemble (frames subsampled evenly to at most `max_frames`);
- RMWD: per CA atom the 2-Wasserstein distance between Gaussians fitted to MD and generated positions,
  W2^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2); RMWD = sqrt(mean over atoms of W2^2),
  split into its translation and variance terms;
- MD-PCA W2 and joint-PCA W2: PCA of the flattened CA coordinates fitted on MD (MD-PCA) or on MD and
  generated frames together, equally many of each (joint); both ensembles, equally many frames, are
  projected on the top 2 PCs, matched one-to-one by the Hungarian algorithm, and
  W2 = sqrt(mean matched squared distance / n_CA), so it reads like an RMSD in Å;
- PC similarity: |cosine| between the first principal component of MD and of the generated ensemble
  (the report gives the % of targets above 0.5);
- contacts (CA-CA < `contact_cutoff_A`, |i - j| >= 3): weak contacts = reference-structure contacts
  present in < 90% of frames, transient = non-reference contacts present in > 10% of frames;
  Jaccard index of the MD and generated sets;
- exposure (heavy atoms superposed on the structure, mdtraj `shrake_rupley`, probe `sasa_probe_nm`
  0.28 nm, frames subsampled evenly to at most `max_frames`): side-chain SASA of a
  residue = sum over its atoms other than N, CA, C, O, OXT; a residue is exposed in a frame when that
  exceeds `exposure_threshold_nm2` (0.02 nm^2). Exposed residues = buried in the reference structure
  and exposed in > 10% of frames; Jaccard of the MD and generated sets. Exposure mutual information:
  per residue pair the MI (nats) of the two binary exposure series; the MD and generated matrices are
  compared by Spearman rho over the pairs i < j (AlphaFlow ranks the full flattened matrices, diagonal
  and both triangles included, which only adds ties);
- physical validity on CA atoms: a frame has a CA break when a consecutive CA(i)-CA(i+1) distance is
  outside [3.6, 4.0] Å ([2.7, 4.0] before a proline; METHOD 12), and a CA clash when two CA atoms at
  least two residues apart are closer than `ca_clash_A` (3.0 Å); valid = neither.
Figures (`write_figures`): CA RMSF per residue for every row, and every frame projected on the top two
MD principal components (`md_pca_projections`): MD against generated, and the MD replicas one by one.
A Jaccard index is NaN when both sets are empty, a correlation NaN when either side is constant.

Rows per target: "generated" (samples against all MD), and with two or more MD replicas one row
"MD replica i vs rest" per replica (replica i scored against the other replicas pooled): the scale of
what a perfect model could reach with that much MD.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mdtraj as md
import numpy as np
from scipy.linalg import sqrtm
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr

from mdgen.analysis.loading import EvaluationInputError, TrajectoryGroup
from mdgen.analysis.validity import CA_CA_BEFORE_PROLINE_RANGE_A, CA_CA_RANGE_A

_NM_TO_A = 10.0
BACKBONE_ATOMS = frozenset({"N", "CA", "C", "O", "OXT"})  # not side chain, for side-chain SASA
GENERATED = "generated"


def replica_row(replica: int) -> str:
    """Row name of MD replica `replica` (1-based) scored against the other replicas."""
    return f"MD replica {replica} vs rest"


@dataclass(frozen=True)
class ProteinSettings:
    max_frames: int = 500  # pairwise RMSD, PCA matching (O(n^3)) and SASA use at most this many frames
    contact_cutoff_A: float = 8.0
    seed: int = 137
    sasa_probe_nm: float = 0.28
    sasa_sphere_points: int = 960  # mdtraj's default, as AlphaFlow; the SASA is most of the cost
    exposure_threshold_nm2: float = 0.02
    ca_clash_A: float = 3.0


@dataclass(frozen=True)
class ProteinScores:
    n_residues: int
    md_rmsf_A: tuple[float, ...]  # per residue
    generated_rmsf_A: tuple[float, ...]
    rmsf_pearson_r: float
    md_pairwise_rmsd_A: float
    generated_pairwise_rmsd_A: float
    rmwd_A: float
    rmwd_translation_A: float
    rmwd_variance_A: float
    md_pca_w2_A: float
    joint_pca_w2_A: float
    pc1_cosine_similarity: float  # |cos| of the first PCs of MD and generated
    weak_contacts_jaccard: float
    transient_contacts_jaccard: float
    md_exposed_residues: int  # buried in the structure, exposed in > 10% of MD frames
    generated_exposed_residues: int
    exposed_residues_jaccard: float
    exposure_mi_spearman_rho: float
    ca_break_rate: float  # fraction of generated frames
    ca_clash_rate: float
    ca_valid_fraction: float


# ---------------------------------------------------------------------------------------------------
# Coordinates


def _ca_coordinates(group: TrajectoryGroup, structure: md.Trajectory, ca: np.ndarray) -> np.ndarray:
    """Superposed CA coordinates (T, n_CA, 3) Å of all trajectories of `group`."""
    parts = []
    for traj in group.trajectories:
        moved = md.Trajectory(traj.xyz.copy(), traj.topology).superpose(structure, atom_indices=ca)
        parts.append(moved.xyz[:, ca] * _NM_TO_A)
    return np.concatenate(parts)


def _even_indices(count: int, limit: int) -> np.ndarray:
    return np.linspace(0, count - 1, min(limit, count)).astype(int)


def _even(coords: np.ndarray, limit: int) -> np.ndarray:
    return coords[_even_indices(len(coords), limit)]


def _even_frames(group: TrajectoryGroup, structure: md.Trajectory, limit: int) -> md.Trajectory:
    """At most `limit` evenly spaced heavy-atom frames of the pooled trajectories of `group`, superposed
    on `structure` (all heavy atoms, as AlphaFlow; Shrake-Rupley's sphere points are fixed in space,
    so this keeps the SASA of a rigidly moved frame identical rather than nearly so)."""
    xyz = np.concatenate([traj.xyz for traj in group.trajectories])
    frames = md.Trajectory(xyz[_even_indices(len(xyz), limit)], group.trajectories[0].topology)
    return frames.superpose(structure)


def _rmsf(coords: np.ndarray) -> np.ndarray:
    return np.sqrt(((coords - coords.mean(0)) ** 2).sum(-1).mean(0))


# ---------------------------------------------------------------------------------------------------
# Distances between ensembles


def mean_pairwise_rmsd(coords: np.ndarray) -> float:
    """Mean RMSD over frame pairs of already superposed coordinates (T, N, 3)."""
    flat = coords.reshape(len(coords), -1)
    squared = (flat**2).sum(1)
    distances = np.clip(squared[:, None] + squared[None] - 2 * flat @ flat.T, 0, None) / coords.shape[1]
    i, j = np.triu_indices(len(coords), k=1)
    return float(np.sqrt(distances[i, j]).mean())


def rmwd(md_coords: np.ndarray, gen_coords: np.ndarray) -> tuple[float, float, float]:
    translation, variance = [], []
    for a in range(md_coords.shape[1]):
        mu1, mu2 = md_coords[:, a].mean(0), gen_coords[:, a].mean(0)
        s1, s2 = np.cov(md_coords[:, a].T), np.cov(gen_coords[:, a].T)
        root = sqrtm(s2)
        cross = np.real(sqrtm(root @ s1 @ root))
        translation.append(((mu1 - mu2) ** 2).sum())
        variance.append(max(np.trace(s1 + s2 - 2 * cross), 0.0))
    translation, variance = np.asarray(translation), np.asarray(variance)
    return (
        float(np.sqrt((translation + variance).mean())),
        float(np.sqrt(translation.mean())),
        float(np.sqrt(variance.mean())),
    )


def principal_components(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (3N,), components (k, 3N) unit rows by decreasing variance) of coordinates (T, N, 3)."""
    mean, components, _ = _pca(coords)
    return mean, components


def _pca(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (3N,), components (k, 3N), fraction of the variance along each component (k,))."""
    flat = coords.reshape(len(coords), -1)
    mean = flat.mean(0)
    _, singular, components = np.linalg.svd(flat - mean, full_matrices=False)
    variance = singular**2
    return mean, components, variance / variance.sum() if variance.sum() > 0 else variance


def _matched_w2(a: np.ndarray, b: np.ndarray, n_atoms: int) -> float:
    cost = ((a[:, None] - b[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean() / n_atoms))


def _equal_samples(
    md_coords: np.ndarray, gen_coords: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(md_coords), len(gen_coords))
    return (
        md_coords[rng.choice(len(md_coords), n, replace=False)],
        gen_coords[rng.choice(len(gen_coords), n, replace=False)],
    )


def pca_w2(md_coords: np.ndarray, gen_coords: np.ndarray, rng: np.random.Generator) -> float:
    """W2 in the top-2 PC space of a PCA fitted on MD (see the module docstring)."""
    mean, components = principal_components(md_coords)
    project = lambda coords: (coords.reshape(len(coords), -1) - mean) @ components[:2].T  # noqa: E731
    a, b = _equal_samples(md_coords, gen_coords, rng)
    return _matched_w2(project(a), project(b), md_coords.shape[1])


def joint_pca_w2(md_coords: np.ndarray, gen_coords: np.ndarray, rng: np.random.Generator) -> float:
    """W2 in the top-2 PC space of a PCA fitted on equally many MD and generated frames together."""
    a, b = _equal_samples(md_coords, gen_coords, rng)
    mean, components = principal_components(np.concatenate([a, b]))
    project = lambda coords: (coords.reshape(len(coords), -1) - mean) @ components[:2].T  # noqa: E731
    return _matched_w2(project(a), project(b), md_coords.shape[1])


def pc1_cosine_similarity(md_coords: np.ndarray, gen_coords: np.ndarray) -> float:
    """|cos| between the first principal components of the two ensembles (sign-free, in [0, 1])."""
    return float(abs(principal_components(md_coords)[1][0] @ principal_components(gen_coords)[1][0]))


# ---------------------------------------------------------------------------------------------------
# Contacts and exposure


def _contact_probability(
    coords: np.ndarray, cutoff: float, pairs: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    i, j = pairs
    return (np.linalg.norm(coords[:, i] - coords[:, j], axis=-1) < cutoff).mean(0)


def contact_sets(
    structure_coords: np.ndarray, coords: np.ndarray, cutoff_A: float
) -> tuple[np.ndarray, np.ndarray]:
    """(weak, transient) contact masks (P,) over the CA pairs i < j - 2 (`np.triu_indices(N, k=3)` order)
    of frames (T, N, 3) Å: weak = contacts of the structure (N, 3) present in < 90% of the frames,
    transient = other pairs in contact in > 10% of the frames."""
    pairs = np.triu_indices(len(structure_coords), k=3)
    crystal = _contact_probability(structure_coords[None], cutoff_A, pairs) > 0.5
    probability = _contact_probability(coords, cutoff_A, pairs)
    return crystal & (probability < 0.9), ~crystal & (probability > 0.1)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a & b| / |a | b| of two boolean masks; NaN when both are empty."""
    union = np.sum(a | b)
    return float(np.sum(a & b) / union) if union else float("nan")


def sidechain_sasa_nm2(traj: md.Trajectory, probe_nm: float, sphere_points: int = 960) -> np.ndarray:
    """Side-chain SASA per residue (T, n_residues) nm^2: Shrake-Rupley per atom, summed over atoms
    other than N, CA, C, O, OXT (0 for glycine)."""
    per_atom = md.shrake_rupley(traj, probe_radius=probe_nm, n_sphere_points=sphere_points, mode="atom")
    sidechain = np.asarray([atom.name not in BACKBONE_ATOMS for atom in traj.topology.atoms])
    residue = np.asarray([atom.residue.index for atom in traj.topology.atoms])
    out = np.zeros((traj.n_frames, traj.topology.n_residues))
    for r in range(traj.topology.n_residues):
        out[:, r] = per_atom[:, sidechain & (residue == r)].sum(1)
    return out


def exposed_residues(
    structure_sasa: np.ndarray, frame_sasa: np.ndarray, threshold_nm2: float, min_probability: float = 0.1
) -> np.ndarray:
    """Residues (L,) bool buried in the structure (SASA (L,) <= threshold) and exposed (> threshold) in
    more than `min_probability` of the frames (T, L)."""
    return (structure_sasa <= threshold_nm2) & ((frame_sasa > threshold_nm2).mean(0) > min_probability)


def exposure_mutual_information(exposed: np.ndarray) -> np.ndarray:
    """MI in nats (L, L) between the binary exposure series (T, L) of every residue pair; diagonal 0."""
    x = np.asarray(exposed, dtype=float)
    n = len(x)
    mi = np.zeros((x.shape[1], x.shape[1]))
    for a_i in (0.0, 1.0):
        for a_j in (0.0, 1.0):
            u = x if a_i else 1.0 - x
            v = x if a_j else 1.0 - x
            joint = u.T @ v / n
            marginal = np.outer(u.mean(0), v.mean(0))
            with np.errstate(divide="ignore", invalid="ignore"):
                term = np.where(joint > 0, joint * np.log(joint / marginal), 0.0)
            mi += term
    np.fill_diagonal(mi, 0.0)
    return mi


def upper_triangle_spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho of two (L, L) matrices over the pairs i < j; NaN when either is constant there."""
    i, j = np.triu_indices(len(a), k=1)
    x, y = a[i, j], b[i, j]
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y)[0])


# ---------------------------------------------------------------------------------------------------
# Physical validity on CA atoms


def ca_links(topology: md.Topology, ca: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions k in the CA list with CA k and CA k+1 in consecutive residues of one chain (K,), and
    whether residue k+1 is a proline (K,)."""
    atoms = list(topology.atoms)
    links, before_proline = [], []
    for k in range(len(ca) - 1):
        here, there = atoms[ca[k]].residue, atoms[ca[k + 1]].residue
        if here.chain.index == there.chain.index and there.index == here.index + 1:
            links.append(k)
            before_proline.append(there.name == "PRO")
    return np.asarray(links, dtype=np.int64), np.asarray(before_proline, dtype=bool)


def ca_validity(
    coords: np.ndarray, links: np.ndarray, before_proline: np.ndarray, clash_A: float
) -> tuple[float, float, float]:
    """(break rate, clash rate, valid fraction) over frames of CA coordinates (T, N, 3) Å."""
    bonded = np.linalg.norm(coords[:, links + 1] - coords[:, links], axis=-1)
    low = np.where(before_proline, CA_CA_BEFORE_PROLINE_RANGE_A[0], CA_CA_RANGE_A[0])
    broken = np.any((bonded < low) | (bonded > CA_CA_RANGE_A[1]), axis=1)
    i, j = np.triu_indices(coords.shape[1], k=2)
    clash = np.zeros(len(coords), dtype=bool)
    for start in range(0, len(coords), 256):  # chunks keep (frames x pairs) small
        chunk = coords[start : start + 256]
        clash[start : start + 256] = np.any(np.linalg.norm(chunk[:, i] - chunk[:, j], axis=-1) < clash_A, 1)
    return float(broken.mean()), float(clash.mean()), float(1.0 - (broken | clash).mean())


# ---------------------------------------------------------------------------------------------------
# One target


def score_protein(
    reference: TrajectoryGroup,
    generated: TrajectoryGroup,
    structure: md.Trajectory,
    settings: ProteinSettings,
) -> ProteinScores:
    """Both groups and the one-frame `structure` must share one topology (see `mdgen.analysis.loading.match_groups`)."""
    ca = np.asarray([atom.index for atom in structure.topology.atoms if atom.name == "CA"])
    if len(ca) < 3:
        raise EvaluationInputError(f"{reference.source}: needs at least 3 CA atoms, has {len(ca)}")
    rng = np.random.default_rng(settings.seed)
    md_coords = _ca_coordinates(reference, structure, ca)
    gen_coords = _ca_coordinates(generated, structure, ca)
    md_rmsf, gen_rmsf = _rmsf(md_coords), _rmsf(gen_coords)
    md_sample, gen_sample = _even(md_coords, settings.max_frames), _even(gen_coords, settings.max_frames)
    rmwd_total, rmwd_translation, rmwd_variance = rmwd(md_coords, gen_coords)

    structure_ca = structure.xyz[0, ca] * _NM_TO_A
    md_weak, md_transient = contact_sets(structure_ca, md_coords, settings.contact_cutoff_A)
    gen_weak, gen_transient = contact_sets(structure_ca, gen_coords, settings.contact_cutoff_A)

    threshold = settings.exposure_threshold_nm2
    sasa = lambda traj: sidechain_sasa_nm2(traj, settings.sasa_probe_nm, settings.sasa_sphere_points)  # noqa: E731
    structure_sasa = sasa(structure)[0]
    md_sasa = sasa(_even_frames(reference, structure, settings.max_frames))
    gen_sasa = sasa(_even_frames(generated, structure, settings.max_frames))
    md_exposed = exposed_residues(structure_sasa, md_sasa, threshold)
    gen_exposed = exposed_residues(structure_sasa, gen_sasa, threshold)
    links, before_proline = ca_links(structure.topology, ca)
    breaks, clashes, valid = ca_validity(gen_coords, links, before_proline, settings.ca_clash_A)
    return ProteinScores(
        n_residues=len(ca),
        md_rmsf_A=tuple(md_rmsf.tolist()),
        generated_rmsf_A=tuple(gen_rmsf.tolist()),
        rmsf_pearson_r=float(np.corrcoef(md_rmsf, gen_rmsf)[0, 1]),
        md_pairwise_rmsd_A=mean_pairwise_rmsd(md_sample),
        generated_pairwise_rmsd_A=mean_pairwise_rmsd(gen_sample),
        rmwd_A=rmwd_total,
        rmwd_translation_A=rmwd_translation,
        rmwd_variance_A=rmwd_variance,
        md_pca_w2_A=pca_w2(md_sample, gen_sample, rng),
        joint_pca_w2_A=joint_pca_w2(md_sample, gen_sample, rng),
        pc1_cosine_similarity=pc1_cosine_similarity(md_sample, gen_sample),
        weak_contacts_jaccard=jaccard(md_weak, gen_weak),
        transient_contacts_jaccard=jaccard(md_transient, gen_transient),
        md_exposed_residues=int(md_exposed.sum()),
        generated_exposed_residues=int(gen_exposed.sum()),
        exposed_residues_jaccard=jaccard(md_exposed, gen_exposed),
        exposure_mi_spearman_rho=upper_triangle_spearman(
            exposure_mutual_information(md_sasa > threshold),
            exposure_mutual_information(gen_sasa > threshold),
        ),
        ca_break_rate=breaks,
        ca_clash_rate=clashes,
        ca_valid_fraction=valid,
    )


def replica_rows(
    reference: TrajectoryGroup, structure: md.Trajectory, settings: ProteinSettings
) -> dict[str, ProteinScores]:
    """{"MD replica i vs rest": scores of replica i against the other replicas pooled}; empty when the
    reference has a single trajectory."""
    runs = reference.trajectories
    if len(runs) < 2:
        return {}
    rows = {}
    for k, run in enumerate(runs):
        rest = TrajectoryGroup(
            runs[:k] + runs[k + 1 :], reference.timestep_ps, f"{reference.source} (others)"
        )
        one = TrajectoryGroup((run,), reference.timestep_ps, f"{reference.source} (replica {k + 1})")
        rows[replica_row(k + 1)] = score_protein(rest, one, structure, settings)
    return rows


@dataclass(frozen=True)
class ProteinPeptideResult:
    name: str
    rows: dict[str, ProteinScores]  # "generated", then "MD replica i vs rest" per replica when >= 2
    notes: tuple[str, ...] = ()

    @property
    def scores(self) -> ProteinScores:
        return self.rows[GENERATED]


# ---------------------------------------------------------------------------------------------------
# Figures


@dataclass(frozen=True)
class PcaProjections:
    """CA frames (superposed on the structure on their CA atoms) on the top two principal components of
    the MD frames (the PCA of MD-PCA W2: fitted on at most `max_frames` evenly spaced MD frames). Values
    in Å: projections of (frame - MD mean) on unit PCs of the flattened coordinates (3 N_CA,)."""

    md: tuple[np.ndarray, ...]  # per MD trajectory (replica), (T_i, 2)
    generated: np.ndarray  # (T', 2), all generated frames pooled
    structure: np.ndarray  # (2,) the reference structure
    explained_variance: tuple[float, float]  # fraction of the MD variance along PC1, PC2


def md_pca_projections(
    reference: TrajectoryGroup, generated: TrajectoryGroup, structure: md.Trajectory, max_frames: int = 500
) -> PcaProjections:
    """Every MD and generated frame on the top two MD PCs (groups on one topology, see `score_protein`)."""
    ca = np.asarray([atom.index for atom in structure.topology.atoms if atom.name == "CA"])
    md_runs = [
        _ca_coordinates(TrajectoryGroup((run,), reference.timestep_ps, reference.source), structure, ca)
        for run in reference.trajectories
    ]
    mean, components, explained = _pca(_even(np.concatenate(md_runs), max_frames))
    project = lambda coords: (coords.reshape(len(coords), -1) - mean) @ components[:2].T  # noqa: E731
    return PcaProjections(
        md=tuple(project(run) for run in md_runs),
        generated=project(_ca_coordinates(generated, structure, ca)),
        structure=project(structure.xyz[:, ca] * _NM_TO_A)[0],
        explained_variance=(float(explained[0]), float(explained[1])),
    )


@dataclass(frozen=True)
class ProteinAnalysis:
    """One protein's evaluation: the rows metrics.json keeps and what its figures need."""

    result: ProteinPeptideResult
    projections: PcaProjections


def analyse_protein(
    name: str,
    reference: TrajectoryGroup,
    generated: TrajectoryGroup,
    structure: md.Trajectory,
    settings: ProteinSettings,
) -> ProteinAnalysis:
    """The "generated" row, one "MD replica i vs rest" row per replica, and the MD-PC projections
    (groups and structure on one topology, see `score_protein`)."""
    rows = {GENERATED: score_protein(reference, generated, structure, settings)}
    rows |= replica_rows(reference, structure, settings)
    notes = () if len(rows) > 1 else ("one MD trajectory: no replica-vs-replica reference rows",)
    projections = md_pca_projections(reference, generated, structure, settings.max_frames)
    return ProteinAnalysis(ProteinPeptideResult(name, rows, notes), projections)


def write_figures(analysis: ProteinAnalysis, plot_dir: Path) -> list[Path]:
    """`plot_dir/NAME_rmsf.png` (CA RMSF per residue, every row) and `plot_dir/NAME_pca.png` (frames on
    the MD PCs: MD vs generated, and each MD replica)."""
    from mdgen.evaluation import plots

    name = analysis.result.name
    plot_dir.mkdir(parents=True, exist_ok=True)
    return [
        plots.protein_rmsf(name, analysis.result.rows, plot_dir / f"{name}_rmsf.png"),
        plots.protein_pca(name, analysis.projections, plot_dir / f"{name}_pca.png"),
    ]
