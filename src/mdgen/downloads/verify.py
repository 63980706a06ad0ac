"""Checking downloaded files, and remembering which were checked.

A file is checked against the size and the SHA-256 its source publishes (HuggingFace LFS files), or the
git blob id (small HuggingFace files), or, for archives without a published checksum, by the caller
(ZIP member CRCs). Checked files are listed in `<root>/.mdgen_download.json` with their size and
modification time, so a re-run skips them without hashing gigabytes again; a file that changed since is
checked anew.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from mdgen.files import atomic_write_text, sha256_of  # noqa: F401  (re-exported: the downloads check files by it)

MANIFEST_NAME = ".mdgen_download.json"
_CHUNK = 1 << 20


def git_blob_id(path: Path) -> str:
    """The git object id of a file's content: sha1(b"blob <size>\\0" + content)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class VerifiedFiles:
    """The manifest of checked files under one root (thread-safe; saved atomically)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / MANIFEST_NAME
        self._lock = threading.Lock()
        try:
            self._entries: dict[str, dict] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._entries = {}

    def is_verified(self, relative: str, checksum: str | None = None) -> bool:
        """True if `relative` was checked and is unchanged since (and had `checksum`, when given)."""
        path = self.root / relative
        entry = self._entries.get(relative)
        if entry is None or not path.is_file():
            return False
        stat = path.stat()
        unchanged = entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns
        return unchanged and (checksum is None or entry.get("checksum") == checksum)

    def mark(self, relative: str, checksum: str) -> None:
        stat = (self.root / relative).stat()
        with self._lock:
            self._entries[relative] = {
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "checksum": checksum,
            }

    def save(self) -> None:
        with self._lock:
            atomic_write_text(self.path, json.dumps(self._entries, indent=1, sort_keys=True))
