"""`python -m mdgen.prepare` never writes among a user's files and deletes only what it wrote."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from markers import slow_beyond_first
from mdgen.data.cache import CACHE_MARKER_FILE, EntryWriter, is_cache_dir, list_cached_entries
from mdgen.data.prepare import prepare_simulations

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAJECTORIES = REPO_ROOT / "tests" / "fixtures" / "trajectories"


def prepare_cli(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mdgen.prepare",
            *overrides,
            "progress=false",
            f"hydra.run.dir={cwd / 'hydra'}",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def snapshot(directory: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file below directory (what must survive untouched)."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def sim_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "sim"
    directory.mkdir()
    for name in ("FLRH", "IPGD"):
        for suffix in (".pdb", ".xtc"):
            shutil.copyfile(TRAJECTORIES / f"{name}{suffix}", directory / f"{name}{suffix}")
    return directory


def assert_one_line_error(completed: subprocess.CompletedProcess, expected: str) -> None:
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mdgen.prepare: error: "), completed.stderr
    assert expected in lines[0] and "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("out_dir", "expected"),
    slow_beyond_first(
        [
            ("sim", "is the simulation directory"),
            ("sim/cache", "is inside the simulation directory"),
            (".", "contains the simulation directory"),
            ("user_dir", "is not empty and is not a cache written by mdgen.prepare (it holds notes.txt)"),
            ("a_file", "exists and is not a directory"),
            ("a_file/cache", "cannot create it"),
        ]
    ),
)
def test_out_dir_that_is_not_a_cache_is_refused_and_nothing_is_touched(sim_dir, out_dir, expected):
    root = sim_dir.parent
    (root / "user_dir").mkdir()
    (root / "user_dir" / "notes.txt").write_text("mine")
    (root / "a_file").write_text("mine too")
    before = snapshot(root)
    completed = prepare_cli("sim_dir=sim", f"out_dir={out_dir}", cwd=root)
    assert_one_line_error(completed, expected)
    after = {path: digest for path, digest in snapshot(root).items() if not path.startswith("hydra")}
    assert after == before  # nothing deleted, changed or added
    assert not (sim_dir / "cache").exists()


@pytest.mark.slow  # kills a real prepare run (~18 s)
def test_killed_prepare_leaves_temporaries_that_the_next_run_removes(sim_dir, tmp_path):
    cache = tmp_path / "cache"
    assert prepare_cli("sim_dir=sim", "out_dir=cache", cwd=tmp_path).returncode == 0
    # A prepare killed while writing an entry: its work directory stays (kill -9 runs no clean-up).
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "from mdgen.data.cache import EntryWriter\n"
            "EntryWriter(sys.argv[1], 'FLRH', 50, 4)\n"
            "os.kill(os.getpid(), signal.SIGKILL)",
            str(cache),
        ],
        capture_output=True,
    )
    assert killed.returncode == -9
    (left_over,) = cache.glob("FLRH.tmp-*")
    assert (left_over / "rots.npy").is_file()
    # A directory named like a temporary but holding a user's file is not prepare's to delete.
    foreign = cache / "IPGD.tmp-abcdefgh"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    (foreign / "rots.npy").write_bytes(b"mine as well")
    (cache / "README.txt").write_text("a user's note in a cache")

    completed = prepare_cli("sim_dir=sim", "out_dir=cache", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert not left_over.exists()
    assert (foreign / "notes.txt").read_text() == "mine"
    assert (cache / "README.txt").read_text() == "a user's note in a cache"
    assert sorted(list_cached_entries(cache)) == ["FLRH", "IPGD"]


def test_an_entry_directory_prepare_did_not_write_is_never_replaced(sim_dir, tmp_path):
    cache = tmp_path / "cache"
    prepare_simulations(sim_dir, cache, progress=False)
    (cache / "FLRH" / "notes.txt").write_text("a user's file inside an entry")
    shutil.rmtree(cache / "IPGD")
    (cache / "IPGD").mkdir()
    (cache / "IPGD" / "data.csv").write_text("not a cache entry")
    os.utime(sim_dir / "FLRH.xtc")  # the source changed: FLRH would be prepared again

    summary = prepare_simulations(sim_dir, cache, progress=False)
    assert set(summary.failures) == {"FLRH", "IPGD"}
    assert all("is not an entry written by mdgen.prepare" in problem for problem in summary.failures.values())
    assert (cache / "FLRH" / "notes.txt").is_file() and (cache / "FLRH" / "rots.npy").is_file()
    assert (cache / "IPGD" / "data.csv").read_text() == "not a cache entry"
    assert not list(cache.glob("*.tmp-*"))  # the new entries' work directories were removed


def test_a_cache_made_before_the_marker_is_still_recognised(sim_dir, tmp_path):
    cache = tmp_path / "cache"
    prepare_simulations(sim_dir, cache, progress=False)
    (cache / CACHE_MARKER_FILE).unlink()  # as caches written before the marker existed
    assert is_cache_dir(cache)
    summary = prepare_simulations(sim_dir, cache, progress=False)
    assert summary.up_to_date == ["FLRH", "IPGD"] and (cache / CACHE_MARKER_FILE).is_file()
    # With anything else in it, an unmarked directory is not a cache.
    (cache / CACHE_MARKER_FILE).unlink()
    (cache / "notes.txt").write_text("mine")
    assert not is_cache_dir(cache)


def test_an_aborted_entry_writer_removes_only_its_own_files(tmp_path):
    with pytest.raises(RuntimeError), EntryWriter(tmp_path, "X", 3, 4) as writer:
        (writer.work_dir / "debug.log").write_text("someone else's file")
        raise RuntimeError("failure while writing")
    (left,) = tmp_path.glob("X.tmp-*")
    assert [path.name for path in left.iterdir()] == ["debug.log"]
