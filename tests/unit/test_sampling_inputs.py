"""Inputs are checked early, with messages naming the value and the problem."""

from pathlib import Path

import numpy as np
import pytest

from mdgen.sampling.inputs import (
    SamplingInputError,
    check_frame_index,
    check_sequence_matches,
    check_sequences,
    read_input_trajectory,
    structure_from_frame,
)
from mdgen.trajectory_files import TrajectoryError, write_trajectory

DEMO_MD = Path(__file__).resolve().parents[2] / "data" / "demo" / "md"


def demo_entry() -> Path:
    """A finished demo peptide directory NAME/ with NAME.pdb and NAME.xtc."""
    for directory in sorted(DEMO_MD.glob("*")):
        if (directory / "info.json").is_file():
            return directory
    pytest.skip("data/demo/md holds no finished peptide")


def test_non_standard_letter_is_named():
    with pytest.raises(SamplingInputError, match=r"MKXE.*\['X'\]"):
        check_sequences(["AAAA", "mkxe"])
    with pytest.raises(SamplingInputError, match="listed twice"):
        check_sequences(["AAAA", "aaaa"])
    assert check_sequences(["mkwe"]) == ["MKWE"]


def test_frame_index_range_is_checked():
    assert check_frame_index(-1, 5, "input_frame", "x.xtc") == 4
    with pytest.raises(SamplingInputError, match=r"input_frame=5 .*x.xtc has 5 frames"):
        check_frame_index(5, 5, "input_frame", "x.xtc")


def test_trajectory_of_another_topology_fails_before_any_work(tmp_path):
    entry = demo_entry()
    other = np.zeros((2, 2, 14, 3), np.float32)
    other[:, 1, :, 0] = 3.8
    _, wrong_xtc = write_trajectory(tmp_path / "GG", other, np.array([7, 7]), timestep_ps=1.0)
    with pytest.raises(TrajectoryError, match="atom count mismatch"):
        read_input_trajectory(entry / f"{entry.name}.pdb", wrong_xtc)
    with pytest.raises(SamplingInputError, match="input_xtc=.*missing.xtc: file not found"):
        read_input_trajectory(entry / f"{entry.name}.pdb", tmp_path / "missing.xtc")


def test_given_sequence_must_match_the_topology():
    entry = demo_entry()
    trajectory = read_input_trajectory(entry / f"{entry.name}.pdb", entry / f"{entry.name}.xtc")
    check_sequence_matches(trajectory, entry.name)
    with pytest.raises(SamplingInputError, match=f"topology sequence {entry.name} does not match.*AAAA"):
        check_sequence_matches(trajectory, "AAAA")
    start = structure_from_frame(trajectory, -1, "X")
    np.testing.assert_array_equal(start.atom14, trajectory.atom14[-1])
    assert start.sequence == entry.name
