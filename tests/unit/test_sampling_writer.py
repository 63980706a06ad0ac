"""Outputs appear atomically, count as finished only when complete, and concatenate with correct time."""

import json
from pathlib import Path

import mdtraj
import numpy as np
import pytest

from mdgen.constants import aatype_from_sequence
from mdgen.sampling.writer import (
    TrajectoryOutput,
    concatenate_outputs,
    recording_writes,
    write_json,
    write_text,
)
from mdgen.trajectory_files import read_trajectory

FLRH = Path(__file__).resolve().parents[1] / "fixtures" / "trajectories" / "FLRH"


def ideal_frames(num_frames: int, sequence: str = "FLRH", seed: int = 0) -> np.ndarray:
    """(T, L, 14, 3) Å: frame 0 of the FLRH fixture, jittered by 0.02 Å per frame (real bond geometry,
    which reading the parts back checks; the values themselves do not matter here)."""
    assert sequence == "FLRH"
    trajectory = read_trajectory(FLRH.with_suffix(".pdb"), FLRH.with_suffix(".xtc"))
    base = np.where(trajectory.atom14_mask[..., None], trajectory.atom14[0], 0.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    jitter = rng.normal(0, 0.02, (num_frames, *base.shape)).astype(np.float32)
    return base + jitter * trajectory.atom14_mask[..., None]


def test_atomic_write_leaves_only_the_final_file_and_announces_it_first(tmp_path):
    """Catches a write that skips the ledger (the sampling record would miss the file)."""
    announced = []
    with recording_writes(lambda path: announced.append((path, path.exists()))):
        path = write_text(tmp_path / "sub" / "a.txt", "hello")
    assert path.read_text() == "hello"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]
    assert announced == [(tmp_path / "sub" / "a.txt", False)]  # named before it was created
    write_json(tmp_path / "b.json", {"x": np.float32(1.5), "y": np.arange(2)})
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": 1.5, "y": [0, 1]}


def test_output_is_finished_only_when_its_last_file_exists(tmp_path):
    output = TrajectoryOutput(tmp_path / "X_0", has_record=True)
    assert not output.is_finished()
    output.write(ideal_frames(3), aatype_from_sequence("FLRH"), 10.0, record={"index": 0})
    assert output.is_finished() and output.read_record() == {"index": 0}
    output.record.unlink()  # interrupted before the record: not finished
    assert not output.is_finished()
    with pytest.raises(ValueError, match="record is required"):
        output.write(ideal_frames(3), aatype_from_sequence("FLRH"), 10.0)


def test_concatenated_parts_continue_in_time_and_are_removed(tmp_path):
    aatype = aatype_from_sequence("FLRH")
    parts = [TrajectoryOutput(tmp_path / "parts" / f"P_{i}") for i in range(3)]
    for i, part in enumerate(parts):
        part.write(ideal_frames(4, seed=i), aatype, 10.0)
    target = TrajectoryOutput(tmp_path / "P")
    concatenate_outputs(parts, target, 10.0)
    traj = mdtraj.load(str(target.xtc), top=str(target.pdb))
    assert traj.n_frames == 12
    np.testing.assert_allclose(np.diff(traj.time), 10.0, atol=1e-3)
    expected = ideal_frames(4, seed=1)[0, 0, 0] / 10.0  # frame 4 = first frame of part 1, in nm
    np.testing.assert_allclose(traj.xyz[4, 0], expected, atol=2e-3)
    assert not any(part.xtc.exists() or part.pdb.exists() for part in parts)
