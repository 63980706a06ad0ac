"""Design recovery on constructed inputs, including the fixed 'final design' selection."""

import json

import numpy as np
import pytest

from eval_peptide import markov_chain, peptide_frame, peptide_trajectory, write_peptide
from mdgen.analysis.features import cos_sin, torsion_angles
from mdgen.analysis.loading import TrajectoryGroup
from mdgen.analysis.msm import StateModelSettings, reference_state_model
from mdgen.evaluation.inpaint import evaluate_inpaint, read_inpaint_spec, score_inpaint
from mdgen.sample_files import SampleFileError


def _spec(tmp_path, sequences, truth="AKIR", positions=(1, 2), **extra):
    path = tmp_path / "AKIR_inpaint.json"
    samples = [{"sequence": s} for s in sequences]
    path.write_text(
        json.dumps(
            {
                "name": "AKIR",
                "true_sequence": truth,
                "designed_positions": list(positions),
                "samples": samples,
                **extra,
            }
        )
    )
    return read_inpaint_spec(path)


def test_recovery_majority_and_most_frequent(tmp_path):
    # designed positions 1, 2 (K, I); flanks 0, 3 (A, R)
    spec = _spec(tmp_path, ["AKIR", "AKVR", "GKVR", "GLVW"])
    scores = score_inpaint(spec)
    assert scores.designed_recovery == pytest.approx((2 + 1 + 1 + 0) / 8)
    assert scores.conditioning_recovery == pytest.approx((2 + 2 + 1 + 0) / 8)
    assert scores.majority_sequence == "AKVR"  # column 0 ties A/G -> alphabetical A
    assert scores.majority_designed_recovery == 0.5 and scores.majority_conditioning_recovery == 1.0
    assert scores.most_frequent_designed == "KV" and scores.most_frequent_designed_recovery == 0.5
    assert np.isnan(scores.target_reached_fraction)


def test_final_design_is_the_sample_with_the_best_flank_recovery(tmp_path):
    # the worst-flank sample (the original's choice) would have perfect designed recovery
    spec = _spec(tmp_path, ["GKIW", "AVVR", "GKIR"])
    scores = score_inpaint(spec)
    assert scores.final_design_sequence == "AVVR"
    assert scores.final_design_conditioning_recovery == 1.0
    assert scores.final_design_designed_recovery == 0.0


def test_target_state_fractions_use_the_given_states(tmp_path):
    spec = _spec(tmp_path, ["AKIR"] * 4, start_state=2, end_state=5)
    scores = score_inpaint(spec, start_states=np.array([2, 2, 2, 1]), end_states=np.array([5, 0, 5, 5]))
    assert scores.start_state_fraction == 0.75 and scores.target_reached_fraction == 0.75


def test_invalid_design_files_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(SampleFileError, match=r"AKIR_inpaint\.json: .*sample 0 has length 3"):
        _spec(tmp_path, ["AKI"])
    with pytest.raises(SampleFileError, match="designed_positions"):
        _spec(tmp_path, ["AKIR"], positions=(4,))
    with pytest.raises(SampleFileError, match="non-standard letters"):
        _spec(tmp_path, ["AKBR"])


def test_predicted_sequence_is_scored_and_unpredicted_positions_are_skipped(tmp_path):
    path = tmp_path / "AKIR_inpaint.json"
    samples = [
        {"sequence": "AKIR", "predicted_sequence": "GKXR", "xtc": "/elsewhere/AKIR_0.xtc"},
        {"sequence": "AVIR", "predicted_sequence": "XVIR"},
    ]
    path.write_text(json.dumps({"true_sequence": "AKIR", "designed_positions": [1, 2], "samples": samples}))
    spec = read_inpaint_spec(path)
    assert spec.samples[0].trajectory == tmp_path / "AKIR_0.xtc"  # looked up next to the JSON
    scores = score_inpaint(spec)
    assert scores.designed_recovery == pytest.approx((1.0 + 0.5) / 2)  # X at position 2 is not scored
    assert scores.conditioning_recovery == pytest.approx((0.5 + 1.0) / 2)
    assert scores.majority_sequence == "GKIR"  # X never wins a vote; K/V tie -> K
    assert scores.final_design_sequence == "XVIR"


def test_target_state_check_reads_sample_trajectories(tmp_path):
    chain = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.1, 0.9]])
    rng = np.random.default_rng(0)
    reference = peptide_trajectory(peptide_frame(tmp_path), markov_chain(chain, 400, rng), rng, noise_deg=5.0)
    group = TrajectoryGroup.from_trajectories([reference], "reference")
    settings = StateModelSettings(tica_lag_ps=10.0, msm_lag_ps=10.0, n_clusters=10, n_metastable=3)
    definitions, model = reference_state_model(group, settings)
    states = model.states(cos_sin(torsion_angles(reference, definitions)))
    windows = [(0, 30), (100, 140), (200, 260)]
    for i, (start, end) in enumerate(windows):
        write_peptide(tmp_path / f"AKIR_{i}", reference[start:end])
    samples = [{"sequence": "AKIR", "xtc": f"AKIR_{i}.xtc"} for i in range(3)]
    target = int(states[windows[0][1] - 1])
    (tmp_path / "AKIR_inpaint.json").write_text(
        json.dumps(
            {
                "true_sequence": "AKIR",
                "designed_positions": [1, 2],
                "samples": samples,
                "topology": "AKIR_0.pdb",
                "start_state": int(states[0]),
                "end_state": target,
            }
        )
    )
    scores = evaluate_inpaint(read_inpaint_spec(tmp_path / "AKIR_inpaint.json"), group, settings)
    expected_end = np.mean([states[end - 1] == target for _, end in windows])
    expected_start = np.mean([states[start] == states[0] for start, _ in windows])
    assert scores.target_reached_fraction == pytest.approx(expected_end) and expected_end >= 1 / 3
    assert scores.start_state_fraction == pytest.approx(expected_start)
