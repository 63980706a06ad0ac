"""File handling shared by every command: the SHA-256 of a file, and atomic writes.

An atomic write goes to a temporary file `.NAME.<random>SUFFIX` beside `NAME` (same directory, so the
rename cannot cross file systems) and is renamed onto `NAME` only when complete: a reader, or a re-run
after a kill, sees the old file or the complete new one, never a partial one. The temporary's name
starts with `.NAME.`, which is how the sampling record recognises a leftover of an interrupted write.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_BLOCK = 1 << 22  # bytes read at a time: large checkpoints and archives are never held in memory
# mkstemp creates 0600 files; atomic writes give the result the permissions a plain open() would. The
# umask can only be read by setting it, so it is read once, at import, not while other threads write.
_UMASK = os.umask(0)
os.umask(_UMASK)


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (parents created) for the caller to write completely.

    When the block ends without an error the temporary file gets the usual permissions and is renamed
    onto `path`; on any error (KeyboardInterrupt included) it is removed and `path` is left as it was.
    The temporary keeps `path`'s suffix, for writers that pick the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (see `atomic_path`); returns `path`."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)
