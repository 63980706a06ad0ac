"""Outputs appear atomically, count as finished only when complete, and concatenate with correct time."""

import json

import mdtraj
import numpy as np
import pytest

from mdgen.constants import aatype_from_sequence
from mdgen.sampling.writer import TrajectoryOutput, atomic_write_text, concatenate_outputs, write_json


def ideal_frames(num_frames: int, sequence: str = "AGKW", seed: int = 0) -> np.ndarray:
    """(T, L, 14, 3) Å of a straight ideal chain, jittered per frame (geometry does not matter here)."""
    rng = np.random.default_rng(seed)
    base = np.zeros((len(sequence), 14, 3), np.float32)
    base[:, :, 0] = np.arange(len(sequence))[:, None] * 3.8
    base += np.arange(14)[None, :, None] * 0.3
    return np.stack([base + rng.normal(0, 0.1, base.shape).astype(np.float32) for _ in range(num_frames)])


def test_atomic_write_leaves_only_the_final_file(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    assert path.read_text() == "hello"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]
    write_json(tmp_path / "b.json", {"x": np.float32(1.5), "y": np.arange(2)})
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": 1.5, "y": [0, 1]}


def test_output_is_finished_only_when_its_last_file_exists(tmp_path):
    output = TrajectoryOutput(tmp_path / "X_0", has_record=True)
    assert not output.is_finished()
    output.write(ideal_frames(3), aatype_from_sequence("AGKW"), 10.0, record={"index": 0})
    assert output.is_finished() and output.read_record() == {"index": 0}
    output.record.unlink()  # interrupted before the record: not finished
    assert not output.is_finished()
    with pytest.raises(ValueError, match="record is required"):
        output.write(ideal_frames(3), aatype_from_sequence("AGKW"), 10.0)


def test_concatenated_parts_continue_in_time_and_are_removed(tmp_path):
    aatype = aatype_from_sequence("AGKW")
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
