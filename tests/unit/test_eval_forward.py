"""Forward-simulation rows on synthetic peptide trajectories with known relationships."""

import numpy as np
import pytest

from eval_peptide import markov_chain, peptide_frame, peptide_trajectory
from mdgen.analysis.loading import TrajectoryGroup
from mdgen.analysis.msm import StateModelSettings
from mdgen.evaluation.forward import (
    GENERATED,
    TRIVIAL_BASELINE,
    ForwardSettings,
    evaluate_forward,
    md_truncations,
)

CHAIN = np.array([[0.9, 0.08, 0.02], [0.1, 0.85, 0.05], [0.05, 0.05, 0.9]])
SETTINGS = ForwardSettings(
    decorrelation_max_lag_ps=200.0,
    md_truncations_ps=(100.0, 1000.0, 100_000.0),
    state_model=StateModelSettings(tica_lag_ps=20.0, msm_lag_ps=20.0, n_clusters=20, n_metastable=3),
)


def _group(frame, seed, n_frames=600):
    rng = np.random.default_rng(seed)
    traj = peptide_trajectory(frame, markov_chain(CHAIN, n_frames, rng), rng)
    return TrajectoryGroup.from_trajectories([traj], f"synthetic-{seed}")


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return peptide_frame(tmp_path_factory.mktemp("peptide"))


def test_identical_samples_score_zero_and_baseline_scores_worse(frame):
    reference = _group(frame, 0)
    result = evaluate_forward("AKIR", reference, reference, None, SETTINGS).result
    same = result.rows[GENERATED]
    assert same.torsion_jsd_all == 0.0 and same.tica0_jsd == 0.0 and same.tica01_jsd == 0.0
    assert same.msm_state_jsd == 0.0 and same.torsion_pair_jsd_mean == 0.0
    assert same.relaxation_log10_r == pytest.approx(1.0) or same.relaxation_pairs < 3
    trivial = result.rows[TRIVIAL_BASELINE]
    assert trivial.torsion_jsd_backbone > 0.5
    assert all(t.status == "static" for t in trivial.relaxation_times.values())


def test_independent_samples_beat_the_trivial_baseline_and_md_rows_are_reported(frame):
    result = evaluate_forward("AKIR", _group(frame, 1), _group(frame, 0), None, SETTINGS).result
    generated, trivial = result.rows[GENERATED], result.rows[TRIVIAL_BASELINE]
    for metric in (
        "torsion_jsd_backbone",
        "torsion_pair_jsd_mean",
        "tica0_jsd",
        "tica01_jsd",
        "msm_state_jsd",
    ):
        assert getattr(generated, metric) < getattr(trivial, metric), metric
    assert generated.torsion_jsd_backbone < 0.2
    assert set(result.rows) == {GENERATED, TRIVIAL_BASELINE, "MD 100 ps", "MD 1 ns"}
    assert "MD 100 ns" in result.omitted_rows and "not shorter" in result.omitted_rows["MD 100 ns"]
    assert result.rows["MD 100 ps"].n_frames == 10
    assert result.rows["MD 1 ns"].torsion_jsd_backbone < result.rows["MD 100 ps"].torsion_jsd_backbone
    assert len(result.reference_populations) == result.n_states + 1
    assert any("prefixes of the reference" in note for note in result.notes)


def test_replica_supplies_the_md_rows(frame):
    replica = _group(frame, 2, n_frames=200)  # 2 ns
    result = evaluate_forward("AKIR", _group(frame, 1), _group(frame, 0), replica, SETTINGS).result
    assert result.rows["MD 1 ns"].source == "synthetic-2[:1000 ps]"
    assert "longer than the replica" in result.omitted_rows["MD 100 ns"]


def test_an_md_row_of_one_frame_is_omitted_with_its_reason_not_a_failed_peptide(frame):
    """benchmarks/equal_cost_quality.py on a loaded machine asked for 10 ps of MD (one 10 ps frame): the
    decorrelation curve refused it and the whole peptide failed. Now that row alone is omitted."""
    reference = _group(frame, 0)
    rows, omitted = md_truncations(reference, None, (10.0, 20.0))
    assert set(rows) == {"MD 20 ps"} and rows["MD 20 ps"].n_frames == 2
    assert "1 frame(s) of MD" in omitted["MD 10 ps"]
