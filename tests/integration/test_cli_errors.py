"""User errors of `python -m mdgen.sample` and `python -m mdgen.evaluate`: one line on stderr, exit status 2.

Every command runs through its real Hydra entry point (`main()` with `sys.argv` set), in this process
so that the many cases take seconds. The checkpoint is an untrained `model=tiny` forward model saved
the way mdgen.train saves it; sampling with it is mechanically complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mdtraj
import pytest
import torch

from cli_runner import run_main
from markers import slow_beyond_first
from mdgen.analysis.loading import EvaluationInputError
from mdgen.evaluation.inpaint import read_inpaint_spec
from mdgen.evaluation.transition_paths import read_path_manifest
from mdgen.sampling.request import SamplingRequest
from tiny_checkpoint import untrained_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_MD = REPO_ROOT / "data" / "demo" / "md"
GWEK_PDB = DEMO_MD / "GWEK" / "GWEK.pdb"
FAST_SOLVER = ("sampler=euler", "sampler.num_steps=3")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ckpt")
    torch.save(untrained_checkpoint(directory, num_frames=4), directory / "tiny.ckpt")
    return directory / "tiny.ckpt"


def one_error_line(stderr: str, command: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and "chunk" not in line]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"mdgen.{command}: error: "), lines[0]
    return lines[0]


# ---- mdgen.sample ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (("base_seed=abc",), "base_seed='abc': expected an integer"),
        (("base_seed=1.5",), "base_seed=1.5: expected an integer"),
        (("batch_size=true",), "batch_size=True: expected an integer"),
        (("use_ema=yes",), "use_ema='yes': expected true or false"),
        (("num_rollouts=0",), "num_rollouts must be >= 1, got 0"),
        (("num_rollouts=two",), "num_rollouts='two': expected an integer"),
        (("device=tpu",), "device='tpu' is not one of"),
        (("precision=16",), "precision='16' is not one of"),
        (("sampler.method=leapfrog",), "sampler method 'leapfrog' is not one of"),
        (("sampler.num_steps=abc",), "sampler.num_steps='abc': expected an integer"),
        (("sampler.grid_power=0",), "sampler grid_power must be > 0, got 0"),
        (("overwrite=maybe",), "overwrite='maybe': expected true or false"),
        (("name=../../x",), "name='../../x' must be a plain file name"),
        (("name=.hidden",), "name='.hidden' must be a plain file name"),
        (("input_pdb=/nonexistent/X.pdb",), "input_pdb=/nonexistent/X.pdb: file not found"),
        (("sequences=[MKXE]",), "non-standard"),
        (("sequences=[]",), "sequences=[] lists no sequence"),
        (("design_residues=[a]",), "design_residues='a': expected an integer"),
        ((f"input_pdb={GWEK_PDB}", "input_frame=999"), "input_frame=999 is out of range"),
        (("transition=lowest_flux",), "transition is for interp"),
        (("out_dir=${nope}",), "nope"),
    ],
)
def test_sample_option_errors_are_one_line_naming_the_option(checkpoint, tmp_path, capsys, options, message):
    out_dir = tmp_path / "out"
    argv = (f"ckpt_path={checkpoint}", f"out_dir={out_dir}", *FAST_SOLVER, *options)
    code, _, stderr = run_main(capsys, "sample", *argv)
    assert code == 2 and message in one_error_line(stderr, "sample")
    assert not out_dir.exists()


def test_sample_without_ckpt_path_names_it(tmp_path, capsys):
    code, _, stderr = run_main(capsys, "sample", f"out_dir={tmp_path / 'out'}", "sequences=[MKWE]")
    assert code == 2 and "ckpt_path: required" in one_error_line(stderr, "sample")


def test_sample_refuses_an_out_dir_that_is_a_file(checkpoint, tmp_path, capsys):
    out_file = tmp_path / "results"
    out_file.write_text("keep me")
    code, _, stderr = run_main(
        capsys, "sample", f"ckpt_path={checkpoint}", f"out_dir={out_file}", f"input_pdb={GWEK_PDB}"
    )
    assert code == 2 and f"out_dir={out_file} is a file, not a directory" in one_error_line(stderr, "sample")
    assert out_file.read_text() == "keep me"


def test_sample_refuses_an_out_dir_below_a_file_and_a_damaged_record(checkpoint, tmp_path, capsys):
    (tmp_path / "results").write_text("keep me")
    below_a_file = tmp_path / "results" / "run1"
    argv = (f"ckpt_path={checkpoint}", f"input_pdb={GWEK_PDB}", *FAST_SOLVER)
    code, _, stderr = run_main(capsys, "sample", *argv, f"out_dir={below_a_file}")
    assert code == 2 and "cannot be created (Not a directory)" in one_error_line(stderr, "sample")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "sampling_request.json").write_text("{not json")
    code, _, stderr = run_main(capsys, "sample", *argv, f"out_dir={damaged}")
    assert code == 2 and "sampling_request.json: cannot be read" in one_error_line(stderr, "sample")
    assert (damaged / "sampling_request.json").read_text() == "{not json"


def test_sample_refuses_an_out_dir_with_other_files_and_writes_nothing_there(checkpoint, tmp_path, capsys):
    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    (out_dir / "thesis.tex").write_text("keep me")
    code, _, stderr = run_main(
        capsys, "sample", f"ckpt_path={checkpoint}", f"out_dir={out_dir}", f"input_pdb={GWEK_PDB}"
    )
    assert code == 2 and "did not write (thesis.tex)" in one_error_line(stderr, "sample")
    assert [p.name for p in out_dir.iterdir()] == ["thesis.tex"]  # no .hydra/, no sample.log


def test_sample_refuses_an_unreadable_out_dir_in_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    """As root every directory is readable, so the OS error is simulated where the listing happens."""
    out_dir = tmp_path / "locked"
    out_dir.mkdir()

    def refuse(top, onerror=None, **kwargs):
        onerror(PermissionError(13, "Permission denied", str(top)))
        return iter(())

    monkeypatch.setattr("mdgen.sampling.record.os.walk", refuse)
    code, _, stderr = run_main(
        capsys, "sample", f"ckpt_path={checkpoint}", f"out_dir={out_dir}", f"input_pdb={GWEK_PDB}"
    )
    assert code == 2 and "cannot be read (Permission denied" in one_error_line(stderr, "sample")


def test_sample_sequences_without_brackets_is_one_sequence(checkpoint, tmp_path, capsys):
    """Hydra hands `sequences=MKWE` over as a string; it is one tetrapeptide, not four 1-residue ones."""
    assert SamplingRequest.from_options(
        {"ckpt_path": "c", "out_dir": "o", "sequences": "MKWE"}
    ).sequences == ("MKWE",)
    out_dir = tmp_path / "out"
    code, stdout, stderr = run_main(
        capsys, "sample", f"ckpt_path={checkpoint}", f"out_dir={out_dir}", "sequences=MKWE", *FAST_SOLVER
    )
    assert code == 0, stderr
    traj = mdtraj.load(str(out_dir / "MKWE.xtc"), top=str(out_dir / "MKWE.pdb"))
    assert [residue.name for residue in traj.topology.residues] == ["MET", "LYS", "TRP", "GLU"]


def test_hydra_override_errors_name_the_option_without_a_traceback(checkpoint, tmp_path, capsys):
    """Hydra reports these before mdgen runs (its own format, exit status 1)."""
    base = (f"ckpt_path={checkpoint}", f"out_dir={tmp_path / 'out'}")
    code, _, stderr = run_main(capsys, "sample", *base, "num_rolouts=2")
    assert code == 1 and "Could not override 'num_rolouts'" in stderr and "Traceback" not in stderr
    code, _, stderr = run_main(capsys, "sample", *base, "sequences=[MKWE")
    assert code == 1 and "'[MKWE'" in stderr and "Traceback" not in stderr  # Hydra names the value


def test_mdgen_debug_keeps_the_traceback(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MDGEN_DEBUG", "1")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ValueError, match="base_seed='abc'"):
        run_main(capsys, "sample", f"ckpt_path={checkpoint}", f"out_dir={tmp_path / 'o'}", "base_seed=abc")


# ---- mdgen.evaluate -------------------------------------------------------------------------------------


@pytest.fixture
def evaluate_dirs(tmp_path) -> tuple[Path, Path]:
    samples, reference = tmp_path / "samples", tmp_path / "md"
    samples.mkdir()
    reference.mkdir()
    return samples, reference


@pytest.mark.parametrize(
    "options, message",
    [
        (("task=bogus",), "task='bogus' is not one of"),
        (("n_jobs=abc",), "n_jobs='abc': expected an integer"),
        (("n_jobs=0",), "n_jobs=0: must be >= 1"),
        (("plots=maybe",), "plots='maybe': expected true or false"),
        (("forward.torsion_bins=abc",), "forward.torsion_bins='abc': expected an integer"),
        (("state_model.tica_lag_ps=fast",), "state_model.tica_lag_ps='fast': expected a number"),
        (("forward.md_truncations_ps=[1,x]",), "forward.md_truncations_ps='x': expected a number"),
        (("replica_dir=/nonexistent/replicas",), "replica_dir=/nonexistent/replicas: directory not found"),
    ],
)
def test_evaluate_option_errors_are_one_line_naming_the_option(
    evaluate_dirs, tmp_path, capsys, options, message
):
    samples, reference = evaluate_dirs
    out_dir = tmp_path / "eval"
    argv = (f"samples_dir={samples}", f"reference_dir={reference}", f"out_dir={out_dir}", *options)
    code, _, stderr = run_main(capsys, "evaluate", *argv)
    assert code == 2 and message in one_error_line(stderr, "evaluate")
    assert not out_dir.exists()


def test_evaluate_directory_errors_are_one_line(evaluate_dirs, tmp_path, capsys):
    samples, reference = evaluate_dirs
    out_file = tmp_path / "metrics"
    out_file.write_text("keep me")
    cases = [
        ((f"reference_dir={reference}",), "samples_dir: required"),
        ((f"samples_dir={tmp_path / 'none'}", f"reference_dir={reference}"), "samples_dir="),
        ((f"samples_dir={samples}", f"reference_dir={tmp_path / 'none'}"), "reference_dir="),
        ((f"samples_dir={samples}", f"reference_dir={reference}", f"out_dir={out_file}"), "is a file"),
    ]
    for argv, message in cases:
        code, _, stderr = run_main(capsys, "evaluate", *argv)
        assert code == 2 and message in one_error_line(stderr, "evaluate"), argv
    assert out_file.read_text() == "keep me"


def _write_inpaint(samples: Path, topology: str) -> Path:
    manifest = samples / "GWEK_inpaint.json"
    manifest.write_text(
        json.dumps(
            {
                "name": "GWEK",
                "true_sequence": "GWEK",
                "designed_positions": [1, 2],
                "topology": topology,
                "samples": [{"sequence": "GWEK", "xtc": "GWEK_0.xtc"}],
            }
        )
    )
    return manifest


def test_evaluate_refuses_a_manifest_topology_outside_the_samples_folder(evaluate_dirs, tmp_path, capsys):
    samples, reference = evaluate_dirs
    (tmp_path / "secret.pdb").write_text("not for the evaluator")
    _write_inpaint(samples, "../secret.pdb")
    out_dir = tmp_path / "eval"
    argv = (f"samples_dir={samples}", f"reference_dir={reference}", f"out_dir={out_dir}", "task=inpaint")
    code, _, stderr = run_main(capsys, "evaluate", *argv, "plots=false")
    refused = [line for line in stderr.splitlines() if line.startswith("mdgen.evaluate: error:")]
    assert code == 2 and len(refused) == 1
    assert "1 of 1 peptides not evaluated (GWEK)" in refused[0]
    failed = json.loads((out_dir / "metrics.json").read_text())["failed"]["GWEK"]
    assert "topology '../secret.pdb' points outside" in failed


@pytest.mark.parametrize("topology", ["../secret.pdb", "/etc/hostname", "sub/../../secret.pdb", "link.pdb"])
def test_manifest_topologies_cannot_escape_their_folder(tmp_path, topology):
    samples = tmp_path / "samples"
    samples.mkdir()
    (tmp_path / "secret.pdb").write_text("x")
    os.symlink(tmp_path / "secret.pdb", samples / "link.pdb")
    paths = samples / "GWEK_paths.json"
    paths.write_text(json.dumps({"topology": topology, "paths": [{"xtc": "GWEK_0.xtc"}]}))
    with pytest.raises(EvaluationInputError, match="topology"):
        read_path_manifest(paths)
    with pytest.raises(EvaluationInputError, match="topology"):
        read_inpaint_spec(_write_inpaint(samples, topology))


def test_manifest_topologies_inside_their_folder_are_read(tmp_path):
    samples = tmp_path / "samples"
    (samples / "top").mkdir(parents=True)
    (samples / "top" / "GWEK.pdb").write_text("x")
    paths = samples / "GWEK_paths.json"
    paths.write_text(json.dumps({"topology": "top/GWEK.pdb", "paths": [{"xtc": "GWEK_0.xtc"}]}))
    assert read_path_manifest(paths)[0] == samples / "top" / "GWEK.pdb"
    assert read_inpaint_spec(_write_inpaint(samples, "top/GWEK.pdb")).topology == samples / "top" / "GWEK.pdb"


# ---- mdgen.train ------------------------------------------------------------------------------------------


def test_train_seed_of_the_wrong_type_names_the_option(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ("experiment=demo_forward", "model=tiny", "logger=none", f"hydra.run.dir={run_dir}", "seed=abc")
    code, _, stderr = run_main(capsys, "train", *argv)
    assert code == 2 and "seed='abc': expected an integer" in one_error_line(stderr, "train")


def test_train_option_of_the_wrong_type_names_the_option(tmp_path, capsys):
    """Checked against the type of the value it replaces (here the experiment's max_steps)."""
    run_dir = tmp_path / "run"
    base = ("experiment=demo_forward", "model=tiny", "logger=none", f"hydra.run.dir={run_dir}")
    code, _, stderr = run_main(capsys, "train", *base, "trainer.max_steps=abc")
    assert (
        code == 2
        and "trainer.max_steps='abc': expected an integer (the default is 2000)"
        in one_error_line(stderr, "train")
    )
    code, _, stderr = run_main(capsys, "train", *base, "data.batch_size=2.5")
    assert code == 2 and "data.batch_size=2.5: expected an integer" in one_error_line(stderr, "train")


@pytest.mark.parametrize(
    "command, message",
    slow_beyond_first(
        [
            (("prepare", f"sim_dir={DEMO_MD}", "interval_ps=abc"), "interval_ps='abc': expected a number"),
            (
                ("simulate", "sequences=[MKWE]", "length_ns=abc"),
                "length_ns='abc': expected a number (the default is 1.0)",
            ),
        ]
    ),
)
def test_prepare_and_simulate_options_of_the_wrong_type_name_the_option(tmp_path, capsys, command, message):
    """The commands' mains in this process (`python -m` itself is covered by the subprocess tests of
    test_reliability_entry_points.py and scripts/check_wheel_install.sh)."""
    name, *options = command
    out_dir = tmp_path / "out"
    code, _, stderr = run_main(capsys, name, *options, f"out_dir={out_dir}")
    assert code == 2 and message in one_error_line(stderr, name)
    assert not out_dir.exists()
