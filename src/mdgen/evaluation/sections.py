"""Per-task report sections (markdown) and cross-peptide statistics for metrics.json.

`<task>_sections(results, config)` returns (markdown sections, extra metrics.json entries), used by that
task's evaluator (`pipelines`); the aggregate tables are built from `report.aggregate_rows` so the
numbers match metrics.json exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from mdgen.analysis.validity import (
    BONDI_RADII_A,
    C_N_RANGE_A,
    CA_CA_BEFORE_PROLINE_RANGE_A,
    CA_CA_RANGE_A,
    CLASH_OVERLAP_A,
    HBOND_MIN_DISTANCE_A,
)
from mdgen.evaluation import plots
from mdgen.evaluation.forward import GENERATED, TRIVIAL_BASELINE, ForwardPeptideResult, md_row_name
from mdgen.evaluation.jsd import MAX_JS_DISTANCE
from mdgen.evaluation.report import aggregate_rows, aggregate_table, format_value, markdown_table
from mdgen.evaluation.transition_paths import REFERENCE_BRIDGE
from mdgen.evaluation.upsampling import HELD, INTERPOLATED, UPSAMPLED

if TYPE_CHECKING:
    from mdgen.evaluation.pipelines import EvaluationConfig

REFERENCE_CONTROL = "reference MD (control)"
JSD_NOTE = (
    f"JSD = Jensen-Shannon *distance* (scipy `jensenshannon`, natural log; sqrt of the divergence in nats), "
    f"0 = identical, {MAX_JS_DISTANCE:.3f} = disjoint. Cells: mean ± standard error over peptides (n = peptides "
    "where the metric is defined)."
)
VALIDITY_NOTE = (
    f"Valid frame: every CA(i)-CA(i+1) in [{CA_CA_RANGE_A[0]}, {CA_CA_RANGE_A[1]}] Å "
    f"([{CA_CA_BEFORE_PROLINE_RANGE_A[0]}, {CA_CA_BEFORE_PROLINE_RANGE_A[1]}] Å before Pro), every C(i)-N(i+1) in "
    f"[{C_N_RANGE_A[0]}, {C_N_RANGE_A[1]}] Å, and no heavy-atom pair more than three bonds apart overlapping by "
    f"≥ {CLASH_OVERLAP_A} Å (Bondi radii {BONDI_RADII_A}; N/O pairs allowed down to {HBOND_MIN_DISTANCE_A} Å). "
    "Bond length/angle deviations are mean |value − reference mean| per bond/angle."
)


def _figure_links(config: EvaluationConfig) -> str:
    if not config.make_plots or not config.plot_dir.is_dir():
        return ""
    links = [f"- [{p.name}](plots/{p.name})" for p in sorted(config.plot_dir.glob("*.png"))]
    return "## Figures\n\n" + "\n".join(links)


def _notes(results: Mapping[str, object]) -> str:
    lines = []
    for name, result in results.items():
        for note in getattr(result, "notes", ()):
            lines.append(f"- {name}: {note}")
        for row, reason in getattr(result, "omitted_rows", {}).items():
            lines.append(f"- {name}: row '{row}' omitted ({reason})")
    return "## Notes\n\n" + "\n".join(lines) if lines else ""


def _pooled_relaxation(results: Mapping[str, ForwardPeptideResult], row: str) -> dict:
    """Pearson r of log10 relaxation times over all torsions of all peptides measured in both."""
    pairs, status = [], {"measured": 0, "censored": 0, "static": 0}
    for result in results.values():
        if row not in result.rows:
            continue
        for label, time in result.rows[row].relaxation_times.items():
            status[time.status] += 1
            reference = result.reference_relaxation_times[label]
            if time.status == "measured" and reference.status == "measured":
                pairs.append((reference.time_ps, time.time_ps))
    pairs = np.asarray(pairs).reshape(-1, 2)
    r = float("nan")
    if len(pairs) >= 3 and np.ptp(np.log10(pairs[:, 0])) > 0 and np.ptp(np.log10(pairs[:, 1])) > 0:
        r = float(np.corrcoef(np.log10(pairs[:, 0]), np.log10(pairs[:, 1]))[0, 1])
    return {
        "log10_pearson_r": r,
        "n_pairs": len(pairs),
        "pairs_ps": pairs,
        **{f"n_{k}": v for k, v in status.items()},
    }


def forward_sections(
    results: Mapping[str, ForwardPeptideResult], config: EvaluationConfig
) -> tuple[list[str], dict]:
    md_rows = [md_row_name(length) for length in sorted(config.forward.md_truncations_ps)]
    order = [GENERATED, TRIVIAL_BASELINE, *md_rows]
    aggregate = aggregate_rows({name: result.rows for name, result in results.items()})
    main = aggregate_table(
        aggregate,
        order,
        [
            ("torsions bb", "torsion_jsd_backbone", 1),
            ("torsions sc", "torsion_jsd_sidechain", 1),
            ("torsions all", "torsion_jsd_all", 1),
            ("(φ_i, ψ_i)", "torsion_pair_jsd_mean", 1),
            ("TICA-0", "tica0_jsd", 1),
            ("TICA-0,1", "tica01_jsd", 1),
            ("MSM states", "msm_state_jsd", 1),
            ("valid frames %", "validity_valid_fraction", 100),
        ],
    )
    validity_rows = {
        name: {
            **{row: s.validity for row, s in result.rows.items()},
            REFERENCE_CONTROL: result.reference_validity,
        }
        for name, result in results.items()
    }
    validity = aggregate_table(
        aggregate_rows(validity_rows),
        [REFERENCE_CONTROL, *order],
        [
            ("valid %", "valid_fraction", 100),
            ("CA-CA break %", "ca_break_rate", 100),
            ("C-N break %", "cn_break_rate", 100),
            ("clash %", "clash_rate", 100),
            ("bond length dev (Å)", "bond_length_deviation_A", 1),
            ("bond angle dev (°)", "bond_angle_deviation_deg", 1),
        ],
        digits=2,
    )
    pooled = {row: _pooled_relaxation(results, row) for row in order if row in aggregate}
    relaxation = markdown_table(
        ["row", "Pearson r of log10 τ (pooled)", "torsions in r", "measured", "censored", "static"],
        [
            [
                row,
                format_value(p["log10_pearson_r"]),
                p["n_pairs"],
                p["n_measured"],
                p["n_censored"],
                p["n_static"],
            ]
            for row, p in pooled.items()
        ],
    )
    per_peptide = markdown_table(
        [
            "peptide",
            "ref length (ns)",
            "states / clusters / TICA dims",
            "bb",
            "sc",
            "all",
            "TICA-0",
            "TICA-0,1",
            "MSM",
            "valid %",
        ],
        [
            [
                name,
                format_value(r.reference_duration_ps / 1000, 2),
                f"{r.n_states} / {r.n_clusters} / {r.n_tica_components}",
                *(
                    format_value(getattr(r.rows[GENERATED], m))
                    for m in (
                        "torsion_jsd_backbone",
                        "torsion_jsd_sidechain",
                        "torsion_jsd_all",
                        "tica0_jsd",
                        "tica01_jsd",
                        "msm_state_jsd",
                    )
                ),
                format_value(100 * r.rows[GENERATED].validity.valid_fraction, 1),
            ]
            for name, r in results.items()
        ],
    )
    if config.make_plots and GENERATED in pooled:
        config.plot_dir.mkdir(parents=True, exist_ok=True)
        generated = pooled[GENERATED]
        plots.relaxation_scatter(
            generated["pairs_ps"][:, 0],
            generated["pairs_ps"][:, 1],
            generated["log10_pearson_r"],
            config.plot_dir / "relaxation_times.png",
        )
        present = [
            (length, md_row_name(length))
            for length in sorted(config.forward.md_truncations_ps)
            if md_row_name(length) in aggregate
        ]
        if present:
            metrics = {
                "torsions all": "torsion_jsd_all",
                "TICA-0": "tica0_jsd",
                "MSM states": "msm_state_jsd",
            }
            plots.convergence_with_md_length(
                [length for length, _ in present],
                {title: [aggregate[row][m]["mean"] for _, row in present] for title, m in metrics.items()},
                {title: aggregate[GENERATED][m]["mean"] for title, m in metrics.items()},
                config.plot_dir / "md_length_convergence.png",
            )
    lags = config.forward.state_model
    sections = [
        "## Forward simulation: JS distance to the reference MD (lower is better)\n\n"
        + main
        + "\n\n"
        + JSD_NOTE
        + f"\n\nTICA lag {lags.tica_lag_ps:g} ps (kinetic map, {lags.var_cutoff:.0%} kinetic variance), k-means "
        f"k ≤ {lags.n_clusters} (seed {lags.seed}), MSM lag {lags.msm_lag_ps:g} ps, PCCA+ ≤ {lags.n_metastable} states "
        "(+ an 'unassigned' bin for frames in clusters outside the MSM's active set). Trivial baseline: the first "
        "generated frame repeated. MD rows: prefixes of the replica MD when given, else of the reference itself.",
        "## Physical validity\n\n" + validity + "\n\n" + VALIDITY_NOTE,
        "## Torsion relaxation times\n\n"
        + relaxation
        + "\n\nRelaxation time: first lag where the decorrelation "
        "curve C falls below 1/e (linear interpolation); censored when it stays above 1/e up to the longest lag "
        f"(≤ {config.forward.decorrelation_max_lag_ps:g} ps and ≤ half the trajectory); static when the torsion never "
        "moves. Only torsions measured in both the row and the reference enter r.",
        "## Per peptide (generated row)\n\n" + per_peptide,
    ]
    return sections, {
        "aggregate": aggregate,
        "pooled": {"relaxation": pooled},
        "validity": aggregate_rows(validity_rows),
    }


def interp_sections(results: Mapping, config: EvaluationConfig) -> tuple[list[str], dict]:
    aggregate = aggregate_rows({name: result.rows for name, result in results.items()})
    replica_rows = sorted({row for r in results.values() for row in r.rows if row.startswith("replica")})
    table = aggregate_table(
        aggregate,
        [GENERATED, REFERENCE_BRIDGE, *replica_rows],
        [
            ("state-visitation JSD", "state_visitation_jsd", 1),
            ("valid path rate", "valid_path_rate", 1),
            ("mean path probability", "mean_path_probability", 1),
            ("mean valid-path probability", "mean_valid_path_probability", 1),
        ],
        digits=4,
    )
    per_peptide = markdown_table(
        [
            "peptide",
            "start → end",
            "endpoint agreement",
            "states per path",
            "step (ps)",
            "last step (ps)",
            "valid rate",
            "JSD",
        ],
        [
            [
                name,
                f"{r.start_state} → {r.end_state}",
                format_value(r.endpoint_agreement, 2),
                r.n_path_states,
                format_value(r.step_ps, 1),
                format_value(r.last_step_ps, 1),
                format_value(r.rows[GENERATED].valid_path_rate),
                format_value(r.rows[GENERATED].state_visitation_jsd),
            ]
            for name, r in results.items()
        ],
    )
    sections = [
        "## Transition paths\n\n"
        + table
        + "\n\n"
        + JSD_NOTE
        + " A path is valid when its Markov-bridge probability "
        "under the reference coarse MSM is nonzero (right endpoints, only transitions the MSM has seen, no frame "
        "outside the MSM's states). Start/end states are the most common (first, last) pair of the generated paths.",
        "## Per peptide\n\n" + per_peptide,
    ]
    return sections, {"aggregate": aggregate}


def upsample_sections(results: Mapping, config: EvaluationConfig) -> tuple[list[str], dict]:
    aggregate = aggregate_rows({name: result.rows for name, result in results.items()})
    table = aggregate_table(
        aggregate,
        [UPSAMPLED, HELD, INTERPOLATED],
        [
            ("recovered fraction R (mean)", "recovered_fraction", 1),
            ("R (median)", "recovered_fraction_median", 1),
            ("mean |C − C_ref| on [τ_fine, τ_coarse]", "curve_mean_abs_difference", 1),
            ("torsions scored", "n_torsions_scored", 1),
        ],
    )
    settings = config.upsampling
    sections = [
        "## Upsampling\n\n"
        + table
        + "\n\nR = (C_gen(τ_fine) − C_gen(τ_coarse)) / (C_ref(τ_fine) − C_ref(τ_coarse)) per "
        f"torsion, averaged over torsions whose reference drop is ≥ {settings.min_reference_drop}; τ_fine = the "
        f"reference's fine timestep, τ_coarse = {settings.coarse_interval_ps:g} ps. 1 = MD's sub-interval "
        "decorrelation reproduced, 0 = none, > 1 = too much. The curve difference uses "
        f"{settings.n_log_lags} log-spaced lags. Baselines are built from the coarse input (the reference "
        "subsampled to τ_coarse): frames held, or linearly interpolated in Cartesian space.",
    ]
    return sections, {"aggregate": aggregate}


def inpaint_sections(results: Mapping, config: EvaluationConfig) -> tuple[list[str], dict]:
    aggregate = aggregate_rows({name: result.rows for name, result in results.items()})
    columns = [
        ("designed", "designed_recovery"),
        ("conditioning", "conditioning_recovery"),
        ("majority designed", "majority_designed_recovery"),
        ("majority conditioning", "majority_conditioning_recovery"),
        ("most frequent designed", "most_frequent_designed_recovery"),
        ("final design: designed", "final_design_designed_recovery"),
        ("final design: conditioning", "final_design_conditioning_recovery"),
        ("starts in start state", "start_state_fraction"),
        ("reaches end state", "target_reached_fraction"),
    ]
    table = aggregate_table(aggregate, ["samples"], [(t, m, 1) for t, m in columns])
    per_peptide = markdown_table(
        [
            "peptide",
            "true",
            "designed positions",
            "majority",
            "most frequent designed",
            "final design",
            "designed recovery",
        ],
        [
            [
                name,
                r.true_sequence,
                list(r.designed_positions),
                r.rows["samples"].majority_sequence,
                r.rows["samples"].most_frequent_designed,
                r.rows["samples"].final_design_sequence,
                format_value(r.rows["samples"].designed_recovery),
            ]
            for name, r in results.items()
        ],
    )
    sections = [
        "## Design: sequence recovery\n\n" + table + "\n\nRecovery = fraction of positions equal to the true "
        "residue. Final design = the sample with the best conditioning (flank) recovery, first on ties (the original "
        "code took the worst). State columns need start/end states and per-sample trajectories in the inpaint manifest.",
        "## Per peptide\n\n" + per_peptide,
    ]
    return sections, {"aggregate": aggregate}


PROTEIN_SUMMARY = (  # (label, key): medians over targets unless the label says otherwise
    ("MD pairwise RMSD (Å)", "md_pairwise_rmsd_A"),
    ("pairwise RMSD (Å)", "generated_pairwise_rmsd_A"),
    ("pairwise RMSD r (across targets)", "pairwise_rmsd_pearson_r"),
    ("MD RMSF (Å, median over residues)", "md_rmsf_median_A"),
    ("RMSF (Å, median over residues)", "rmsf_median_A"),
    ("global RMSF r (all residues)", "global_rmsf_pearson_r"),
    ("per-target RMSF r", "rmsf_pearson_r"),
    ("RMWD (Å)", "rmwd_A"),
    ("RMWD translation (Å)", "rmwd_translation_A"),
    ("RMWD variance (Å)", "rmwd_variance_A"),
    ("MD-PCA W2 (Å)", "md_pca_w2_A"),
    ("joint-PCA W2 (Å)", "joint_pca_w2_A"),
    ("% targets PC sim > 0.5", "pc_sim_above_half_percent"),
    ("weak contacts J", "weak_contacts_jaccard"),
    ("transient contacts J", "transient_contacts_jaccard"),
    ("exposed residues J", "exposed_residues_jaccard"),
    ("exposure MI matrix ρ", "exposure_mi_spearman_rho"),
    ("CA valid fraction (mean)", "ca_valid_fraction"),
    ("CA break rate (mean)", "ca_break_rate"),
    ("CA clash rate (mean)", "ca_clash_rate"),
)
_PROTEIN_MEANS = {"ca_valid_fraction", "ca_break_rate", "ca_clash_rate"}


def protein_summary(scores: list) -> dict[str, float]:
    """AlphaFlow's summary of one row over targets: medians of per-target values, correlations pooled
    over targets (global RMSF r over all residues, pairwise-RMSD r over targets), % PC sim > 0.5."""
    correlate = lambda a, b: float(np.corrcoef(a, b)[0, 1]) if len(a) >= 3 else float("nan")  # noqa: E731
    median = lambda values: float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")  # noqa: E731
    md_rmsf = np.concatenate([s.md_rmsf_A for s in scores])
    gen_rmsf = np.concatenate([s.generated_rmsf_A for s in scores])
    md_pair = np.asarray([s.md_pairwise_rmsd_A for s in scores])
    gen_pair = np.asarray([s.generated_pairwise_rmsd_A for s in scores])
    summary = {
        "md_rmsf_median_A": float(np.median(md_rmsf)),
        "rmsf_median_A": float(np.median(gen_rmsf)),
        "global_rmsf_pearson_r": correlate(md_rmsf, gen_rmsf),
        "pairwise_rmsd_pearson_r": correlate(md_pair, gen_pair),
        "pc_sim_above_half_percent": 100.0 * float(np.mean([s.pc1_cosine_similarity > 0.5 for s in scores])),
    }
    for _, key in PROTEIN_SUMMARY:
        if key not in summary:
            values = np.asarray([getattr(s, key) for s in scores], dtype=float)
            summary[key] = float(np.nanmean(values)) if key in _PROTEIN_MEANS else median(values)
    return summary


def protein_sections(results: Mapping, config: EvaluationConfig) -> tuple[list[str], dict]:
    aggregate = aggregate_rows({name: result.rows for name, result in results.items()})
    row_names = list(dict.fromkeys(row for result in results.values() for row in result.rows))
    summaries = {
        row: protein_summary([r.rows[row] for r in results.values() if row in r.rows]) for row in row_names
    }
    counts = {row: sum(row in r.rows for r in results.values()) for row in row_names}
    table = markdown_table(
        ["metric"] + [f"{row} (n={counts[row]})" for row in row_names],
        [
            [label] + [format_value(summaries[row][key]) for row in row_names]
            for label, key in PROTEIN_SUMMARY
        ],
    )
    sections = [
        "## Protein ensembles (AlphaFlow's ATLAS summary)\n\n"
        + table
        + "\n\nColumns: the generated ensemble against all MD, and each MD replica against the other "
        "replicas pooled (the scale of what matching MD means with this much sampling). CA atoms superposed on "
        "the reference structure, except exposure (side-chain SASA, Shrake-Rupley, probe "
        f"{config.protein.sasa_probe_nm} nm, exposed above {config.protein.exposure_threshold_nm2} nm², heavy "
        "atoms). Validity: CA(i)-CA(i+1) in "
        f"[{CA_CA_RANGE_A[0]}, {CA_CA_RANGE_A[1]}] Å ([{CA_CA_BEFORE_PROLINE_RANGE_A[0]}, "
        f"{CA_CA_BEFORE_PROLINE_RANGE_A[1]}] Å before Pro), no CA pair ≥ 2 residues apart closer than "
        f"{config.protein.ca_clash_A} Å. Definitions: `mdgen/evaluation/proteins.py`.",
    ]
    return sections, {"aggregate": aggregate, "pooled": summaries}


def common_sections(
    results: Mapping, failures: Mapping[str, str], config: EvaluationConfig
) -> tuple[str, str, str]:
    """(run header, failures, notes + figures)."""
    header = (
        f"Samples `{config.samples_dir}`, reference `{config.reference_dir}`"
        + (f", replica `{config.replica_dir}`" if config.replica_dir else "")
        + f". Evaluated {len(results)} of {len(results) + len(failures)} peptides: {', '.join(results) or 'none'}."
    )
    failed = ""
    if failures:
        failed = "## Not evaluated\n\n" + "\n".join(
            f"- **{name}**: {message}" for name, message in failures.items()
        )
        failed += (
            "\n\nThe command exits with status 2 when any peptide is not evaluated, unless run with "
            "allow_failures=true (then only when none is)."
        )
    return header, failed, "\n\n".join(s for s in (_notes(results), _figure_links(config)) if s)
