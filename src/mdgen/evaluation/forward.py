"""Forward-simulation metrics of one peptide (METHOD 7.2 and 12) against its reference MD.

Every candidate trajectory group (the generated rollouts, the trivial baseline, MD truncations) is
scored by `score_candidate` with the same reference objects, so every table row means the same thing:

- torsion JSD: per torsion, `bins` bins on [-pi, pi] (mean over backbone, side-chain, all torsions);
- residue-paired (phi_i, psi_i) JSD on a pair_bins x pair_bins grid;
- TICA-0 and TICA-0,1 JSD: TICA fitted on the reference cos/sin torsions, histograms over the joint range;
- metastable-state JSD: occupancies of the reference MSM's PCCA+ states (+ an 'unassigned' bin);
- decorrelation curves and relaxation times (see `decorrelation`), compared by Pearson r of log10 times;
- physical validity (see `mdgen.analysis.validity`).
JSD values are Jensen-Shannon *distances* (natural log), see `jsd`.

MD rows: prefixes of `replica` (independent MD) when given, else prefixes of the reference itself,
which are part of what they are compared with (optimistic); a prefix not shorter than the reference
(or longer than the replica) is omitted with the reason recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mdtraj as md
import numpy as np

from mdgen.analysis.features import TorsionDefinitions, cos_sin, torsion_angles, torsion_definitions
from mdgen.analysis.loading import TrajectoryGroup
from mdgen.analysis.msm import ReferenceStateModel, StateModelSettings, fit_reference_state_model
from mdgen.analysis.validity import (
    CovalentGeometry,
    ValidityScores,
    measure_covalent_geometry,
    validity_scores,
)
from mdgen.evaluation import jsd
from mdgen.evaluation.baselines import repeat_first_frame
from mdgen.evaluation.decorrelation import (
    DecorrelationCurves,
    RelaxationTime,
    decorrelation_curves,
    log_relaxation_correlation,
    relaxation_times,
)

GENERATED = "generated"
TRIVIAL_BASELINE = "first frame repeated"


def md_row_name(duration_ps: float) -> str:
    return f"MD {duration_ps / 1000:g} ns" if duration_ps >= 1000 else f"MD {duration_ps:g} ps"


@dataclass(frozen=True)
class ForwardSettings:
    torsion_bins: int = 100
    pair_bins: int = 50
    tica_bins: int = 100
    tica_pair_bins: int = 50
    decorrelation_max_lag_ps: float = 1000.0
    md_truncations_ps: tuple[float, ...] = (100.0, 1000.0, 10000.0)
    state_model: StateModelSettings = field(default_factory=StateModelSettings)


@dataclass(frozen=True)
class ForwardReference:
    """What every candidate is compared with, computed once per peptide from the reference MD."""

    group: TrajectoryGroup
    definitions: TorsionDefinitions
    angles: tuple[np.ndarray, ...]  # per trajectory (T_i, F) rad
    tica: np.ndarray  # (T, D) all TICA components of the pooled reference frames
    state_model: ReferenceStateModel
    populations: np.ndarray  # (n_states + 1,) counts, last = unassigned
    decorrelation: DecorrelationCurves
    relaxation: tuple[RelaxationTime, ...]
    geometry: CovalentGeometry


def build_forward_reference(reference: TrajectoryGroup, settings: ForwardSettings) -> ForwardReference:
    definitions = torsion_definitions(reference.trajectories[0].topology)
    angles = tuple(torsion_angles(traj, definitions) for traj in reference.trajectories)
    features = cos_sin(np.concatenate(angles))
    state_model = fit_reference_state_model(
        features, reference.timestep_ps, settings.state_model, reference.source
    )
    curves = decorrelation_curves(angles, reference.timestep_ps, settings.decorrelation_max_lag_ps)
    return ForwardReference(
        group=reference,
        definitions=definitions,
        angles=angles,
        tica=state_model.project(features),
        state_model=state_model,
        populations=state_model.populations(state_model.states(features)),
        decorrelation=curves,
        relaxation=tuple(relaxation_times(curves)),
        geometry=measure_covalent_geometry(md.join(reference.trajectories)),
    )


@dataclass(frozen=True)
class ForwardScores:
    """One table row: a candidate trajectory group scored against the reference."""

    source: str
    duration_ps: float
    n_frames: int
    torsion_jsd: dict[str, float]  # per torsion label
    torsion_jsd_backbone: float
    torsion_jsd_sidechain: float  # NaN when the peptide has no side-chain torsions
    torsion_jsd_all: float
    torsion_pair_jsd: dict[str, float]  # per residue, (phi_i, psi_i)
    torsion_pair_jsd_mean: float
    tica0_jsd: float
    tica01_jsd: float  # NaN when TICA has a single component
    msm_state_jsd: float
    state_populations: tuple[float, ...]  # normalised, last = unassigned
    relaxation_times: dict[str, RelaxationTime]
    relaxation_log10_r: float  # vs the reference, NaN when fewer than 3 torsions are measured in both
    relaxation_pairs: int
    validity: ValidityScores


@dataclass(frozen=True)
class CandidateAnalysis:
    scores: ForwardScores
    angles: np.ndarray  # (T, F) rad pooled over trajectories
    tica: np.ndarray  # (T, D)
    decorrelation: DecorrelationCurves


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def score_candidate(
    reference: ForwardReference, candidate: TrajectoryGroup, settings: ForwardSettings
) -> CandidateAnalysis:
    definitions = reference.definitions
    angles_per_traj = [torsion_angles(traj, definitions) for traj in candidate.trajectories]
    angles = np.concatenate(angles_per_traj)
    ref_angles = np.concatenate(reference.angles)
    labels = definitions.labels

    per_torsion = {
        label: jsd.angle_jsd(ref_angles[:, f], angles[:, f], settings.torsion_bins)
        for f, label in enumerate(labels)
    }
    backbone = [per_torsion[label] for label, bb in zip(labels, definitions.is_backbone) if bb]
    sidechain = [per_torsion[label] for label, bb in zip(labels, definitions.is_backbone) if not bb]
    pair_jsd = {
        name: jsd.angle_pair_jsd(ref_angles[:, [phi, psi]], angles[:, [phi, psi]], settings.pair_bins)
        for name, (phi, psi) in zip(definitions.pair_labels, definitions.residue_pairs)
    }

    features = cos_sin(angles)
    model = reference.state_model
    tica = model.project(features)
    tica01 = (
        jsd.joint_range_jsd(reference.tica[:, :2], tica[:, :2], settings.tica_pair_bins)
        if tica.shape[1] >= 2
        else float("nan")
    )
    populations = model.populations(model.states(features))

    curves = decorrelation_curves(angles_per_traj, candidate.timestep_ps, settings.decorrelation_max_lag_ps)
    times = relaxation_times(curves)
    log_r, n_pairs = log_relaxation_correlation(reference.relaxation, times)

    scores = ForwardScores(
        source=candidate.source,
        duration_ps=candidate.duration_ps,
        n_frames=candidate.n_frames,
        torsion_jsd=per_torsion,
        torsion_jsd_backbone=_mean(backbone),
        torsion_jsd_sidechain=_mean(sidechain),
        torsion_jsd_all=_mean(backbone + sidechain),
        torsion_pair_jsd=pair_jsd,
        torsion_pair_jsd_mean=_mean(list(pair_jsd.values())),
        tica0_jsd=jsd.joint_range_jsd(reference.tica[:, :1], tica[:, :1], settings.tica_bins),
        tica01_jsd=tica01,
        msm_state_jsd=jsd.js_distance(reference.populations, populations),
        state_populations=tuple((populations / populations.sum()).tolist()),
        relaxation_times=dict(zip(labels, times)),
        relaxation_log10_r=log_r,
        relaxation_pairs=n_pairs,
        validity=validity_scores(md.join(candidate.trajectories), reference.geometry),
    )
    return CandidateAnalysis(scores, angles, tica, curves)


@dataclass(frozen=True)
class ForwardPeptideResult:
    name: str
    reference_source: str
    reference_duration_ps: float
    reference_timestep_ps: float
    n_states: int
    n_clusters: int
    n_tica_components: int
    reference_populations: tuple[float, ...]  # normalised, last = unassigned
    reference_validity: ValidityScores
    reference_relaxation_times: dict[str, RelaxationTime]
    rows: dict[str, ForwardScores]  # GENERATED, TRIVIAL_BASELINE, md_row_name(...)
    omitted_rows: dict[str, str]  # row name -> why it is missing
    notes: tuple[str, ...]


@dataclass(frozen=True)
class ForwardAnalysis:
    """The result plus the arrays the plots need."""

    result: ForwardPeptideResult
    reference: ForwardReference
    candidates: dict[str, CandidateAnalysis]


# An MD row needs one lag of its decorrelation curve (`decorrelation_curves`: half its frames >= 1).
MIN_MD_ROW_FRAMES = 2


def md_truncations(
    reference: TrajectoryGroup, replica: TrajectoryGroup | None, lengths_ps: tuple[float, ...]
) -> tuple[dict[str, TrajectoryGroup], dict[str, str]]:
    """MD comparison rows: prefixes of the replica (if given) or of the reference, and the omitted ones."""
    source = replica if replica is not None else reference
    rows, omitted = {}, {}
    for length in lengths_ps:
        name = md_row_name(length)
        if replica is not None and length > replica.duration_ps + 1e-6:
            omitted[name] = f"longer than the replica MD ({replica.duration_ps:g} ps)"
        elif replica is None and length >= reference.duration_ps - 1e-6:
            omitted[name] = (
                f"not shorter than the reference MD ({reference.duration_ps:g} ps) it is compared with"
            )
        else:
            row = source.truncated(length)
            if row.n_frames < MIN_MD_ROW_FRAMES:  # e.g. MD of the cost of a fast sampler on a slow machine
                omitted[name] = (
                    f"{row.n_frames} frame(s) of MD: too short for a decorrelation curve "
                    f"(at least {MIN_MD_ROW_FRAMES} frames)"
                )
            else:
                rows[name] = row
    return rows, omitted


def evaluate_forward(
    name: str,
    samples: TrajectoryGroup,
    reference: TrajectoryGroup,
    replica: TrajectoryGroup | None,
    settings: ForwardSettings,
) -> ForwardAnalysis:
    """All forward rows of one peptide; `samples`, `reference` and `replica` must share one topology."""
    ref = build_forward_reference(reference, settings)
    trivial = TrajectoryGroup(
        (repeat_first_frame(samples.trajectories[0], samples.n_frames, samples.timestep_ps),),
        samples.timestep_ps,
        f"{samples.source} frame 0 repeated",
    )
    md_rows, omitted = md_truncations(reference, replica, settings.md_truncations_ps)
    candidates = {GENERATED: samples, TRIVIAL_BASELINE: trivial, **md_rows}
    analyses = {row: score_candidate(ref, group, settings) for row, group in candidates.items()}
    notes = list(ref.state_model.notes)
    if replica is None and md_rows:
        notes.append(
            "MD rows are prefixes of the reference itself (optimistic); pass replica_dir= for independent MD"
        )
    if ref.decorrelation.lags_ps[-1] < settings.decorrelation_max_lag_ps:
        notes.append(
            f"reference decorrelation limited to {ref.decorrelation.lags_ps[-1]:g} ps (half its length) "
            f"instead of {settings.decorrelation_max_lag_ps:g} ps"
        )
    model = ref.state_model
    result = ForwardPeptideResult(
        name=name,
        reference_source=reference.source,
        reference_duration_ps=reference.duration_ps,
        reference_timestep_ps=reference.timestep_ps,
        n_states=model.n_states,
        n_clusters=len(model.cluster_centers),
        n_tica_components=model.n_kept_components,
        reference_populations=tuple((ref.populations / ref.populations.sum()).tolist()),
        reference_validity=validity_scores(md.join(reference.trajectories), ref.geometry),
        reference_relaxation_times=dict(zip(ref.definitions.labels, ref.relaxation)),
        rows={row: analysis.scores for row, analysis in analyses.items()},
        omitted_rows=omitted,
        notes=tuple(notes),
    )
    return ForwardAnalysis(result, ref, analyses)
