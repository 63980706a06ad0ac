"""Old names of the inpaint task that still work, each with one warning line on stderr.

Before issue 13's rename the inpaint task was called `design` in sampling and evaluation:
`mdgen.sample mode=design`, `mdgen.evaluate task=design`, and samples `NAME_design.json`. These tests
catch an alias that was dropped (the old name refused), one that went silent (no warning), one that
warns more than once, and one that maps to anything but inpaint. In process; well under a second each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import run_main
from mdgen.analysis.loading import EvaluationInputError
from mdgen.evaluation.inpaint import endpoint_states, read_inpaint_spec
from mdgen.sampling.modes import INPAINT
from mdgen.sampling.request import SamplingRequest

WARNING = "warning: {old} is deprecated, use {new} (the old name still works)"


def test_sampling_mode_design_is_inpaint_with_one_warning_line(capsys):
    assert SamplingRequest(ckpt_path="x.ckpt", out_dir="out", mode="design").mode == INPAINT == "inpaint"
    assert capsys.readouterr().err.splitlines() == [
        "mdgen.sample: " + WARNING.format(old="mode=design", new="mode=inpaint")
    ]
    assert SamplingRequest(ckpt_path="x.ckpt", out_dir="out", mode="inpaint").mode == "inpaint"
    assert SamplingRequest(ckpt_path="x.ckpt", out_dir="out").mode is None
    assert capsys.readouterr().err == ""  # the current names say nothing


def _manifest(path: Path, samples: list[str]) -> None:
    """A hand-written inpaint manifest (the short form the evaluator accepts): GWEK with residues 1, 2
    designed; sequences only (no trajectories, so the reference MD is not read)."""
    path.write_text(
        json.dumps(
            {
                "true_sequence": "GWEK",
                "designed_positions": [1, 2],
                "samples": [{"sequence": s} for s in samples],
            }
        )
    )


def test_evaluate_task_design_and_old_manifests_are_inpaint_with_one_warning_line_each(tmp_path, capsys):
    """task=design evaluates as task=inpaint; an old NAME_design.json beside a new NAME_inpaint.json is
    read too. Designed positions 1, 2 of GWEK: AKIR's manifest has 'GWAK' (W right, E wrong: 0.5) and
    GWEK's 'GAEK' (W wrong, E right: 0.5) and 'GWEK' (1.0), mean 0.75 -- by hand."""
    samples, reference = tmp_path / "samples", tmp_path / "md"
    samples.mkdir()
    reference.mkdir()
    _manifest(samples / "AKIR_design.json", ["GWAK"])  # older mdgen
    _manifest(samples / "GWEK_inpaint.json", ["GAEK", "GWEK"])
    out_dir = tmp_path / "eval"
    code, _, err = run_main(
        capsys,
        "evaluate",
        f"samples_dir={samples}",
        f"reference_dir={reference}",
        f"out_dir={out_dir}",
        "task=design",
        "plots=false",
    )
    assert code == 0, err
    assert [line for line in err.splitlines() if "warning" in line] == [
        "mdgen.evaluate: " + WARNING.format(old="task=design", new="task=inpaint"),
        "mdgen.evaluate: "
        + WARNING.format(old=f"1 NAME_design.json manifest(s) in {samples}", new="NAME_inpaint.json"),
    ]
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["settings"]["task"] == "inpaint"
    recovery = {
        name: result["rows"]["samples"]["designed_recovery"] for name, result in metrics["peptides"].items()
    }
    assert recovery == {"AKIR": 0.5, "GWEK": 0.75}


def test_inpaint_errors_name_the_manifest_file_that_was_read(tmp_path):
    """Catches the error text naming NAME_inpaint.json (or the old hard-coded NAME_design.json) for a
    file that was read under the other name."""
    for suffix in ("_design.json", "_inpaint.json"):
        path = tmp_path / f"AKIR{suffix}"
        path.write_text(
            json.dumps(
                {
                    "true_sequence": "AKIR",
                    "designed_positions": [1, 2],
                    "start_state": 0,
                    "samples": [{"sequence": "AKIR", "xtc": "AKIR_0.xtc"}],
                }
            )
        )
        with pytest.raises(EvaluationInputError, match=rf"^AKIR{suffix}: samples have trajectories but no"):
            endpoint_states(read_inpaint_spec(path), reference=None, state_settings=None)
