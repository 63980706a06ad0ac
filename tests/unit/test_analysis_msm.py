"""MSM estimation, reference state model and Markov-bridge paths on chains with known answers."""

import itertools

import numpy as np
import pytest

from eval_peptide import markov_chain
from mdgen.analysis.bridge import bridge_likelihood, sample_bridge_paths, select_transition
from mdgen.analysis.loading import EvaluationInputError
from mdgen.analysis.msm import (
    UNASSIGNED,
    StateModelSettings,
    estimate_msm,
    fit_reference_state_model,
    split_at_unassigned,
)

# reversible 3-state chain (detailed balance with pi = (0.5, 0.3, 0.2))
CHAIN = np.array([[0.94, 0.05, 0.01], [1 / 12, 0.9, 1 / 60], [0.025, 0.025, 0.95]])
CHAIN_PI = np.array([0.5, 0.3, 0.2])


def test_chain_fixture_is_reversible_with_the_stated_stationary_distribution():
    np.testing.assert_allclose(CHAIN_PI @ CHAIN, CHAIN_PI)
    flux = CHAIN_PI[:, None] * CHAIN
    np.testing.assert_allclose(flux, flux.T)


def test_msm_recovers_stationary_distribution_and_slowest_timescale():
    labels = markov_chain(CHAIN, 60_000, np.random.default_rng(0))
    msm = estimate_msm([labels], lag_frames=1, n_labels=3)
    np.testing.assert_array_equal(msm.active_labels, [0, 1, 2])
    np.testing.assert_allclose(msm.stationary, CHAIN_PI, atol=0.03)
    implied = lambda t: -1 / np.log(np.sort(np.linalg.eigvals(t).real)[-2])  # noqa: E731
    assert implied(msm.transition_matrix) == pytest.approx(implied(CHAIN), rel=0.15)


def test_flux_is_pi_i_times_t_ij_and_embeds_in_label_space():
    labels = markov_chain(CHAIN, 20_000, np.random.default_rng(1))
    # label 1 never occurs after relabelling 1 -> 3: the active set is {0, 2, 3} in a 4-label space
    msm = estimate_msm([np.where(labels == 1, 3, labels)], lag_frames=1, n_labels=4)
    np.testing.assert_array_equal(msm.active_labels, [0, 2, 3])
    flux = msm.flux()
    np.testing.assert_allclose(flux, msm.stationary[:, None] * msm.transition_matrix)
    np.testing.assert_allclose(flux.sum(axis=1), msm.stationary)
    full = msm.flux_in_label_space()
    assert full.shape == (4, 4) and np.all(full[1] == 0) and np.all(full[:, 1] == 0)
    np.testing.assert_array_equal(msm.to_active(np.array([0, 1, 2, 3, UNASSIGNED])), [0, -1, 1, 2, -1])


def test_unassigned_frames_break_transition_runs():
    pieces = split_at_unassigned(np.array([0, 1, UNASSIGNED, 2, 2, UNASSIGNED, UNASSIGNED, 1]))
    assert [p.tolist() for p in pieces] == [[0, 1], [2, 2], [1]]


def test_select_transition_picks_rarest_and_largest_off_diagonal_flux():
    flux = np.array([[0.5, 1e-9, 0.02], [1e-9, 0.3, 0.001], [0.02, 0.001, 0.1]])
    assert select_transition(flux, rarest=True) == (1, 2)
    assert select_transition(flux, rarest=False) == (0, 2)


def test_bridge_likelihood_sums_to_one_over_all_paths_and_forbids_impossible_ones():
    t = np.array([[0.7, 0.3, 0.0], [0.2, 0.5, 0.3], [0.0, 0.4, 0.6]])
    paths = np.array(list(itertools.product(range(3), repeat=4)))
    likelihood = bridge_likelihood(t, paths, start=0, end=2)
    assert likelihood.sum() == pytest.approx(1.0)
    assert bridge_likelihood(t, np.array([[0, 2, 2, 2]]), 0, 2)[0] == 0.0  # 0 -> 2 has T = 0
    assert bridge_likelihood(t, np.array([[1, 1, 2, 2]]), 0, 2)[0] == 0.0  # wrong start
    assert bridge_likelihood(t, np.array([[0, 1, -1, 2]]), 0, 2)[0] == 0.0  # left the active set
    with pytest.raises(ValueError, match="cannot go"):
        bridge_likelihood(t, paths[:, :2], start=0, end=2)  # one step cannot reach 2


def test_bridge_samples_follow_the_bridge_likelihood():
    t = np.array([[0.7, 0.3, 0.0], [0.2, 0.5, 0.3], [0.0, 0.4, 0.6]])
    samples = sample_bridge_paths(t, start=0, end=2, length=4, n_paths=20_000, rng=np.random.default_rng(3))
    assert np.all(samples[:, 0] == 0) and np.all(samples[:, -1] == 2)
    assert np.all(bridge_likelihood(t, samples, 0, 2) > 0)
    unique, counts = np.unique(samples, axis=0, return_counts=True)
    np.testing.assert_allclose(counts / len(samples), bridge_likelihood(t, unique, 0, 2), atol=0.015)


def test_reference_state_model_recovers_metastable_populations():
    rng = np.random.default_rng(4)
    centres = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    labels = markov_chain(CHAIN, 4000, rng)
    angles = centres[labels] * 0.5 + 0.15 * rng.standard_normal((len(labels), 2))
    features = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    settings = StateModelSettings(
        tica_lag_ps=20.0, msm_lag_ps=20.0, n_clusters=30, n_metastable=3, min_frames_per_cluster=20
    )
    model = fit_reference_state_model(features, 10.0, settings, "synthetic")
    assert (model.n_states, len(model.cluster_centers)) == (3, 30)
    states = model.states(features)
    populations = model.populations(states)[:3] / len(states)
    np.testing.assert_allclose(np.sort(populations), np.sort(CHAIN_PI), atol=0.05)
    # each true state maps to one metastable state
    for true_state in range(3):
        assert (
            np.mean(states[labels == true_state] == np.bincount(states[labels == true_state]).argmax()) > 0.95
        )


def test_short_reference_scales_down_clusters_and_states_and_says_so():
    rng = np.random.default_rng(5)
    labels = markov_chain(CHAIN, 300, rng)
    angles = np.array([-1.0, 1.0, 2.5])[labels][:, None] + 0.2 * rng.standard_normal((300, 1))
    features = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    settings = StateModelSettings(tica_lag_ps=10.0, msm_lag_ps=10.0)  # one 10 ps frame
    model = fit_reference_state_model(features, 10.0, settings, "synthetic")
    assert len(model.cluster_centers) == 300 // 20
    assert model.n_states < 10
    assert any("k-means" in note for note in model.notes)
    assert any("PCCA+" in note for note in model.notes)


def test_too_short_names_the_longer_lag_whichever_it_is():
    """The refusal said "lags of <MSM lag> frames" even when the TICA lag was the one that did not fit."""
    features = np.zeros((40, 2))  # 4 x the TICA lag: one frame short
    with pytest.raises(EvaluationInputError, match=r"lags of 10 frames \(TICA lag 10, MSM lag 1;"):
        fit_reference_state_model(features, 1.0, StateModelSettings(tica_lag_ps=10.0, msm_lag_ps=1.0), "x")
