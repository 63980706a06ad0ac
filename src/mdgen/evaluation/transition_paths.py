"""Transition-path metrics (METHOD 7.3) for interpolated trajectories between two metastable states.

Samples: `samples_dir/NAME_paths.json` (format: `mdgen.sample_files.PathsManifest`); the evaluator needs only

    {"name": "AKIR", "topology": "AKIR.pdb", "paths": [{"xtc": "AKIR_0.xtc"}, {"xtc": "AKIR_1.xtc"}, ...]}

(only the file name of each entry is used: files are looked up next to the JSON, so the folder can
move; "topology" optional, default `NAME.pdb`, else the first path's `NAME_0.pdb`; the sampler's
endpoint frames and states are not used). Start and end states are *not* taken from the sampler: the evaluator discretises each
generated path with its own reference model (`mdgen.analysis.msm.ReferenceStateModel`), and the (start, end) pair is
the most common (first frame, last frame) state pair; `endpoint_agreement` says how many paths have it.

Each path is reduced to the states at multiples of the MSM lag (and its last frame, which may make the
last step shorter; `last_step_ps` says so). Under the reference coarse MSM (metastable states, lag
`msm_lag_ps`) a path's Markov-bridge probability (see `mdgen.analysis.bridge`) is zero if it starts or ends elsewhere,
visits an unassigned frame or a state outside the MSM's active set, or makes a transition the MSM
never saw. Scores per ensemble:
- `state_visitation_jsd`: JS distance of the state-visitation histogram to that of bridge paths
  sampled from the reference MSM (states + an 'unassigned' bin);
- `valid_path_rate`: fraction of paths with nonzero bridge probability;
- `mean_path_probability` (all paths) and `mean_valid_path_probability` (nonzero ones).
Rows: generated paths; an independent draw of reference bridge paths (noise floor); and, with a
replica MD, bridge paths of an MSM fitted to each replica prefix (how much MD gives equally good paths).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdgen.analysis.bridge import bridge_likelihood, sample_bridge_paths
from mdgen.analysis.features import cos_sin, torsion_angles
from mdgen.analysis.loading import (
    EvaluationInputError,
    TrajectoryGroup,
    file_in_manifest_dir,
    load_trajectory,
    match_atoms,
)
from mdgen.analysis.msm import (
    UNASSIGNED,
    DiscreteMSM,
    StateModelSettings,
    estimate_msm,
    reference_state_model,
)
from mdgen.evaluation import jsd
from mdgen.evaluation.forward import md_truncations
from mdgen.sample_files import read_paths_manifest
from mdgen.timesteps import frames_per_interval, same_timestep, timestep_from_stamps

GENERATED = "generated"
REFERENCE_BRIDGE = "reference MSM bridge (independent draw)"


@dataclass(frozen=True)
class TransitionPathSettings:
    n_reference_paths: int = 1000
    seed: int = 137
    replica_lengths_ps: tuple[float, ...] = (1000.0, 10000.0)


@dataclass(frozen=True)
class PathEnsembleScores:
    n_paths: int
    state_visitation_jsd: float  # NaN when the ensemble has no paths to compare
    valid_path_rate: float
    mean_path_probability: float
    mean_valid_path_probability: float  # NaN when no path is valid
    visitation: tuple[float, ...]  # normalised, states then 'unassigned'


@dataclass(frozen=True)
class PathPeptideResult:
    name: str
    start_state: int
    end_state: int
    endpoint_agreement: float  # fraction of generated paths with the (start, end) pair
    n_path_states: int  # states per reduced path
    step_ps: float
    last_step_ps: float
    rows: dict[str, PathEnsembleScores]
    omitted_rows: dict[str, str]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class PathAnalysis:
    result: PathPeptideResult
    reference_flux: np.ndarray  # (n_states, n_states) pi_i T_ij of the reference coarse MSM
    generated_flux: np.ndarray | None  # same for an MSM (lag 1 step) on the generated reduced paths


def read_path_manifest(path: Path) -> tuple[Path, list[Path]]:
    """(topology, path trajectories) from a NAME_paths.json (`mdgen.sample_files.PathsManifest`); errors
    name the JSON. Trajectories are looked up by file name next to it; the topology must lie inside its folder."""
    manifest = read_paths_manifest(path)
    entries = [Path(Path(entry.xtc).name) for entry in manifest.paths]
    candidates = (
        [file_in_manifest_dir(path, manifest.topology, "topology")]
        if manifest.topology is not None
        else [Path(f"{manifest.name}.pdb"), entries[0].with_suffix(".pdb")]
    )
    topology = next((path.parent / c for c in candidates if (path.parent / c).is_file()), None)
    if topology is None:
        raise EvaluationInputError(f"{path}: no topology found (tried {[str(c) for c in candidates]})")
    return topology, [path.parent / entry for entry in entries]


def reduced_path_indices(n_frames: int, step_frames: int) -> np.ndarray:
    """Frames 0, step, 2 step, ... and the last frame."""
    indices = np.arange(0, n_frames, step_frames)
    return indices if indices[-1] == n_frames - 1 else np.append(indices, n_frames - 1)


def _visitation(paths: np.ndarray, n_states: int) -> np.ndarray:
    labels = np.where(paths == UNASSIGNED, n_states, paths).ravel()
    return np.bincount(labels, minlength=n_states + 1).astype(np.float64)


def score_paths(
    label_paths: np.ndarray, msm: DiscreteMSM, start: int, end: int, reference_visitation: np.ndarray
) -> PathEnsembleScores:
    """Scores of state-label paths (P, N) under the reference coarse MSM's bridge start -> end (labels)."""
    active_paths = msm.to_active(label_paths)
    start_index, end_index = msm.to_active(np.array([start, end]))
    likelihood = bridge_likelihood(msm.transition_matrix, active_paths, int(start_index), int(end_index))
    valid = likelihood > 0
    visitation = _visitation(label_paths, msm.n_labels)
    return PathEnsembleScores(
        n_paths=len(label_paths),
        state_visitation_jsd=jsd.js_distance(reference_visitation, visitation),
        valid_path_rate=float(valid.mean()),
        mean_path_probability=float(likelihood.mean()),
        mean_valid_path_probability=float(likelihood[valid].mean()) if valid.any() else float("nan"),
        visitation=tuple((visitation / visitation.sum()).tolist()),
    )


