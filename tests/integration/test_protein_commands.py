"""The protein path through its commands (in this process, no ~9 s of imports) on the committed villin
fixture (tests/fixtures/villin: ATLAS layout, 36 residues, three replicas of real MD).

- `mdgen.evaluate task=protein` reads the ATLAS layout and reports the values mdtraj/scipy give for
  the same frames, in every row (generated, and each replica against the other two);
- bad input is one line naming the file, no traceback (one case in `make test`, the others and the
  sampling case in `make test-full`): a trajectory whose atom count differs from its
  PDB (reference or samples), a missing replica file (R2 beside R1 and R3, which used to be scored
  silently with R3's row labelled "MD replica 2"), and, at sampling, a protein longer than the
  checkpoint's absolute position table.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from cli_runner import run_main
from mdgen.analysis.loading import EvaluationInputError, load_trajectory
from mdgen.config import build_module, compose_config, to_plain_dict
from mdgen.evaluation.input_files import reference_files
from mdgen.module import CHECKPOINT_FORMAT_VERSION, CHECKPOINT_KEY

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "villin"
VILLIN = FIXTURE / "villin"
CHEAP = ("protein.sasa_sphere_points=12", "plots=false")  # exposure values are not checked here
ROWS = ["generated", "MD replica 1 vs rest", "MD replica 2 vs rest", "MD replica 3 vs rest"]


def heavy(traj: md.Trajectory) -> md.Trajectory:
    return traj.atom_slice(traj.topology.select("not element H"))


def golden_rmsf_A(traj: md.Trajectory) -> np.ndarray:
    """mdtraj's CA RMSF (Å) of frames superposed on villin.pdb's CA atoms."""
    structure = md.load(str(VILLIN / "villin.pdb"))
    ca = lambda t: t.atom_slice(t.topology.select("name CA"))  # noqa: E731
    return 10 * md.rmsf(ca(traj), ca(structure), 0)


def replica(k: int) -> md.Trajectory:
    return md.load(str(VILLIN / f"villin_prod_R{k}_fit.xtc"), top=str(VILLIN / "villin.pdb"))


def samples_from_replica(folder: Path, k: int) -> Path:
    """A samples folder holding replica k as the generated ensemble (villin.pdb + villin.xtc)."""
    folder.mkdir()
    shutil.copy(VILLIN / "villin.pdb", folder / "villin.pdb")
    shutil.copy(VILLIN / f"villin_prod_R{k}_fit.xtc", folder / "villin.xtc")
    return folder


def error_lines(stderr: str, command: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith(f"mdgen.{command}: error:")]


def test_evaluate_protein_on_the_fixture_reports_mdtraj_values_in_every_row(tmp_path, capsys):
    """Generated = replica 2. Row "generated": RMSF r of replica 2 against all three replicas pooled; row
    "MD replica k vs rest": replica k against the other two; both from mdtraj RMSF and scipy's Pearson r.
    Catches: the ATLAS replicas not all read (or read as one), rows in another order or mislabelled, the
    report's RMSF r not the per-residue Pearson r of the two sides."""
    samples, out = samples_from_replica(tmp_path / "samples", 2), tmp_path / "evaluation"
    argv = ("task=protein", f"samples_dir={samples}", f"reference_dir={FIXTURE}", f"out_dir={out}", *CHEAP)
    code, _, stderr = run_main(capsys, "evaluate", *argv)
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["failed"] == {} and list(metrics["pooled"]) == ROWS
    runs = [heavy(replica(k)) for k in (1, 2, 3)]
    expected = {"generated": pearsonr(golden_rmsf_A(md.join(runs)), golden_rmsf_A(runs[1]))[0]}
    for k in range(3):
        rest = md.join([run for other, run in enumerate(runs) if other != k])
        expected[ROWS[k + 1]] = pearsonr(golden_rmsf_A(rest), golden_rmsf_A(runs[k]))[0]
    for row, r in expected.items():
        assert metrics["pooled"][row]["global_rmsf_pearson_r"] == pytest.approx(r, abs=2e-3), row
    assert metrics["pooled"]["MD replica 2 vs rest"]["ca_valid_fraction"] == pytest.approx(
        metrics["pooled"]["generated"]["ca_valid_fraction"]
    )  # both score replica 2's frames
    header = next(
        line for line in (out / "report.md").read_text().splitlines() if line.startswith("| metric")
    )
    assert all(f"{row} (n=1)" in header for row in ROWS)


def _reference_without_residue_36(folder: Path) -> Path:
    """The fixture's layout with villin.pdb missing its last residue (283 of 295 atoms)."""
    shutil.copytree(FIXTURE, folder)
    pdb = folder / "villin" / "villin.pdb"
    lines = pdb.read_text().splitlines()
    pdb.write_text(
        "\n".join(line for line in lines if not (line.startswith("ATOM") and line[22:26].strip() == "36"))
    )
    return folder


