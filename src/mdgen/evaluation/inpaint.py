"""Inpainting metrics: sequence recovery of the designed residues (METHOD 7.5), with the original's 'final design' bug fixed.

Samples: `samples_dir/NAME_inpaint.json` (or `NAME_design.json` of an older mdgen; format: `mdgen.sample_files.InpaintManifest`); the evaluator reads

    {"name": "AKIR", "true_sequence": "AKIR", "designed_positions": [1, 2],
     "start_state": 3, "end_state": 5,                      # optional
     "topology": "AKIR.pdb",                                 # optional, needed with "xtc"
     "samples": [{"sequence": "AKIR", "predicted_sequence": "AKIR", "xtc": "AKIR_0.xtc"}, ...]}

Positions are 0-based; every other position is a *conditioning* position (the flanks). Sequences use
one-letter codes; `X` marks a position the model did not predict, which is left out of recoveries.
A sample's scored sequence is its `predicted_sequence` (the model's identities at every position it
generated, as `mdgen.sample` writes) when present, else its `sequence` (the sequence the structure was
built with: true identities at conditioning positions, so conditioning recovery would be trivially 1).
Trajectories ("xtc", optional) are looked up by file name next to the JSON, so the folder can move. `start_state`/`end_state` are metastable-state labels of the evaluator's reference
state model (`mdgen.analysis.msm.reference_state_model` on `reference_dir/NAME/NAME.xtc` with the same settings);
when given with per-sample trajectories (decoded with the true sequence's atoms, as in the original),
the evaluator reports how many samples start in `start_state` and end in `end_state`.

Scores:
- `designed_recovery` / `conditioning_recovery`: fraction of positions equal to the truth, mean over samples;
- `majority_*`: per-position majority vote over samples (ties: alphabetically first letter), vs the truth;
- `most_frequent_designed`: the most frequent designed subsequence (ties: first seen) and its recovery;
- `final_design`: the sample with the BEST conditioning recovery (ties: the first such sample) — the
  original sorted ascending and took the worst — and its designed recovery.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdgen.analysis.features import cos_sin, torsion_angles
from mdgen.analysis.loading import (
    EvaluationInputError,
    TrajectoryGroup,
    file_in_manifest_dir,
    load_trajectory,
    match_atoms,
)
from mdgen.analysis.msm import StateModelSettings, reference_state_model
from mdgen.sample_files import INPAINT_SUFFIX, NOT_PREDICTED, read_inpaint_manifest


@dataclass(frozen=True)
class InpaintSample:
    sequence: str
    trajectory: Path | None


@dataclass(frozen=True)
class InpaintSpec:
    name: str
    true_sequence: str
    designed_positions: tuple[int, ...]
    samples: tuple[InpaintSample, ...]
    start_state: int | None
    end_state: int | None
    topology: Path | None
    manifest: Path | None = None  # the file read (NAME_inpaint.json, or an older mdgen's NAME_design.json)

    @property
    def conditioning_positions(self) -> tuple[int, ...]:
        return tuple(i for i in range(len(self.true_sequence)) if i not in self.designed_positions)


def read_inpaint_spec(path: Path) -> InpaintSpec:
    """A NAME_inpaint.json (`mdgen.sample_files.InpaintManifest`, validated there) with its files resolved:
    sample trajectories by file name next to it, the topology inside its folder. Errors name the file."""
    manifest = read_inpaint_manifest(path)
    return InpaintSpec(
        name=manifest.name,
        true_sequence=manifest.true_sequence,
        designed_positions=manifest.designed_positions,
        samples=tuple(
            InpaintSample(s.scored_sequence, path.parent / Path(s.xtc).name if s.xtc else None)
            for s in manifest.samples
        ),
        start_state=manifest.start_state,
        end_state=manifest.end_state,
        topology=path.parent / file_in_manifest_dir(path, manifest.topology, "topology")
        if manifest.topology
        else None,
        manifest=path,
    )


@dataclass(frozen=True)
class InpaintScores:
    n_samples: int
    designed_recovery: float
    conditioning_recovery: float  # NaN when every position is designed
    majority_sequence: str
    majority_designed_recovery: float
    majority_conditioning_recovery: float
    most_frequent_designed: str
    most_frequent_designed_recovery: float
    final_design_sequence: str
    final_design_designed_recovery: float
    final_design_conditioning_recovery: float
    start_state_fraction: float  # NaN unless states and trajectories are given
    target_reached_fraction: float  # NaN unless states and trajectories are given


def _recovery(sequence: str, truth: str, positions: tuple[int, ...]) -> float:
    """Fraction of `positions` where `sequence` equals the truth, over predicted positions (NaN if none)."""
    scored = [i for i in positions if sequence[i] != NOT_PREDICTED]
    if not scored:
        return float("nan")
    return float(np.mean([sequence[i] == truth[i] for i in scored]))


def _majority(column: tuple[str, ...]) -> str:
    """Most frequent predicted letter (ties: alphabetically first); X when nothing was predicted."""
    counts = Counter(letter for letter in column if letter != NOT_PREDICTED)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0][0] if counts else NOT_PREDICTED


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def score_inpaint(
    spec: InpaintSpec, start_states: np.ndarray | None = None, end_states: np.ndarray | None = None
) -> InpaintScores:
    """Recovery scores; `start_states`/`end_states` (S,) are each sample's first/last-frame states, if known."""
    truth, designed, conditioning = spec.true_sequence, spec.designed_positions, spec.conditioning_positions
    sequences = [sample.sequence for sample in spec.samples]
    per_sample_conditioning = [_recovery(s, truth, conditioning) for s in sequences]
    majority = "".join(_majority(column) for column in zip(*sequences))
    designed_parts = ["".join(s[i] for i in designed) for s in sequences]
    most_frequent = Counter(designed_parts).most_common(1)[0][0]
    flank = np.nan_to_num(np.asarray(per_sample_conditioning, dtype=float), nan=-1.0)
    best = int(np.argmax(flank))  # first of the best; samples without predicted flanks rank last
    final = sequences[best]
    reached = started = float("nan")
    if start_states is not None and end_states is not None:
        started = float(np.mean(start_states == spec.start_state))
        reached = float(np.mean(end_states == spec.end_state))
    return InpaintScores(
        n_samples=len(sequences),
        designed_recovery=_nanmean([_recovery(s, truth, designed) for s in sequences]),
        conditioning_recovery=_nanmean(per_sample_conditioning),
        majority_sequence=majority,
        majority_designed_recovery=_recovery(majority, truth, designed),
        majority_conditioning_recovery=_recovery(majority, truth, conditioning),
        most_frequent_designed=most_frequent,
        most_frequent_designed_recovery=_recovery(
            most_frequent, "".join(truth[i] for i in designed), tuple(range(len(designed)))
        ),
        final_design_sequence=final,
        final_design_designed_recovery=_recovery(final, truth, designed),
        final_design_conditioning_recovery=_recovery(final, truth, conditioning),
        start_state_fraction=started,
        target_reached_fraction=reached,
    )


