"""End to end: tiny checkpoints trained by `python -m mdgen.train` on data/demo, sampled by mdgen.sample.

Each task's checkpoint is trained once per session (2 optimizer steps; the weights are untrained, so
the tests check mechanics: files, atoms, frame counts, time stamps, seeds, resuming, refusals).
Sampling runs in-process through the composed `conf/sample.yaml`, except one run of the real CLI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mdtraj
import numpy as np
import pytest
import torch
import yaml

from mdgen.config import compose_config
from mdgen.errors import UserError
from mdgen.evaluation.inpaint import read_inpaint_spec
from mdgen.evaluation.transition_paths import read_path_manifest
from mdgen.sample import sample
from mdgen.sampling.inputs import SamplingInputError
from mdgen.sampling.modes import IncompatibleTaskError
from mdgen.sampling.record import RECORD_FILE, OutputDirectory
from mdgen.sampling.report import SUMMARY_FILE
from mdgen.sampling.request import SamplingRequest, request_fields
from mdgen.sampling.writer import write_json
from mdgen.trajectory_files import TrajectoryError, read_trajectory, write_trajectory

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_MD = REPO_ROOT / "data" / "demo" / "md"
PEPTIDE = "GWEK"  # a demo training peptide
FAST_SOLVER = ("sampler=euler", "sampler.num_steps=3")  # 2 function evaluations per window
FORWARD_FRAMES, INTERP_FRAMES, DESIGN_FRAMES = 6, 6, 6
UPSAMPLE_INTERVAL = 5  # windows of 2 * 5 + 1 frames: both ends are coarse frames


def train_tiny(run_dir: Path, experiment: str, *overrides: str) -> Path:
    command = [
        sys.executable,
        "-m",
        "mdgen.train",
        f"experiment={experiment}",
        "model=tiny",
        "trainer.max_steps=2",
        "scheduler=constant",  # 2 steps leave no room for the demo experiments' 100 warm-up steps
        "logger=none",
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        *overrides,
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"training failed:\n{result.stderr[-3000:]}"
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def forward_ckpt(tmp_path_factory) -> Path:
    return train_tiny(
        tmp_path_factory.mktemp("train_forward"), "demo_forward", f"task.num_frames={FORWARD_FRAMES}"
    )


@pytest.fixture(scope="session")
def interp_ckpt(tmp_path_factory) -> Path:
    return train_tiny(
        tmp_path_factory.mktemp("train_interp"), "demo_interp", f"task.num_frames={INTERP_FRAMES}"
    )


@pytest.fixture(scope="session")
def upsample_ckpt(tmp_path_factory) -> Path:
    frames = f"task.num_frames={2 * UPSAMPLE_INTERVAL + 1}"
    interval = f"task.cond_interval={UPSAMPLE_INTERVAL}"
    return train_tiny(tmp_path_factory.mktemp("train_upsample"), "demo_upsample", frames, interval)


@pytest.fixture(scope="session")
def design_ckpt(tmp_path_factory) -> Path:
    return train_tiny(
        tmp_path_factory.mktemp("train_inpaint"), "demo_inpaint", f"task.num_frames={DESIGN_FRAMES}"
    )


def run_sample(ckpt: Path, out_dir: Path, *overrides: str):
    cfg = compose_config([f"ckpt_path={ckpt}", f"out_dir={out_dir}", *overrides], config_name="sample")
    return sample(cfg)


def demo_files(name: str = PEPTIDE, suffix: str = "") -> tuple[str, str]:
    return (
        f"input_pdb={DEMO_MD / name / f'{name}.pdb'}",
        f"input_xtc={DEMO_MD / name / f'{name}{suffix}.xtc'}",
    )


def load(xtc: Path) -> mdtraj.Trajectory:
    return mdtraj.load(str(xtc), top=str(xtc.with_suffix(".pdb")))


def residue_names(traj: mdtraj.Trajectory) -> list[str]:
    return [residue.name for residue in traj.topology.residues]


def heavy_atom_count(sequence: str) -> int:
    from mdgen.constants import ATOM14_MASK, aatype_from_sequence

    return int(ATOM14_MASK[aatype_from_sequence(sequence)].sum())


def assert_no_repeated_frames(traj: mdtraj.Trajectory) -> None:
    steps = np.abs(np.diff(traj.xyz, axis=0)).max(axis=(1, 2))  # (T-1,) largest move per step, nm
    assert steps.min() > 1e-3, f"frames {int(steps.argmin())} and {int(steps.argmin()) + 1} are identical"


# ---- forward --------------------------------------------------------------------------------------------


def test_cli_forward_from_a_sequence_outside_the_demo_data(forward_ckpt, tmp_path):
    sequence = "AWYQ"  # not a demo peptide: built and minimised from the sequence alone
    out_dir = tmp_path / "forward"
    command = [
        sys.executable,
        "-m",
        "mdgen.sample",
        f"ckpt_path={forward_ckpt}",
        f"out_dir={out_dir}",
        f"sequences=[{sequence}]",
        "num_rollouts=2",
        "num_chunks=3",
        "base_seed=7",
        "batch_size=2",
        *FAST_SOLVER,
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ns generated per wall-clock second" in result.stdout

    traj = load(out_dir / f"{sequence}.xtc")
    frames_per_rollout = 3 * (FORWARD_FRAMES - 1) + 1  # K*(T-1)+1: boundary duplicates dropped
    assert traj.n_frames == 2 * frames_per_rollout
    assert residue_names(traj) == ["ALA", "TRP", "TYR", "GLN"]
    assert traj.n_atoms == heavy_atom_count(sequence)
    np.testing.assert_allclose(np.diff(traj.time), 10.0, atol=1e-3)  # demo_forward: 10 ps frames
    assert_no_repeated_frames(traj[:frames_per_rollout])
    summary = json.loads((out_dir / "sampling_summary.json").read_text())
    assert summary["mode"] == "forward" and summary["nfe"] == 3 * 2  # one batch, 3 chunks x 2 evaluations
    assert summary["outputs"][0]["generated_frames"] == 2 * frames_per_rollout
    assert summary["ns_per_wall_s"] > 0
    assert not (out_dir / f"{sequence}.parts").exists()


def test_forward_is_reproducible_and_resumes_only_missing_rollouts(forward_ckpt, tmp_path):
    options = (
        *demo_files(),
        "input_frame=5",
        "num_rollouts=3",
        "num_chunks=2",
        "per_rollout_files=true",
        "batch_size=2",
        "base_seed=3",
        *FAST_SOLVER,
    )
    first, again = tmp_path / "first", tmp_path / "again"
    run_sample(forward_ckpt, first, *options)
    run_sample(forward_ckpt, again, *options)
    xtcs = [first / f"{PEPTIDE}_{i}.xtc" for i in range(3)]
    coordinates = [load(xtc).xyz for xtc in xtcs]
    for i, xyz in enumerate(coordinates):
        assert xyz.shape[0] == 2 * (FORWARD_FRAMES - 1) + 1
        np.testing.assert_array_equal(xyz, load(again / xtcs[i].name).xyz)  # same seed, same coordinates
    assert not np.allclose(coordinates[0], coordinates[1])  # different rollouts differ
    # every rollout starts at the given start structure itself (frame 5 of the MD), within XTC precision
    given = read_trajectory(DEMO_MD / PEPTIDE / f"{PEPTIDE}.pdb", DEMO_MD / PEPTIDE / f"{PEPTIDE}.xtc")
    for xtc in xtcs:
        written = read_trajectory(xtc.with_suffix(".pdb"), xtc)
        np.testing.assert_allclose(written.atom14[0], given.atom14[5], atol=0.011)

    mtimes = [xtc.stat().st_mtime_ns for xtc in xtcs]
    xtcs[1].unlink()
    report = run_sample(forward_ckpt, first, *options)
    assert report.outputs[0].generated == (1,) and report.outputs[0].skipped == (0, 2)
    assert [xtcs[0].stat().st_mtime_ns, xtcs[2].stat().st_mtime_ns] == [mtimes[0], mtimes[2]]
    np.testing.assert_array_equal(load(xtcs[1]).xyz, coordinates[1])  # regenerated bit for bit

    report = run_sample(forward_ckpt, first, *options)  # everything finished: nothing sampled
    assert report.nfe == 0 and report.outputs[0].generated == ()


def test_forward_from_the_test_split_of_the_prepared_cache(forward_ckpt, tmp_path):
    run_config = yaml.safe_load((forward_ckpt.parent / "config.yaml").read_text())  # saved by mdgen.train
    split, cache_dir = Path(run_config["data"]["test_split"]), run_config["data"]["cache_dir"]
    names = [line.split(",")[0] for line in split.read_text().splitlines()[1:] if line.strip()]
    # bf16 autocast runs on CPU as well (slower there; it is meant for GPUs)
    run_sample(
        forward_ckpt, tmp_path, f"split={split}", f"cache_dir={cache_dir}", "precision=bf16", *FAST_SOLVER
    )
    for name in names:
        traj = load(tmp_path / f"{name}.xtc")
        assert traj.n_frames == FORWARD_FRAMES and np.isfinite(traj.xyz).all()
        assert "".join(residue.code for residue in traj.topology.residues) == name
        assert traj.n_atoms == heavy_atom_count(name)
        np.testing.assert_allclose(np.diff(traj.time), 10.0, atol=1e-3)


# ---- interpolation --------------------------------------------------------------------------------------


def test_paths_between_given_frames(interp_ckpt, tmp_path):
    run_sample(
        interp_ckpt, tmp_path, *demo_files(), "start_frame=3", "end_frame=-1", "num_samples=2", *FAST_SOLVER
    )
    record = json.loads((tmp_path / f"{PEPTIDE}_paths.json").read_text())
    assert [(p["start_frame"], p["end_frame"]) for p in record["paths"]] == [(3, 199), (3, 199)]
    for i in range(2):
        traj = load(tmp_path / f"{PEPTIDE}_{i}.xtc")
        assert traj.n_frames == INTERP_FRAMES and residue_names(traj) == ["GLY", "TRP", "GLU", "LYS"]
        assert traj.n_atoms == heavy_atom_count(PEPTIDE)
        np.testing.assert_allclose(np.diff(traj.time), 10.0, atol=1e-3)


def test_paths_between_metastable_states_of_the_reference_msm(interp_ckpt, tmp_path):
    run_sample(
        interp_ckpt,
        tmp_path,
        *demo_files(),
        "transition=highest_flux",
        "tica_lag_ps=20",
        "msm_lag_ps=20",
        "num_samples=2",
        *FAST_SOLVER,
    )
    record = json.loads((tmp_path / f"{PEPTIDE}_paths.json").read_text())
    transition = record["transition"]
    assert transition["selection"] == "highest_flux" and transition["start_state"] != transition["end_state"]
    assert transition["flux"] > 0 and transition["start_candidates"] > 0
    for path in record["paths"]:
        assert (path["start_state"], path["end_state"]) == (
            transition["start_state"],
            transition["end_state"],
        )
        assert 0 <= path["start_frame"] < 200 and 0 <= path["end_frame"] < 200
        assert load(tmp_path / path["xtc"]).n_frames == INTERP_FRAMES
    topology, trajectories = read_path_manifest(tmp_path / f"{PEPTIDE}_paths.json")  # the evaluator reads it
    assert topology.is_file() and [t.name for t in trajectories] == [f"{PEPTIDE}_0.xtc", f"{PEPTIDE}_1.xtc"]


# ---- upsampling -----------------------------------------------------------------------------------------


def coarse_input(tmp_path: Path, num_fine_frames: int) -> tuple[str, str]:
    """The first frames of a demo 100 fs trajectory (the sampler strides it to the coarse interval)."""
    pdb, xtc = (DEMO_MD / PEPTIDE / f"{PEPTIDE}.pdb"), (DEMO_MD / PEPTIDE / f"{PEPTIDE}_fine.xtc")
    fine = read_trajectory(pdb, xtc)
    _, short = write_trajectory(
        tmp_path / "input" / PEPTIDE, fine.atom14[:num_fine_frames], fine.aatype, timestep_ps=fine.timestep_ps
    )
    return f"input_pdb={short.with_suffix('.pdb')}", f"input_xtc={short}"


def test_upsampling_fills_every_coarse_interval_at_the_fine_interval(upsample_ckpt, tmp_path):
    # 36 fine input frames -> coarse frames 0, 5, ..., 35 (8 frames, 7 intervals): windows of 2, 2, 2, 1
    run_sample(upsample_ckpt, tmp_path / "out", *coarse_input(tmp_path, 36), "batch_size=2", *FAST_SOLVER)
    traj = load(tmp_path / "out" / f"{PEPTIDE}.xtc")
    assert traj.n_frames == 7 * UPSAMPLE_INTERVAL + 1
    assert residue_names(traj) == ["GLY", "TRP", "GLU", "LYS"] and traj.n_atoms == heavy_atom_count(PEPTIDE)
    np.testing.assert_allclose(np.diff(traj.time), 0.1, atol=1e-4)
    assert_no_repeated_frames(traj)


def test_upsampling_refuses_windows_that_do_not_end_on_a_coarse_frame(upsample_ckpt, tmp_path):
    from mdgen.config import load_module
    from mdgen.sampling.request import SamplingRequest
    from mdgen.sampling.run import run_sampling
    from mdgen.sampling.sampler_options import SolverOptions

    module = load_module(upsample_ckpt)
    module.task = dataclasses.replace(module.task, num_frames=2 * UPSAMPLE_INTERVAL)  # T = n*k
    pdb, xtc = (value.split("=", 1)[1] for value in coarse_input(tmp_path, 36))
    request = SamplingRequest(
        ckpt_path=str(upsample_ckpt), out_dir=str(tmp_path / "out"), input_pdb=pdb, input_xtc=xtc
    )
    with pytest.raises(IncompatibleTaskError, match=rf"task.num_frames={2 * UPSAMPLE_INTERVAL + 1}"):
        run_sampling(request, module, SolverOptions("euler", 3))
    assert not (tmp_path / "out").exists()
    extrapolating = dataclasses.replace(request, allow_extrapolation=True)
    run_sampling(extrapolating, module, SolverOptions("euler", 3))
    assert load(tmp_path / "out" / f"{PEPTIDE}.xtc").n_frames == 7 * UPSAMPLE_INTERVAL + 1


# ---- design ---------------------------------------------------------------------------------------------


def test_design_writes_sequences_and_structures_with_the_designed_residues(design_ckpt, tmp_path):
    run_sample(
        design_ckpt, tmp_path, *demo_files(suffix="_fine"), "num_samples=2", "batch_size=2", *FAST_SOLVER
    )
    record = json.loads((tmp_path / f"{PEPTIDE}_inpaint.json").read_text())
    assert record["name"] == PEPTIDE and record["true_sequence"] == PEPTIDE
    assert record["designed_positions"] == [1, 2]
    assert [design["index"] for design in record["samples"]] == [0, 1]
    spec = read_inpaint_spec(tmp_path / f"{PEPTIDE}_inpaint.json")  # the evaluator reads it
    assert spec.designed_positions == (1, 2) and len(spec.samples) == 2
    csv_rows = (tmp_path / f"{PEPTIDE}_inpaint.csv").read_text().splitlines()
    assert csv_rows[0] == "index,sequence,designed,recovery,xtc" and len(csv_rows) == 3
    for design in record["samples"]:
        sequence = design["sequence"]
        assert sequence[0] == PEPTIDE[0] and sequence[3] == PEPTIDE[3]  # flanks keep their identity
        assert (
            len(design["predicted_sequence"]) == 4 and "X" not in design["predicted_sequence"]
        )  # no aa input
        traj = load(tmp_path / design["xtc"])
        assert "".join(residue.code for residue in traj.topology.residues) == sequence
        assert traj.n_atoms == heavy_atom_count(sequence) and traj.n_frames == DESIGN_FRAMES
        np.testing.assert_allclose(np.diff(traj.time), 1.0, atol=1e-3)  # demo_inpaint: 1 ps frames


def test_without_a_sampler_the_checkpoint_task_decides(design_ckpt, forward_ckpt, tmp_path):
    """Issue 13's bug: conf/sample.yaml's sampler used to win over `TaskSpec.ode_method`, so the design
    task (Euler on 50 grid points, as the original's design model) was sampled with another solver."""
    run_sample(design_ckpt, tmp_path / "design", *demo_files(suffix="_fine"), "num_samples=1")
    record = json.loads((tmp_path / "design" / RECORD_FILE).read_text())
    assert record["sampler"] == {
        "method": "euler",
        "num_steps": 50,
        "atol": 1e-6,
        "rtol": 1e-3,
        "grid_power": 1.0,
    }
    summary = json.loads((tmp_path / "design" / SUMMARY_FILE).read_text())
    assert summary["nfe"] == 49  # 49 Euler steps: the solver that ran, not only the record
    # one field given: the task's method and grid spacing stay (demo_forward trains with conf/task/forward.yaml)
    run_sample(forward_ckpt, tmp_path / "forward", *demo_files(), "num_rollouts=1", "sampler.num_steps=3")
    record = json.loads((tmp_path / "forward" / RECORD_FILE).read_text())
    assert (record["sampler"]["method"], record["sampler"]["num_steps"], record["sampler"]["grid_power"]) == (
        "ab2",
        3,
        1.25,
    )


# ---- refusals before any work -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (
            ("allow_extrapolation=true", "sequences=[MKWE]"),
            IncompatibleTaskError,
            "allow_extrapolation is for upsample",
        ),
        (("mode=upsample", "sequences=[MKWE]"), IncompatibleTaskError, "mode=upsample was requested"),
        (("sequences=[MKXE]",), SamplingInputError, r"non-standard .*'X'"),
        (
            (f"input_pdb={DEMO_MD / 'MKWE' / 'MKWE.pdb'}", f"input_xtc={DEMO_MD / PEPTIDE / 'GWEK.xtc'}"),
            TrajectoryError,
            "atom count mismatch",
        ),
        (
            (f"input_pdb={DEMO_MD / PEPTIDE / 'GWEK.pdb'}", "sequences=[MKWE]"),
            SamplingInputError,
            "does not match the given sequence MKWE",
        ),
        (
            ("input_pdb=/nonexistent/X.pdb",),
            SamplingInputError,
            "input_pdb=/nonexistent/X.pdb: file not found",
        ),
    ],
)
def test_wrong_inputs_fail_before_any_work(forward_ckpt, tmp_path, overrides, error, message):
    out_dir = tmp_path / "out"
    with pytest.raises(error, match=message):
        run_sample(forward_ckpt, out_dir, *overrides)
    assert not out_dir.exists() or not list(out_dir.glob("*.xtc"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused(forward_ckpt, tmp_path):
    with pytest.raises(ValueError, match="device=cuda was requested, but torch sees no CUDA device"):
        run_sample(forward_ckpt, tmp_path / "out", "sequences=[MKWE]", "device=cuda")


def test_missing_checkpoint_fails_before_loading(tmp_path):
    with pytest.raises(SamplingInputError, match="ckpt_path=.*missing.ckpt: file not found"):
        run_sample(tmp_path / "missing.ckpt", tmp_path / "out", "sequences=[MKWE]")


# ---- out_dir: the request record, re-runs, overwrite, files sample did not write ---------------------------

RECORDED = (*demo_files(), "num_rollouts=2", "per_rollout_files=true", *FAST_SOLVER)


def files_and_mtimes(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


def test_the_request_is_recorded_beside_the_outputs(forward_ckpt, tmp_path):
    out = tmp_path / "out"
    run_sample(forward_ckpt, out, *RECORDED, "base_seed=5")
    record = json.loads((out / RECORD_FILE).read_text())
    assert set(record["options"]) == set(request_fields()) - {"out_dir"}  # every field, generically
    assert record["options"]["base_seed"] == 5 and record["options"]["num_rollouts"] == 2
    assert record["options"]["input_pdb"] == str(DEMO_MD / PEPTIDE / f"{PEPTIDE}.pdb")
    assert record["checkpoint"]["sha256"] == hashlib.sha256(forward_ckpt.read_bytes()).hexdigest()
    assert record["sampler"] == {
        "method": "euler",
        "num_steps": 3,
        "atol": 1e-6,
        "rtol": 1e-3,
        "grid_power": 1.0,
    }
    written = set(files_and_mtimes(out)) - {RECORD_FILE}
    assert written == {
        f"{PEPTIDE}_0.pdb",
        f"{PEPTIDE}_0.xtc",
        f"{PEPTIDE}_1.pdb",
        f"{PEPTIDE}_1.xtc",
        SUMMARY_FILE,
    }
    assert written <= set(record["files"])


@pytest.mark.parametrize(
    "change, named",
    [
        ("base_seed=4", "base_seed: 0 -> 4"),
        ("num_rollouts=3", "num_rollouts: 2 -> 3"),
        ("num_chunks=2", "num_chunks: null -> 2"),
        ("batch_size=2", "batch_size: 1 -> 2"),
        ("sampler.num_steps=4", "sampler.num_steps: 3 -> 4"),
    ],
)
def test_a_rerun_with_other_options_is_refused_and_keeps_the_outputs(forward_ckpt, tmp_path, change, named):
    out = tmp_path / "out"
    run_sample(forward_ckpt, out, *RECORDED)
    before = files_and_mtimes(out)
    with pytest.raises(SamplingInputError, match=re.escape(named)) as error:
        run_sample(forward_ckpt, out, *RECORDED, change)
    assert "overwrite=true" in str(error.value) and "\n" not in str(error.value)
    assert files_and_mtimes(out) == before


def test_another_checkpoint_is_refused_and_the_same_one_moved_resumes(forward_ckpt, tmp_path):
    out = tmp_path / "out"
    checkpoint = Path(shutil.copy(forward_ckpt, tmp_path / "last.ckpt"))
    run_sample(checkpoint, out, *RECORDED)
    moved = Path(shutil.copy(checkpoint, tmp_path / "moved.ckpt"))  # same bytes elsewhere: same checkpoint
    assert run_sample(moved, out, *RECORDED).nfe == 0
    before = files_and_mtimes(out)
    retrained = torch.load(checkpoint, weights_only=True)
    retrained["global_step"] += 1
    torch.save(retrained, checkpoint)  # `last.ckpt` of a run that trained on: same path, other weights
    with pytest.raises(SamplingInputError, match=r"checkpoint: sha256 [0-9a-f]{12}\.\.\. .* -> [0-9a-f]{12}"):
        run_sample(checkpoint, out, *RECORDED)
    assert files_and_mtimes(out) == before


def test_overwrite_regenerates_and_deletes_only_the_recorded_outputs(forward_ckpt, tmp_path):
    out = tmp_path / "out"
    run_sample(forward_ckpt, out, *RECORDED)  # GWEK_0 and GWEK_1 (per-rollout files)
    report = run_sample(forward_ckpt, out, *demo_files(), "num_rollouts=3", *FAST_SOLVER, "overwrite=true")
    assert report.outputs[0].generated == (0, 1, 2)
    assert set(files_and_mtimes(out)) == {f"{PEPTIDE}.pdb", f"{PEPTIDE}.xtc", SUMMARY_FILE, RECORD_FILE}
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["options"]["num_rollouts"] == 3 and f"{PEPTIDE}_0.xtc" not in record["files"]
    assert load(out / f"{PEPTIDE}.xtc").n_frames == 3 * FORWARD_FRAMES


def test_an_out_dir_with_files_sample_did_not_write_is_refused_even_with_overwrite(forward_ckpt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(
        SamplingInputError, match=r"holds files that mdgen.sample did not write \(notes.txt\)"
    ):
        run_sample(forward_ckpt, out, *RECORDED)
    (out / "notes.txt").unlink()
    run_sample(forward_ckpt, out, *RECORDED)
    (out / "notes.txt").write_text("mine")
    for extra in ((), ("overwrite=true",), ("base_seed=1", "overwrite=true")):
        with pytest.raises(SamplingInputError, match=r"did not write \(notes.txt\)"):
            run_sample(forward_ckpt, out, *RECORDED, *extra)
    assert (out / "notes.txt").read_text() == "mine" and (out / f"{PEPTIDE}_1.xtc").is_file()


def test_an_out_dir_holding_the_inputs_is_refused(forward_ckpt, tmp_path):
    md = tmp_path / "md"
    md.mkdir()
    for suffix in (".pdb", ".xtc"):  # the input MD, named like the forward output would be
        shutil.copy(DEMO_MD / PEPTIDE / f"{PEPTIDE}{suffix}", md)
    inputs = (f"input_pdb={md / f'{PEPTIDE}.pdb'}", f"input_xtc={md / f'{PEPTIDE}.xtc'}", *FAST_SOLVER)
    before = files_and_mtimes(md)
    with pytest.raises(SamplingInputError, match=r"holds the input input_pdb="):
        run_sample(forward_ckpt, md, *inputs)
    with pytest.raises(SamplingInputError, match=r"holds the input ckpt_path="):
        run_sample(forward_ckpt, forward_ckpt.parent, *RECORDED)
    assert files_and_mtimes(md) == before


def test_a_killed_run_resumes_past_its_leftover_temporaries(forward_ckpt, tmp_path):
    out = tmp_path / "out"
    run_sample(forward_ckpt, out, *RECORDED)
    expected = load(out / f"{PEPTIDE}_1.xtc").xyz
    (out / f"{PEPTIDE}_1.xtc").unlink()  # killed while writing rollout 1: its XTC never appeared ...
    (out / f".{PEPTIDE}_1.xtc.k2j4x9.xtc").write_bytes(b"partial")  # ... but its temporary did
    report = run_sample(forward_ckpt, out, *RECORDED)
    assert report.outputs[0].generated == (1,) and report.outputs[0].skipped == (0,)
    np.testing.assert_array_equal(load(out / f"{PEPTIDE}_1.xtc").xyz, expected)


def test_name_cannot_lead_outside_out_dir(forward_ckpt, tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(UserError, match=r"name='../../x' must be a plain file name"):
        run_sample(forward_ckpt, out, *RECORDED, "name=../../x")
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob("x*"))


def test_a_write_outside_out_dir_is_refused_by_the_record(tmp_path):
    checkpoint = tmp_path / "some.ckpt"
    checkpoint.write_bytes(b"weights")
    request = SamplingRequest(ckpt_path=str(checkpoint), out_dir=str(tmp_path / "out"))
    target = OutputDirectory.inspect(request, {"method": "euler"})
    with target.claimed():
        write_json(tmp_path / "out" / "inside.json", {})
        with pytest.raises(SamplingInputError, match="would be written outside out_dir"):
            write_json(tmp_path / "outside.json", {})
    assert not (tmp_path / "outside.json").exists()
    assert "inside.json" in json.loads((tmp_path / "out" / RECORD_FILE).read_text())["files"]


def test_exported_checkpoint_holds_the_ema_weights_and_samples_like_the_training_checkpoint(
    forward_ckpt, tmp_path
):
    from mdgen.callbacks import ema_weights_from_checkpoint
    from mdgen.config import read_checkpoint
    from mdgen.errors import UserError
    from mdgen.export import export_checkpoint

    exported = export_checkpoint(forward_ckpt, tmp_path / "model.ckpt")
    training, shipped = read_checkpoint(forward_ckpt), read_checkpoint(exported)
    ema = ema_weights_from_checkpoint(training)
    assert ema and "optimizer_states" in training and "optimizer_states" not in shipped
    for key, value in ema.items():
        assert torch.equal(shipped["state_dict"][key], value)
    assert exported.stat().st_size < forward_ckpt.stat().st_size / 2
    with pytest.raises(UserError, match="exists"):
        export_checkpoint(forward_ckpt, exported)

    outputs = []
    for ckpt in (forward_ckpt, exported):
        out_dir = tmp_path / ckpt.stem
        run_sample(ckpt, out_dir, f"input_pdb={DEMO_MD / PEPTIDE / f'{PEPTIDE}.pdb'}", *FAST_SOLVER)
        outputs.append(mdtraj.load(str(out_dir / f"{PEPTIDE}.xtc"), top=str(out_dir / f"{PEPTIDE}.pdb")).xyz)
    np.testing.assert_array_equal(outputs[0], outputs[1])  # EMA weights are what sampling uses by default


def test_export_stores_the_chosen_sampler_as_the_task_default(forward_ckpt, tmp_path):
    """`mdgen.export ... sampler=heun`: the exported task's default sampler, used by `mdgen.sample`
    without a `sampler=`; the run's own task is left as it was in the stored config otherwise."""
    from mdgen.config import checkpoint_task
    from mdgen.export import export_checkpoint
    from mdgen.sampling.sampler_options import SolverOptions

    heun = SolverOptions("heun", 4, grid_power=1.0)
    exported = export_checkpoint(forward_ckpt, tmp_path / "model.ckpt", default_sampler=heun)
    before, after = checkpoint_task(forward_ckpt), checkpoint_task(exported)
    assert (after.ode_method, after.ode_num_steps, after.ode_grid_power) == ("heun", 4, 1.0)
    assert (
        dataclasses.replace(
            after,
            ode_method=before.ode_method,
            ode_num_steps=before.ode_num_steps,
            ode_grid_power=before.ode_grid_power,
        )
        == before
    )
    run_sample(exported, tmp_path / "out", f"input_pdb={DEMO_MD / PEPTIDE / f'{PEPTIDE}.pdb'}")
    summary = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert summary["solver"]["method"] == "heun" and summary["nfe"] == 6  # 3 Heun steps, 2 evaluations each