@pytest.mark.parametrize(
    "case",
    [
        "missing replica",
        pytest.param("reference atom count", marks=pytest.mark.slow),  # each case ~2 s: one in make test
        pytest.param("samples atom count", marks=pytest.mark.slow),
    ],
)
def test_evaluate_protein_bad_input_is_one_line_naming_the_file(tmp_path, capsys, case):
    """Exit 2, one error line, no traceback; the per-protein reason (metrics.json "failed") names the file
    and the problem. Catches: mdtraj's two-line atom-count message (or a traceback) reaching the user; a
    missing R2 scored silently as a two-replica reference with R3's row labelled "MD replica 2"."""
    samples, reference = tmp_path / "samples", FIXTURE
    if case == "reference atom count":
        samples_from_replica(samples, 1)
        reference = _reference_without_residue_36(tmp_path / "reference")
        reason = "villin_prod_R1_fit.xtc: cannot be read (295 atoms per frame, but"
    elif case == "samples atom count":
        samples_from_replica(samples, 1)
        shutil.copy(_reference_without_residue_36(tmp_path / "reference") / "villin" / "villin.pdb", samples)
        reason = "villin.xtc: cannot be read (295 atoms per frame, but"
    else:
        samples_from_replica(samples, 1)
        reference = tmp_path / "reference"
        shutil.copytree(FIXTURE, reference)
        (reference / "villin" / "villin_prod_R2_fit.xtc").unlink()
        reason = "reference trajectory villin_prod_R2_fit.xtc not found (found R1, R3;"
    out = tmp_path / "evaluation"
    argv = ("task=protein", f"samples_dir={samples}", f"reference_dir={reference}", f"out_dir={out}", *CHEAP)
    code, _, stderr = run_main(capsys, "evaluate", *argv)
    lines = error_lines(stderr, "evaluate")
    assert code == 2 and len(lines) == 1 and "1 of 1 peptides not evaluated (villin)" in lines[0]
    failed = json.loads((out / "metrics.json").read_text())["failed"]["villin"]
    assert reason in failed and "\n" not in failed


def test_a_trajectory_with_another_atom_count_names_both_counts_on_one_line(tmp_path):
    """load_trajectory (every evaluate task reads through it): villin's XTC (295 atoms) with a PDB missing
    residue 36 (283). Catches mdtraj's two-line message without the counts reaching the user."""
    pdb = _reference_without_residue_36(tmp_path / "reference") / "villin" / "villin.pdb"
    with pytest.raises(EvaluationInputError) as error:
        load_trajectory(pdb, VILLIN / "villin_prod_R1_fit.xtc")
    assert f"villin_prod_R1_fit.xtc: cannot be read (295 atoms per frame, but {pdb} has 283)" in str(
        error.value
    )
    assert "\n" not in str(error.value)


def test_replicas_are_read_in_numeric_order_and_a_gap_is_refused(tmp_path):
    """R1..R10 come back in replica order (R10 last, not after R1); without R2 the reference is refused,
    naming the missing file. Catches: sorting by name (R10 scored as "MD replica 2"), a gap scored silently."""
    folder = tmp_path / "villin"
    folder.mkdir()
    (folder / "villin.pdb").write_text("")
    for k in range(1, 11):
        (folder / f"villin_prod_R{k}_fit.xtc").write_text("")
    _, trajectories = reference_files(tmp_path, "villin")
    assert [p.name for p in trajectories] == [f"villin_prod_R{k}_fit.xtc" for k in range(1, 11)]
    (folder / "villin_prod_R2_fit.xtc").unlink()
    with pytest.raises(EvaluationInputError, match=r"villin_prod_R2_fit.xtc not found \(found R1, R3, R4"):
        reference_files(tmp_path, "villin")


def _checkpoint(path: Path, *overrides: str) -> Path:
    """An untrained `experiment=protein_demo model=tiny` checkpoint in mdgen.train's layout."""
    cfg = compose_config(
        [
            "experiment=protein_demo",
            "model=tiny",
            "task.num_frames=4",
            f"hydra.run.dir={path.parent}",
            *overrides,
        ]
    )
    run_config = to_plain_dict(cfg)
    module = build_module(cfg, run_config=run_config)
    entry = {"format_version": CHECKPOINT_FORMAT_VERSION, "config": run_config, "task": asdict(module.task)}
    torch.save({"state_dict": module.state_dict(), "global_step": 0, CHECKPOINT_KEY: entry}, path)
    return path


@pytest.mark.slow  # the same refusal is tested in process (run_sampling) by test_protein_demo.py
def test_sample_a_protein_longer_than_the_position_table_is_one_line(tmp_path, capsys):
    """villin (36 residues) with a checkpoint whose network places residues by a 4-row absolute table:
    exit 2, one line naming the PDB and both lengths, nothing written. Catches the IndexError traceback
    from inside the network that this used to be."""
    checkpoint = _checkpoint(tmp_path / "table.ckpt", "model.residue_pos_emb=table", "model.max_residues=4")
    out = tmp_path / "samples"
    argv = (
        f"ckpt_path={checkpoint}",
        f"input_pdb={VILLIN / 'villin.pdb'}",
        f"out_dir={out}",
        "sampler=euler",
    )
    code, _, stderr = run_main(capsys, "sample", *argv)
    lines = error_lines(stderr, "sample")
    assert code == 2 and len(lines) == 1
    assert "villin.pdb frame 0: 36 residues" in lines[0] and "table of 4 rows" in lines[0]
    assert not out.exists()