@dataclass(frozen=True)
class InpaintPeptideResult:
    name: str
    true_sequence: str
    designed_positions: tuple[int, ...]
    rows: dict[str, InpaintScores]  # one row, "samples"


def _manifest_name(spec: InpaintSpec) -> str:
    return spec.manifest.name if spec.manifest is not None else f"{spec.name}{INPAINT_SUFFIX}"


def endpoint_states(
    spec: InpaintSpec, reference: TrajectoryGroup, state_settings: StateModelSettings
) -> tuple[np.ndarray, np.ndarray]:
    """First- and last-frame metastable states (S,) of every sample trajectory under the reference model."""
    if spec.topology is None:
        raise EvaluationInputError(f"{_manifest_name(spec)}: samples have trajectories but no 'topology'")
    definitions, model = reference_state_model(reference, state_settings)
    starts, ends = [], []
    for sample in spec.samples:
        if sample.trajectory is None:
            raise EvaluationInputError(f"{_manifest_name(spec)}: some samples have an 'xtc' and some do not")
        traj = load_trajectory(spec.topology, sample.trajectory)
        _, traj = match_atoms(reference.trajectories[0], traj, sample.trajectory)
        states = model.states(cos_sin(torsion_angles(traj[[0, -1]], definitions)))
        starts.append(states[0])
        ends.append(states[1])
    return np.asarray(starts), np.asarray(ends)


def evaluate_inpaint(
    spec: InpaintSpec, reference: TrajectoryGroup | None, state_settings: StateModelSettings
) -> InpaintScores:
    """Recovery scores, plus target-state checks when the spec has states and trajectories."""
    wants_states = spec.start_state is not None and spec.end_state is not None
    has_trajectories = any(sample.trajectory is not None for sample in spec.samples)
    if wants_states and has_trajectories:
        if reference is None:
            raise EvaluationInputError(f"{spec.name}: state checks need the reference MD, which is missing")
        return score_inpaint(spec, *endpoint_states(spec, reference, state_settings))
    return score_inpaint(spec)
