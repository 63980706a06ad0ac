"""Upsampling scores on fine synthetic trajectories with fast (AR(1)) and slow (state) motion."""

import numpy as np
import pytest

from eval_peptide import markov_chain, peptide_frame, peptide_trajectory
from mdgen.analysis.loading import TrajectoryGroup
from mdgen.evaluation.upsampling import HELD, INTERPOLATED, UPSAMPLED, UpsamplingSettings, evaluate_upsampling
from mdgen.timesteps import TimeStepError

SLOW_CHAIN = np.full((3, 3), 0.002) + np.eye(3) * 0.994
SETTINGS = UpsamplingSettings(coarse_interval_ps=5.0, curve_max_lag_ps=50.0)


def _fine_group(frame, seed, timestep_ps=0.1):
    rng = np.random.default_rng(seed)
    states = markov_chain(SLOW_CHAIN, 4000, rng)
    traj = peptide_trajectory(frame, states, rng, noise_deg=15.0, timestep_ps=timestep_ps, noise_memory=0.9)
    return TrajectoryGroup.from_trajectories([traj], f"fine-{seed}")


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return peptide_frame(tmp_path_factory.mktemp("peptide"))


def test_same_process_recovers_the_sub_interval_decorrelation(frame):
    analysis = evaluate_upsampling("AKIR", _fine_group(frame, 1), _fine_group(frame, 0), SETTINGS)
    rows = analysis.result.rows
    assert rows[UPSAMPLED].recovered_fraction == pytest.approx(1.0, abs=0.15)
    assert rows[UPSAMPLED].n_torsions_scored == 6  # backbone moves; side chains are rigid here
    assert rows[UPSAMPLED].n_torsions_excluded == len(analysis.labels) - 6
    for baseline in (HELD, INTERPOLATED):
        assert rows[UPSAMPLED].curve_mean_abs_difference < 0.5 * rows[baseline].curve_mean_abs_difference
    assert analysis.coarse_input.lags_ps[1] == pytest.approx(5.0)


def test_identical_trajectory_scores_exactly_one(frame):
    reference = _fine_group(frame, 0)
    scores = evaluate_upsampling("AKIR", reference, reference, SETTINGS).result.rows[UPSAMPLED]
    assert scores.recovered_fraction == pytest.approx(1.0)
    assert scores.curve_mean_abs_difference == pytest.approx(0.0, abs=1e-12)


def test_coarse_interval_must_be_whole_fine_frames(frame):
    with pytest.raises(TimeStepError, match="coarse_interval_ps=0.25 ps is not a whole multiple"):
        evaluate_upsampling(
            "AKIR", _fine_group(frame, 1), _fine_group(frame, 0), UpsamplingSettings(coarse_interval_ps=0.25)
        )
