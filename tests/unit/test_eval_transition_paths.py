"""Transition-path scores: MD windows between two states vs the same windows scrambled in time."""

import json

import numpy as np
import pytest

from eval_peptide import markov_chain, peptide_frame, peptide_trajectory, write_peptide
from mdgen.analysis.loading import TrajectoryGroup
from mdgen.analysis.msm import StateModelSettings
from mdgen.evaluation.transition_paths import (
    GENERATED,
    REFERENCE_BRIDGE,
    TransitionPathSettings,
    evaluate_paths,
    reduced_path_indices,
)

# 0 <-> 2 is impossible in one 10 ps step: paths must pass through state 1
CHAIN = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.1, 0.9]])
STATE_SETTINGS = StateModelSettings(tica_lag_ps=10.0, msm_lag_ps=10.0, n_clusters=15, n_metastable=3)
PATH_FRAMES = 11


def _windows(states, n, rng):
    """Random start indices of windows whose first state is 0 and last is 2 (bridge samples of the MD)."""
    starts = np.flatnonzero((states[: -PATH_FRAMES + 1] == 0) & (states[PATH_FRAMES - 1 :] == 2))
    return rng.choice(starts, size=min(n, len(starts)), replace=False)


def _write_paths(directory, trajectories):
    directory.mkdir()
    entries = []
    for i, traj in enumerate(trajectories):
        write_peptide(directory / f"AKIR_{i}", traj)
        entries.append({"xtc": f"AKIR_{i}.xtc"})
    manifest = directory / "AKIR_paths.json"
    manifest.write_text(json.dumps({"name": "AKIR", "topology": "AKIR_0.pdb", "paths": entries}))
    return manifest


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paths")
    frame = peptide_frame(tmp)
    rng = np.random.default_rng(0)
    reference = peptide_trajectory(frame, markov_chain(CHAIN, 3000, rng), rng, noise_deg=8.0)
    md_states = markov_chain(CHAIN, 6000, rng)
    md = peptide_trajectory(frame, md_states, rng, noise_deg=8.0)
    windows = [md[s : s + PATH_FRAMES] for s in _windows(md_states, 25, rng)]
    scrambled = []
    for window in windows:
        order = np.concatenate([[0], rng.permutation(np.arange(1, PATH_FRAMES - 1)), [PATH_FRAMES - 1]])
        scrambled.append(window[order])
    for traj in windows + scrambled:
        traj.time = np.arange(1, PATH_FRAMES + 1) * 10.0
    return (
        TrajectoryGroup.from_trajectories([reference], "reference"),
        _write_paths(tmp / "md", windows),
        _write_paths(tmp / "scrambled", scrambled),
    )


def test_md_windows_are_valid_paths_and_scrambled_ones_are_not(setup):
    reference, md_manifest, scrambled_manifest = setup
    settings = TransitionPathSettings(n_reference_paths=500)
    good = evaluate_paths("AKIR", md_manifest, reference, None, STATE_SETTINGS, settings).result
    bad = evaluate_paths("AKIR", scrambled_manifest, reference, None, STATE_SETTINGS, settings).result
    assert good.endpoint_agreement == 1.0 and good.n_path_states == PATH_FRAMES
    assert good.rows[GENERATED].valid_path_rate > 0.8
    assert bad.rows[GENERATED].valid_path_rate < good.rows[GENERATED].valid_path_rate - 0.2
    assert good.rows[GENERATED].state_visitation_jsd < 0.15
    assert good.rows[REFERENCE_BRIDGE].valid_path_rate == 1.0
    assert good.rows[REFERENCE_BRIDGE].state_visitation_jsd < 0.05


def test_replica_rows_score_md_bridge_paths(setup):
    reference, md_manifest, _ = setup
    replica = reference.truncated(10_000.0)
    settings = TransitionPathSettings(n_reference_paths=200, replica_lengths_ps=(10_000.0, 1e6))
    analysis = evaluate_paths("AKIR", md_manifest, reference, replica, STATE_SETTINGS, settings)
    assert analysis.result.rows["replica MD 10 ns"].valid_path_rate == 1.0  # same MSM data -> same support
    assert "MD 1000 ns" in analysis.result.omitted_rows
    np.testing.assert_allclose(analysis.reference_flux.sum(), 1.0)


def test_reduced_paths_keep_the_last_frame():
    assert reduced_path_indices(100, 10).tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99]
    assert reduced_path_indices(11, 5).tolist() == [0, 5, 10]
