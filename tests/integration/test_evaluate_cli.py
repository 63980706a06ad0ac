"""`python -m mdgen.evaluate` end to end on tiny peptides written in tmp_path.

One good peptide, one whose samples lack an atom (mismatch) and one with no trajectory (missing):
the good one is evaluated, the other two are reported by name, and the exit status is 0. When every
peptide fails the exit status is non-zero.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from eval_peptide import markov_chain, peptide_frame, peptide_trajectory, write_peptide

CHAIN = np.array([[0.9, 0.08, 0.02], [0.1, 0.85, 0.05], [0.05, 0.05, 0.9]])
FAST = [
    "state_model.tica_lag_ps=20",
    "state_model.msm_lag_ps=20",
    "state_model.n_metastable=4",
    "forward.decorrelation_max_lag_ps=100",
]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    frame = peptide_frame(root)
    rng = np.random.default_rng(0)
    for name in ("GOOD", "MISMATCH", "MISSING"):
        write_peptide(
            root / "md" / name / name, peptide_trajectory(frame, markov_chain(CHAIN, 300, rng), rng)
        )
    samples = root / "samples"
    write_peptide(samples / "GOOD", peptide_trajectory(frame, markov_chain(CHAIN, 200, rng), rng))
    short = peptide_trajectory(frame, markov_chain(CHAIN, 50, rng), rng)
    write_peptide(
        samples / "MISMATCH", short.atom_slice([a.index for a in short.topology.atoms if a.name != "CE"])
    )
    short[0].save_pdb(str(samples / "MISSING.pdb"))  # topology but no trajectory
    return root


def _evaluate(dirs, out, *extra):
    command = [
        sys.executable,
        "-m",
        "mdgen.evaluate",
        f"samples_dir={dirs / 'samples'}",
        f"reference_dir={dirs / 'md'}",
        "task=forward",
        f"out_dir={out}",
        *FAST,
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_good_peptide_is_evaluated_and_bad_ones_are_reported_by_name(dirs):
    out = dirs / "eval"
    run = _evaluate(dirs, out)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_evaluated"] == 1 and list(metrics["peptides"]) == ["GOOD"]
    assert set(metrics["failed"]) == {"MISMATCH", "MISSING"}
    assert "MISMATCH.xtc" in metrics["failed"]["MISMATCH"] and "LYS2:CE" in metrics["failed"]["MISMATCH"]
    assert "MISSING" in metrics["failed"]["MISSING"] and "xtc" in metrics["failed"]["MISSING"]
    torsion_keys = [key for key in metrics["summary"] if "jsd" in key and "torsion" in key]
    assert {"torsion_jsd_backbone", "torsion_jsd_sidechain", "torsion_jsd_all"} <= set(torsion_keys)
    assert 0.0 < metrics["summary"]["torsion_jsd_backbone"] < 0.83
    rows = metrics["aggregate"]
    assert {"generated", "first frame repeated", "MD 100 ps", "MD 1 ns"} <= set(rows)
    report = (out / "report.md").read_text()
    assert "MISMATCH" in report and "MISSING" in report and "| generated (n=1)" in report
    for plot in ("GOOD_torsions", "GOOD_tica", "GOOD_decorrelation", "GOOD_states", "relaxation_times"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 1000
    assert "not evaluated: MISMATCH" in run.stderr


def test_exit_status_is_nonzero_when_every_peptide_fails(dirs):
    out = dirs / "eval_failed"
    run = _evaluate(dirs, out, "names=[MISMATCH,NOPE]", "plots=false")
    assert run.returncode != 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_evaluated"] == 0
    assert metrics["failed"]["NOPE"].startswith("no samples for NOPE")
