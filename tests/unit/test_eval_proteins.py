"""Protein-ensemble metrics on inputs with analytic answers."""

import mdtraj as md
import numpy as np
import pytest

from eval_peptide import markov_chain, peptide_frame, peptide_trajectory
from mdgen.evaluation.loading import TrajectoryGroup
from mdgen.evaluation.proteins import ProteinSettings, mean_pairwise_rmsd, pca_w2, rmwd, score_protein


def test_rmwd_of_shifted_and_widened_gaussians():
    rng = np.random.default_rng(0)
    md_coords = rng.standard_normal((200_000, 1, 3))
    shift = np.array([1.0, 2.0, 2.0])  # |shift| = 3
    generated = 2.0 * rng.standard_normal((200_000, 1, 3)) + shift
    total, translation, variance = rmwd(md_coords, generated)
    # W2^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2) = 9 + 3 (1 + 4 - 4) = 12
    assert translation == pytest.approx(3.0, rel=0.01)
    assert variance == pytest.approx(np.sqrt(3.0), rel=0.01)
    assert total == pytest.approx(np.sqrt(12.0), rel=0.01)


def test_pairwise_rmsd_and_pca_w2_on_constructed_ensembles():
    two_frames = np.zeros((2, 4, 3))
    two_frames[1, :, 0] = 2.0  # every atom moved 2 A
    assert mean_pairwise_rmsd(two_frames) == pytest.approx(2.0)
    rng = np.random.default_rng(1)
    ensemble = np.zeros((300, 4, 3))
    ensemble[:, 0, 0] = 3.0 * rng.standard_normal(300)  # one atom moving along x: PC1
    assert pca_w2(ensemble, ensemble, rng) == pytest.approx(0.0, abs=1e-9)
    shifted = ensemble.copy()
    shifted[:, 0, 0] += 2.0  # every matched pair 2 A apart along PC1, reported per atom: 2 / sqrt(4)
    assert pca_w2(ensemble, shifted, rng) == pytest.approx(1.0, rel=1e-6)


def test_identical_ensembles_score_perfectly(tmp_path):
    frame = peptide_frame(tmp_path)
    rng = np.random.default_rng(2)
    chain = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]])
    traj = peptide_trajectory(frame, markov_chain(chain, 200, rng), rng)
    group = TrajectoryGroup.from_trajectories([traj], "ensemble")
    scores = score_protein(group, group, md.Trajectory(frame.xyz, frame.topology), ProteinSettings())
    assert scores.n_residues == 4
    assert scores.rmsf_pearson_r == pytest.approx(1.0)
    assert scores.md_pairwise_rmsd_A == pytest.approx(scores.generated_pairwise_rmsd_A)
    assert scores.rmwd_A == pytest.approx(0.0, abs=1e-3)
    assert scores.md_pca_w2_A == pytest.approx(0.0, abs=1e-6)
