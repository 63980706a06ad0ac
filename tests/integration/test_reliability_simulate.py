"""`mdgen.simulate` under faults: corrupt finished peptides, held locks, killed parents, bad requests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mdtraj.formats import XTCTrajectoryFile

from markers import slow_beyond_first
from mdgen.md.simulation import (
    LOCK_FILE,
    CorruptOutputError,
    PeptideBusyError,
    SimulationInterrupted,
    SimulationProtocol,
    StaleOutputError,
    lock_is_held,
    peptide_seed,
    simulate_peptide,
    simulate_peptides,
    verify_finished,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME = "GA"
SEED = 5
# 3 production frames 1 ps apart after 0.2 ps of equilibration: seconds per run.
TINY = SimulationProtocol(
    production_ns=0.003,
    save_interval_ps=1.0,
    equilibration_ps=0.2,
    minimization_max_iterations=100,
    checkpoint_interval_ps=1.0,
    platform="CPU",
)
CLI_TINY = [
    "length_ns=0.003", "save_interval_ps=1", "equilibration_ps=0.2", "minimization_max_iterations=100",
    "checkpoint_interval_ps=1", "platform=CPU", "progress=false",
]  # fmt: skip


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def simulate_cli(tmp_path: Path, *overrides: str, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, "-m", "mdgen.simulate", *overrides, f"hydra.run.dir={tmp_path / 'hydra'}"]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    if popen:
        return subprocess.Popen(command, cwd=tmp_path, env=environment, **popen)
    return subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)


def assert_one_line_error(completed: subprocess.CompletedProcess, expected: str) -> None:
    assert completed.returncode == 2, completed.stderr[-2000:]
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mdgen.simulate: error: "), completed.stderr[-2000:]
    assert expected in lines[0] and "Traceback" not in completed.stderr


@pytest.fixture(scope="module")
def finished_dir(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("finished")
    simulate_peptide(NAME, out_dir, TINY, peptide_seed(SEED, NAME))  # as simulate_peptides seeds it
    return out_dir


@pytest.fixture
def out_dir(finished_dir, tmp_path) -> Path:
    """A copy of the finished peptide, to corrupt."""
    copy = tmp_path / "md"
    shutil.copytree(finished_dir, copy)
    return copy


def _rewrite_xtc(path: Path, edit) -> None:
    with XTCTrajectoryFile(str(path)) as handle:
        xyz, time_ps, _, _ = handle.read()
    xyz, time_ps = edit(xyz, time_ps)
    with XTCTrajectoryFile(str(path), "w") as handle:
        handle.write(xyz, time=time_ps)


def _swap_last_two_times(xyz, time_ps):
    time_ps = time_ps.copy()
    time_ps[[1, 2]] = time_ps[[2, 1]]
    return xyz, time_ps


CORRUPTIONS = {
    "fewer_frames": (
        lambda d: _rewrite_xtc(d / f"{NAME}.xtc", lambda xyz, t: (xyz[:2], t[:2])),
        "GA.xtc holds 2 frames, info.json says 3",
    ),
    "time_backwards": (
        lambda d: _rewrite_xtc(d / f"{NAME}.xtc", _swap_last_two_times),
        "GA.xtc time does not increase at frame 2 (2 ps, then 1 ps)",
    ),
    "other_peptide_pdb": (
        lambda d: shutil.copyfile(REPO_ROOT / "tests/fixtures/trajectories/IPGD.pdb", d / f"{NAME}.pdb"),
        "GA.pdb has 28 atoms, info.json says 10",
    ),
    "fewer_atoms": (
        lambda d: _rewrite_xtc(d / f"{NAME}.xtc", lambda xyz, t: (xyz[:, :9].copy(), t)),
        "GA.xtc has 9 atoms per frame, the PDB 10",
    ),
    "missing_xtc": (lambda d: (d / f"{NAME}.xtc").unlink(), "GA.xtc cannot be read"),
    "not_a_record": (lambda d: (d / "info.json").write_text("{}"), "info.json is not a simulate record"),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_finished_peptide_is_reported_and_never_deleted(out_dir, corruption):
    corrupt, expected = CORRUPTIONS[corruption]
    corrupt(out_dir / NAME)
    before = snapshot(out_dir)
    with pytest.raises(CorruptOutputError, match="is marked finished") as error:
        simulate_peptides([NAME], out_dir, TINY, base_seed=SEED, show_progress=False)
    assert expected in str(error.value) and "left untouched" in str(error.value)
    assert snapshot(out_dir) == before and sorted(os.listdir(out_dir)) == [NAME]
    with pytest.raises(CorruptOutputError, match=expected.split(" ")[0]):
        simulate_peptide(NAME, out_dir, TINY, SEED)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"production_ns": 0.005}, "length_ns=0.003 (requested 0.005)"),
        ({"temperature_K": 300.0}, "temperature_K=350.0 (requested 300.0)"),
        ({"seed": SEED + 1}, "seed="),
    ],
)
def test_a_finished_peptide_made_with_other_settings_is_not_passed_off_as_new(out_dir, change, expected):
    before = snapshot(out_dir)
    seed = change.pop("seed", SEED)
    protocol = replace(TINY, **change)
    with pytest.raises(StaleOutputError, match="is finished but was simulated with") as error:
        simulate_peptides([NAME], out_dir, protocol, base_seed=seed, show_progress=False)
    assert expected in str(error.value)
    assert snapshot(out_dir) == before
    # The same settings, or only another platform, thread count or checkpoint interval: skipped.
    same = replace(TINY, threads=2, checkpoint_interval_ps=3.0, platform="Reference")
    record = simulate_peptides([NAME], out_dir, same, base_seed=SEED, show_progress=False)[0]
    assert record.num_frames == 3 and snapshot(out_dir) == before


def test_finished_output_of_earlier_versions_verifies(finished_dir):
    record = verify_finished(finished_dir, NAME)
    assert record.num_frames == 3 and not (finished_dir / NAME / LOCK_FILE).exists()


def test_cli_reports_a_corrupt_finished_peptide_in_one_line(out_dir, tmp_path):
    CORRUPTIONS["time_backwards"][0](out_dir / NAME)
    before = snapshot(out_dir)
    completed = simulate_cli(tmp_path, f"sequences=[{NAME}]", f"out_dir={out_dir}", *CLI_TINY)
    assert_one_line_error(completed, "GA.xtc time does not increase at frame 2")
    assert snapshot(out_dir) == before


@pytest.mark.parametrize(
    ("overrides", "expected"),
    slow_beyond_first(
        [
            (["sequences=[]"], "sequences is empty"),
            (["sequences=[GA,GA]"], "duplicate sequences"),
            (["sequences=[GZ]"], "non-standard residue letter(s) ['Z']"),
            (
                ["sequences=[GA]", "platform=NoSuchPlatform"],
                "OpenMM platform 'NoSuchPlatform' is not available",
            ),
            (["sequences=[GA]", "out_dir=a_file"], "out_dir a_file exists and is not a directory"),
            (["sequences=[GA]", "length_ns=0.0015"], "production_ns: 1.5 ps is not a positive whole number"),
        ]
    ),
)
def test_cli_bad_requests_are_one_line(tmp_path, overrides, expected):
    (tmp_path / "a_file").write_text("mine")
    completed = simulate_cli(tmp_path, "out_dir=md", *CLI_TINY, *overrides)
    assert_one_line_error(completed, expected)
    assert not (tmp_path / "md").exists() and (tmp_path / "a_file").read_text() == "mine"


def _interrupted_run(out_dir: Path, protocol: SimulationProtocol) -> Path:
    """A run killed after its first checkpoint: NAME.tmp/ with resume.npz."""
    done = []

    def crash(ps):
        done.append(ps)
        if sum(done) >= 2.0:
            raise SimulationInterrupted("test crash")

    with pytest.raises(SimulationInterrupted):
        simulate_peptide(NAME, out_dir, protocol, SEED, progress=crash)
    work_dir = out_dir / f"{NAME}.tmp"
    assert (work_dir / "resume.npz").is_file()
    return work_dir


HOLD_LOCK = (
    "import fcntl, os, sys, time\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "os.pwrite(fd, b'pid %d' % os.getpid(), 0)\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


def test_a_held_lock_makes_the_peptide_busy_and_a_dead_holders_lock_is_taken_over(tmp_path):
    protocol = replace(TINY, production_ns=0.005)
    work_dir = _interrupted_run(tmp_path, protocol)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(work_dir / LOCK_FILE)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(tmp_path)
        with pytest.raises(PeptideBusyError, match=r"GA are being simulated by another process"):
            simulate_peptides([NAME], tmp_path, protocol, base_seed=SEED, show_progress=False)
        with pytest.raises(PeptideBusyError, match=rf"GA is being simulated by pid {holder.pid}"):
            simulate_peptide(NAME, tmp_path, protocol, SEED)
        assert snapshot(tmp_path) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not lock_is_held(work_dir)  # the kernel released the dead holder's lock
    record = simulate_peptide(NAME, tmp_path, protocol, SEED)
    assert record.resumed_times == 1 and record.num_frames == 5
    assert sorted(os.listdir(tmp_path)) == [NAME] and not (tmp_path / NAME / LOCK_FILE).exists()
    assert verify_finished(tmp_path, NAME) == record


def _lock_holder_pid(lock: Path) -> int | None:
    try:
        text = lock.read_text()
    except FileNotFoundError:
        return None
    return int(text.split()[1]) if text.startswith("pid ") else None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_parent_of_parallel_workers_leaves_no_orphans_and_the_rerun_finishes(tmp_path):
    """kill -9 `mdgen.simulate n_jobs=2` mid-production: the workers die at once, their locks are
    released, a second run on the same out_dir is refused while a run is live and resumes afterwards."""
    names = ["GA", "AG"]
    overrides = [f"sequences=[{','.join(names)}]", "out_dir=md", "n_jobs=2", *CLI_TINY]
    overrides = [o for o in overrides if not o.startswith(("length_ns", "checkpoint_interval_ps"))]
    overrides += ["length_ns=0.1", "checkpoint_interval_ps=5"]
    parent = simulate_cli(tmp_path, *overrides, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    locks = [tmp_path / "md" / f"{name}.tmp" / LOCK_FILE for name in names]
    resumes = [lock.with_name("resume.npz") for lock in locks]
    deadline = time.monotonic() + 300
    while not all(path.is_file() for path in resumes) and time.monotonic() < deadline:
        assert parent.poll() is None, parent.stderr.read()
        time.sleep(0.1)
    workers = [_lock_holder_pid(lock) for lock in locks]
    assert all(workers) and all(_alive(pid) for pid in workers)

    # A second run while the first one is live: refused, nothing touched.
    refused = simulate_cli(tmp_path, *overrides)
    assert_one_line_error(refused, "are being simulated by another process")

    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "workers outlived their killed parent"
    assert not any(lock_is_held(lock.parent) for lock in locks)

    completed = simulate_cli(tmp_path, *overrides)
    assert completed.returncode == 0, completed.stderr[-3000:]
    for name in names:
        record = verify_finished(tmp_path / "md", name)
        assert record.num_frames == 100 and record.resumed_times == 1
        info = json.loads((tmp_path / "md" / name / "info.json").read_text())
        assert info["num_frames"] == 100
        with XTCTrajectoryFile(str(tmp_path / "md" / name / f"{name}.xtc")) as handle:
            _, time_ps, _, _ = handle.read()
        np.testing.assert_allclose(time_ps, np.arange(100.0), atol=1e-3)
    assert sorted(os.listdir(tmp_path / "md")) == sorted(names)


def test_a_run_killed_while_installing_the_finished_peptide_resumes_without_simulating_again(
    tmp_path, monkeypatch
):
    import mdgen.md.simulation as simulate_module

    real_replace = os.replace

    def killed_at_the_rename(source, destination):
        if Path(destination) == tmp_path / NAME:
            raise SimulationInterrupted("killed before the rename")
        real_replace(source, destination)

    monkeypatch.setattr(simulate_module.os, "replace", killed_at_the_rename)
    with pytest.raises(SimulationInterrupted):
        simulate_peptide(NAME, tmp_path, TINY, SEED)
    monkeypatch.setattr(simulate_module.os, "replace", real_replace)
    assert (tmp_path / f"{NAME}.tmp" / "resume.npz").is_file()

    def must_not_step(ps):
        raise AssertionError(f"simulated {ps} ps again")

    record = simulate_peptide(NAME, tmp_path, TINY, SEED, progress=must_not_step)
    assert record.resumed_times == 1 and record.num_frames == 3
    assert sorted(p.name for p in (tmp_path / NAME).iterdir()) == ["GA.pdb", "GA.xtc", "info.json"]
