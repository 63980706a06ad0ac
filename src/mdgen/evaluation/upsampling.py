"""Upsampling metrics (METHOD 7.4 and 12): does the fine trajectory recover sub-interval dynamics?

Samples: `samples_dir/NAME.pdb` + `NAME.xtc` (or `NAME_0.xtc`, ...), the upsampled fine trajectory.
Reference: `reference_dir/NAME/NAME_fine.xtc`, fine-interval MD (e.g. 100 fs frames).
The coarse input is the reference subsampled to `coarse_interval_ps`.

For every torsion, with decorrelation curves C (see `decorrelation`), tau_f = the reference's fine
timestep and tau_c = the coarse interval:

    R = (C_gen(tau_f) - C_gen(tau_c)) / (C_ref(tau_f) - C_ref(tau_c))

averaged over torsions (METHOD 12). R = 1: all of MD's decorrelation between tau_f and tau_c is
reproduced; R = 0: none; R > 1: too much. Torsions whose reference drop C_ref(tau_f) - C_ref(tau_c)
is below `min_reference_drop` have nothing to recover and would divide by ~0; they are excluded and
counted. Also reported: the mean |C_gen - C_ref| over log-spaced lags in [tau_f, tau_c].
Baseline rows, built from the coarse input: each coarse frame held (no motion within an interval) and
straight-line Cartesian interpolation between coarse frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdgen.analysis.features import TorsionDefinitions, torsion_angles, torsion_definitions
from mdgen.analysis.loading import TrajectoryGroup
from mdgen.evaluation.baselines import hold_coarse_frames, interpolate_coarse_frames
from mdgen.evaluation.decorrelation import DecorrelationCurves, decorrelation_curves, log_spaced_lags
from mdgen.timesteps import frames_per_interval

UPSAMPLED = "upsampled"
HELD = "coarse frames held"
INTERPOLATED = "linear interpolation"


@dataclass(frozen=True)
class UpsamplingSettings:
    coarse_interval_ps: float = 10.0
    curve_max_lag_ps: float = 100.0  # plotted range
    n_log_lags: int = 20
    min_reference_drop: float = 0.02


@dataclass(frozen=True)
class UpsamplingScores:
    recovered_fraction: float  # mean R over scored torsions
    recovered_fraction_median: float
    recovered_fraction_per_torsion: dict[str, float]  # NaN for excluded torsions
    curve_mean_abs_difference: (
        float  # mean |C_gen - C_ref| on log-spaced lags in [tau_f, tau_c], all torsions
    )
    n_torsions_scored: int
    n_torsions_excluded: int


@dataclass(frozen=True)
class UpsamplingPeptideResult:
    name: str
    fine_timestep_ps: float
    coarse_interval_ps: float
    reference_duration_ps: float
    rows: dict[str, UpsamplingScores]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class UpsamplingAnalysis:
    result: UpsamplingPeptideResult
    labels: tuple[str, ...]
    reference: DecorrelationCurves
    coarse_input: DecorrelationCurves
    candidates: dict[str, DecorrelationCurves]


def _curves(
    group: TrajectoryGroup, definitions: TorsionDefinitions, max_lag_ps: float
) -> DecorrelationCurves:
    angles = [torsion_angles(traj, definitions) for traj in group.trajectories]
    return decorrelation_curves(angles, group.timestep_ps, max_lag_ps)


def score_upsampling(
    reference: DecorrelationCurves,
    candidate: DecorrelationCurves,
    labels: tuple[str, ...],
    fine_ps: float,
    coarse_ps: float,
    settings: UpsamplingSettings,
) -> UpsamplingScores:
    reference_drop = reference.at(fine_ps) - reference.at(coarse_ps)  # (F,)
    candidate_drop = candidate.at(fine_ps) - candidate.at(coarse_ps)
    scored = np.isfinite(reference_drop) & (reference_drop >= settings.min_reference_drop)
    ratio = np.where(scored, candidate_drop / np.where(scored, reference_drop, 1.0), np.nan)
    lags = log_spaced_lags(fine_ps, coarse_ps, fine_ps, settings.n_log_lags)
    difference = np.abs(np.stack([candidate.at(lag) - reference.at(lag) for lag in lags]))  # (K, F)
    finite_ratio = ratio[np.isfinite(ratio)]
    return UpsamplingScores(
        recovered_fraction=float(finite_ratio.mean()) if len(finite_ratio) else float("nan"),
        recovered_fraction_median=float(np.median(finite_ratio)) if len(finite_ratio) else float("nan"),
        recovered_fraction_per_torsion=dict(zip(labels, ratio.tolist())),
        curve_mean_abs_difference=float(np.nanmean(difference))
        if np.isfinite(difference).any()
        else float("nan"),
        n_torsions_scored=int(np.isfinite(ratio).sum()),
        n_torsions_excluded=int(len(ratio) - np.isfinite(ratio).sum()),
    )


def evaluate_upsampling(
    name: str, samples: TrajectoryGroup, reference_fine: TrajectoryGroup, settings: UpsamplingSettings
) -> UpsamplingAnalysis:
    """Rows: the upsampled samples and the two coarse-input baselines; the groups must share one topology."""
    fine_ps = reference_fine.timestep_ps
    coarse_ps = settings.coarse_interval_ps
    factor = frames_per_interval(coarse_ps, fine_ps, reference_fine.source, "coarse_interval_ps")
    frames_per_interval(coarse_ps, samples.timestep_ps, samples.source, "coarse_interval_ps")
    max_lag = max(settings.curve_max_lag_ps, coarse_ps)
    definitions = torsion_definitions(reference_fine.trajectories[0].topology)

    coarse_trajs = tuple(traj[::factor] for traj in reference_fine.trajectories)
    coarse = TrajectoryGroup(coarse_trajs, coarse_ps, f"{reference_fine.source} every {coarse_ps:g} ps")
    baselines = {
        HELD: TrajectoryGroup(
            tuple(hold_coarse_frames(t, factor, fine_ps) for t in coarse_trajs), fine_ps, "held coarse frames"
        ),
        INTERPOLATED: TrajectoryGroup(
            tuple(interpolate_coarse_frames(t, factor, fine_ps) for t in coarse_trajs),
            fine_ps,
            "interpolated",
        ),
    }
    reference_curves = _curves(reference_fine, definitions, max_lag)
    candidates = {UPSAMPLED: samples, **baselines}
    curves = {row: _curves(group, definitions, max_lag) for row, group in candidates.items()}
    rows = {
        row: score_upsampling(reference_curves, curve, definitions.labels, fine_ps, coarse_ps, settings)
        for row, curve in curves.items()
    }
    notes = []
    if samples.timestep_ps != fine_ps:
        notes.append(
            f"upsampled timestep {samples.timestep_ps:g} ps differs from the reference's {fine_ps:g} ps"
        )
    result = UpsamplingPeptideResult(
        name=name,
        fine_timestep_ps=fine_ps,
        coarse_interval_ps=coarse_ps,
        reference_duration_ps=reference_fine.duration_ps,
        rows=rows,
        notes=tuple(notes),
    )
    coarse_curves = _curves(coarse, definitions, max_lag)
    return UpsamplingAnalysis(result, definitions.labels, reference_curves, coarse_curves, curves)