def _bridge_label_paths(msm: DiscreteMSM, start: int, end: int, length: int, n: int, rng) -> np.ndarray:
    start_index, end_index = msm.to_active(np.array([start, end]))
    active = sample_bridge_paths(msm.transition_matrix, int(start_index), int(end_index), length, n, rng)
    return msm.active_labels[active]


def evaluate_paths(
    name: str,
    manifest: Path,
    reference: TrajectoryGroup,
    replica: TrajectoryGroup | None,
    state_settings: StateModelSettings,
    settings: TransitionPathSettings,
) -> PathAnalysis:
    topology, path_files = read_path_manifest(manifest)
    ref_traj = reference.trajectories[0]
    definitions, model = reference_state_model(reference, state_settings)
    msm = model.state_msm

    label_paths, path_step, n_frames = [], None, None
    for file in path_files:
        traj = load_trajectory(topology, file)
        _, traj = match_atoms(ref_traj, traj, file)
        dt = timestep_from_stamps(traj.time, file)
        if n_frames is not None and (traj.n_frames != n_frames or not same_timestep(dt, path_step)):
            raise EvaluationInputError(f"{file}: {traj.n_frames} frames at {dt} ps, unlike the first path")
        n_frames, path_step = traj.n_frames, dt
        label_paths.append(model.states(cos_sin(torsion_angles(traj, definitions))))
    step_frames = frames_per_interval(
        state_settings.msm_lag_ps, path_step, f"the paths of {name}", "msm_lag_ps"
    )
    indices = reduced_path_indices(n_frames, step_frames)
    generated = np.stack(label_paths)[:, indices]  # (P, N) state labels

    pairs = Counter((int(p[0]), int(p[-1])) for p in generated if p[0] != UNASSIGNED and p[-1] != UNASSIGNED)
    if not pairs:
        raise EvaluationInputError(f"{manifest}: no path starts and ends in an assigned metastable state")
    (start, end), count = pairs.most_common(1)[0]
    inactive = [s for s in (start, end) if msm.to_active(np.array([s]))[0] < 0]
    if inactive:
        raise EvaluationInputError(
            f"{manifest}: endpoint states {inactive} are outside the reference MSM's active set"
        )

    rng = np.random.default_rng(settings.seed)
    length = len(indices)
    try:
        reference_paths = _bridge_label_paths(msm, start, end, length, settings.n_reference_paths, rng)
    except ValueError as error:  # e.g. the reference MSM cannot reach `end` from `start` in the path's steps
        raise EvaluationInputError(
            f"{manifest}: no reference bridge paths {start} -> {end} ({error})"
        ) from error
    reference_visitation = _visitation(reference_paths, model.n_states)
    rows = {
        GENERATED: score_paths(generated, msm, start, end, reference_visitation),
        REFERENCE_BRIDGE: score_paths(
            _bridge_label_paths(msm, start, end, length, settings.n_reference_paths, rng),
            msm,
            start,
            end,
            reference_visitation,
        ),
    }
    omitted, notes = {}, list(model.notes)
    if replica is not None:
        replica_rows, omitted = md_truncations(reference, replica, settings.replica_lengths_ps)
        for row, group in replica_rows.items():
            states = [model.states(cos_sin(torsion_angles(t, definitions))) for t in group.trajectories]
            lag = frames_per_interval(
                state_settings.msm_lag_ps, group.timestep_ps, group.source, "msm_lag_ps"
            )
            try:
                replica_msm = estimate_msm(states, lag, model.n_states)
                paths = _bridge_label_paths(replica_msm, start, end, length, settings.n_reference_paths, rng)
            except ValueError as error:  # the replica never connects start to end: no paths at all
                rows[f"replica {row}"] = PathEnsembleScores(0, float("nan"), 0.0, 0.0, float("nan"), ())
                notes.append(f"replica {row}: no bridge paths ({error}); valid rate and probability set to 0")
                continue
            rows[f"replica {row}"] = score_paths(paths, msm, start, end, reference_visitation)

    try:
        generated_flux = estimate_msm(list(generated), 1, model.n_states).flux_in_label_space()
    except ValueError as error:
        generated_flux = None
        notes.append(f"no MSM on the generated paths ({error})")
    result = PathPeptideResult(
        name=name,
        start_state=start,
        end_state=end,
        endpoint_agreement=count / len(generated),
        n_path_states=length,
        step_ps=step_frames * path_step,
        last_step_ps=float(indices[-1] - indices[-2]) * path_step,
        rows=rows,
        omitted_rows=omitted,
        notes=tuple(notes),
    )
    return PathAnalysis(result, msm.flux_in_label_space(), generated_flux)
