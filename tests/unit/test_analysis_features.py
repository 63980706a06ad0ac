"""Torsion featurisation (explicit residue-paired order) and sample/reference atom matching."""

import mdtraj as md
import numpy as np
import pytest

from eval_peptide import STATE_TORSIONS, peptide_frame, peptide_trajectory, write_peptide
from mdgen.analysis.features import cos_sin, torsion_angles, torsion_definitions
from mdgen.analysis.loading import (
    EvaluationInputError,
    TrajectoryGroup,
    load_trajectory,
    match_atoms,
)
from mdgen.timesteps import TimeStepError


def test_torsions_are_ordered_by_residue_and_paired_per_residue(tmp_path):
    definitions = torsion_definitions(peptide_frame(tmp_path).topology)
    assert definitions.labels[:4] == ("psi:ALA1", "phi:LYS2", "psi:LYS2", "chi1:LYS2")
    assert definitions.pair_labels == ("LYS2", "ILE3")
    for phi, psi in definitions.residue_pairs:
        assert definitions.labels[phi].replace("phi", "psi") == definitions.labels[psi]
    assert definitions.is_backbone.sum() == 6
    assert "chi5:ARG4" in definitions.labels


def test_torsion_angles_reproduce_the_angles_that_built_the_frames(tmp_path):
    rng = np.random.default_rng(0)
    traj = peptide_trajectory(peptide_frame(tmp_path), np.array([0, 1, 2]), rng, noise_deg=0.0)
    definitions = torsion_definitions(traj.topology)
    angles = torsion_angles(traj, definitions)
    np.testing.assert_allclose(angles[:, definitions.is_backbone], STATE_TORSIONS, atol=1e-4)
    assert cos_sin(angles).shape == (3, 2 * len(definitions.labels))


@pytest.mark.filterwarnings("ignore:atom_indices are not monotonically increasing")
def test_match_atoms_allows_a_missing_terminal_oxygen_and_reorders_atoms(tmp_path):
    reference = peptide_frame(tmp_path)
    keep = [a.index for a in reference.topology.atoms if a.name != "OXT"][::-1]  # reversed order, no OXT
    sample = reference.atom_slice(keep)
    ref_common, sample_common = match_atoms(reference, sample, "sample.xtc")
    assert ref_common.n_atoms == sample_common.n_atoms == reference.n_atoms - 1
    np.testing.assert_allclose(ref_common.xyz, sample_common.xyz)


def test_match_atoms_names_the_file_when_atoms_differ(tmp_path):
    reference = peptide_frame(tmp_path)
    no_cb = reference.atom_slice([a.index for a in reference.topology.atoms if a.name != "CB"])
    with pytest.raises(EvaluationInputError, match=r"bad\.xtc: atoms do not match.*ALA1:CB"):
        match_atoms(reference, no_cb, "bad.xtc")


def test_loading_checks_files_and_time_stamps(tmp_path):
    traj = peptide_trajectory(
        peptide_frame(tmp_path), np.zeros(20, int), np.random.default_rng(1), timestep_ps=2.5
    )
    write_peptide(tmp_path / "X", traj)
    loaded = load_trajectory(tmp_path / "X.pdb", tmp_path / "X.xtc")
    group = TrajectoryGroup.from_trajectories([loaded, loaded], "X")
    assert (group.timestep_ps, group.n_frames, group.duration_ps) == (
        pytest.approx(2.5),
        40,
        pytest.approx(100.0),
    )
    assert group.truncated(60.0).n_frames == 24
    with pytest.raises(
        TimeStepError, match=r"^X: truncation=61.0 ps is not a whole multiple of the frame spacing 2.5"
    ):
        group.truncated(61.0)  # 24.4 frames: never rounded down silently
    with pytest.raises(EvaluationInputError, match="missing.xtc: file not found"):
        load_trajectory(tmp_path / "X.pdb", tmp_path / "missing.xtc")
    frozen_clock = md.Trajectory(loaded.xyz, loaded.topology, time=np.zeros(loaded.n_frames))
    with pytest.raises(TimeStepError, match="frozen.xtc: time stamps are not uniformly increasing"):
        TrajectoryGroup.from_trajectories([frozen_clock], "frozen.xtc")
