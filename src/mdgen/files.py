"""File identity shared by every command that records or checks what it read: the SHA-256 of a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 1 << 22  # bytes read at a time: large checkpoints and archives are never held in memory


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
