"""mdgen.files: the SHA-256 of a file and the one atomic-write helper (io, sampling, checkpoints use it)."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from mdgen.files import atomic_path, atomic_write_text, sha256_of


def test_sha256_matches_hashlib_on_a_file_larger_than_one_block(tmp_path):
    """Catches a digest of only the first 4 MiB block (the loop reading one block)."""
    data = os.urandom(1024) * (5 * 1024)  # 5 MiB
    (tmp_path / "blob").write_bytes(data)
    assert sha256_of(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.json"  # parent created on the way
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_the_result_has_plain_open_permissions_not_mkstemps_0600(tmp_path):
    """Catches a dropped chmod: mkstemp files are owner-only, which other users' tools cannot read."""
    umask = os.umask(0)
    os.umask(umask)
    path = atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_an_interrupted_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    """Catches a rename in a `finally` (a half-written file would replace the good one)."""
    path = atomic_write_text(tmp_path / "a.xtc", "complete")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as temporary:
            assert temporary.parent == path.parent and temporary.name.startswith(".a.xtc.")
            assert temporary.suffix == ".xtc"  # mdtraj picks the format from it
            temporary.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xtc"]
