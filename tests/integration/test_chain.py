"""The three commands chained as a user runs them: `python -m mdgen.train` (tiny model, 2 steps on
data/demo) -> `python -m mdgen.sample` (forward rollouts of GWEK with that checkpoint) ->
`python -m mdgen.evaluate` (against GWEK's demo MD).

Three Python processes (~9 s of imports each on 2 cores) plus the work: marked slow (`make test-full`).
The pieces are covered one by one in the fast suite (test_train, test_sample, test_evaluate_cli); this
test catches what only the chain shows: a checkpoint that sampling cannot read, samples written where or
how the evaluator does not find them, a sampler that silently used another checkpoint.
"""

import hashlib
import json
import math
from pathlib import Path

import pytest

from cli_runner import run_command

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_MD = REPO_ROOT / "data" / "demo" / "md"
PEPTIDE = "GWEK"
NUM_FRAMES, NUM_CHUNKS, NUM_ROLLOUTS = 6, 8, 2  # 2 rollouts of 8 x 5 + 1 = 41 frames, 10 ps apart


def finite_numbers(node) -> list[float]:
    """Every number in a JSON tree (bools excluded)."""
    if isinstance(node, dict):
        return [x for value in node.values() for x in finite_numbers(value)]
    if isinstance(node, list):
        return [x for value in node for x in finite_numbers(value)]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [float(node)]
    return []


@pytest.mark.slow
def test_train_then_sample_then_evaluate(tmp_path):
    run_dir, samples, evaluation = tmp_path / "train", tmp_path / "samples", tmp_path / "evaluation"
    run_command(
        "mdgen.train",
        "experiment=demo_forward",
        "model=tiny",
        f"task.num_frames={NUM_FRAMES}",
        "trainer.max_steps=2",
        "scheduler=constant",  # 2 steps leave no room for the demo's warm-up
        "logger=none",
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    )
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()

    run_command(
        "mdgen.sample",
        f"ckpt_path={checkpoint}",
        f"out_dir={samples}",
        f"input_pdb={DEMO_MD / PEPTIDE / f'{PEPTIDE}.pdb'}",
        f"input_xtc={DEMO_MD / PEPTIDE / f'{PEPTIDE}.xtc'}",
        f"num_rollouts={NUM_ROLLOUTS}",
        f"num_chunks={NUM_CHUNKS}",
        "sampler=euler",
        "sampler.num_steps=3",
    )
    request = json.loads((samples / "sampling_request.json").read_text())
    assert request["checkpoint"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert (samples / f"{PEPTIDE}.xtc").is_file()

    run_command(
        "mdgen.evaluate",
        f"samples_dir={samples}",
        f"reference_dir={DEMO_MD}",
        "task=forward",
        f"names=[{PEPTIDE}]",
        f"out_dir={evaluation}",
        "plots=false",
        "state_model.tica_lag_ps=20",
        "state_model.msm_lag_ps=20",
        "state_model.n_metastable=4",
        "forward.decorrelation_max_lag_ps=100",
    )
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["task"] == "forward" and metrics["n_evaluated"] == 1 and not metrics["failed"]
    assert list(metrics["peptides"]) == [PEPTIDE]
    summary = metrics["summary"]  # non-finite values are written as null
    assert summary["n_frames"] == NUM_ROLLOUTS * (NUM_CHUNKS * (NUM_FRAMES - 1) + 1), summary
    for key in ("torsion_jsd_backbone", "torsion_jsd_all", "tica0_jsd", "msm_state_jsd"):
        assert summary[key] is not None and 0.0 <= summary[key] <= 1.0, (key, summary[key])
    assert 0.0 <= summary["validity_valid_fraction"] <= 1.0
    numbers = finite_numbers(summary)
    assert len(numbers) >= 10 and all(math.isfinite(x) for x in numbers)
