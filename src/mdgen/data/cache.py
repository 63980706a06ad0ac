"""The on-disk trajectory cache: per-frame residue rigids and torsions, memory-mappable.

Layout (format version ``CACHE_FORMAT_VERSION``), one directory per entry::

    CACHE/NAME/manifest.json        EntryManifest as JSON; written last
    CACHE/NAME/rots.npy             (N, L, 3, 3) float32  residue frame rotations (local -> global)
    CACHE/NAME/trans.npy            (N, L, 3)    float32  residue frame origins (CA), Å
    CACHE/NAME/torsions.npy         (N, L, 7, 2) float32  (sin, cos) of [ω, φ, ψ, χ1..χ4]
    CACHE/NAME/torsion_mask.npy     (L, 7)       bool     torsion exists (frame 0; constant per topology)
    CACHE/NAME/aatype.npy           (L,)         int64    AlphaFold order, 20 = unknown
    CACHE/NAME/residue_index.npy    (L,)         int64    0-based position in the chain
    CACHE/NAME/atom14_frame0.npy    (L, 14, 3)   float32  Å, frame 0 (key atoms for decoding samples)
    CACHE/NAME/atom14_mask.npy      (L, 14)      bool

N counts frames at the cached interval ``manifest.interval_ps``. There is no shared index file: the
cache's contents are the directories holding a ``manifest.json`` (``list_cached_entries``). An entry is
built in ``CACHE/NAME.tmp-XXXXXXXX`` and renamed into place after its manifest is written, so a crash
never leaves a directory that looks finished; readers ignore names containing ``.tmp-``.

``CACHE/.mdgen-cache.json`` marks a directory as a cache (``is_cache_dir``; caches made before the
marker are recognised by their ``.prepare.lock`` and entries). Nothing is ever deleted here that the
cache did not write: an entry or temporary directory is removed file by file, only the files listed in
``ENTRY_FILES``, and is left in place (with a warning) if it holds anything else.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mdgen.errors import UserError

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
CACHE_MARKER_FILE = ".mdgen-cache.json"  # marks a directory as a cache written by mdgen.prepare
PREPARE_LOCK_FILE = ".prepare.lock"  # held by a running prepare (fcntl.flock)
ENTRY_ARRAYS = (
    "rots", "trans", "torsions", "torsion_mask", "aatype", "residue_index", "atom14_frame0", "atom14_mask"
)  # fmt: skip
ENTRY_FILES = frozenset({MANIFEST_FILE, *(f"{name}.npy" for name in ENTRY_ARRAYS)})
NUM_TORSIONS = 7
NUM_ATOM14 = 14
_TEMPORARY_MARKER = ".tmp-"
# What EntryWriter names its work directories: mkdtemp's 8 characters, or "stale-" + 8 hex digits.
_TEMPORARY_NAME = re.compile(r"^.+\.tmp-(?:stale-[0-9a-f]{8}|[a-z0-9_]{8})$")


class CacheError(UserError):
    """A cache entry is missing, incomplete or inconsistent; the message names the entry."""


@dataclass(frozen=True)
class SourceFile:
    """An input file as it was when the entry was prepared (to detect later changes)."""

    path: str
    size_bytes: int
    mtime_ns: int

    @classmethod
    def from_path(cls, path: str | Path) -> SourceFile:
        stat = Path(path).stat()
        return cls(path=str(Path(path).resolve()), size_bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)


@dataclass(frozen=True)
class EntryManifest:
    """What one cache entry holds and where it came from (``manifest.json``)."""

    name: str
    sequence: str
    num_frames: int
    num_residues: int
    interval_ps: float  # time between consecutive cached frames
    source_interval_ps: float  # time between consecutive frames of the source trajectory
    timestep_from_config: bool  # True when the source had no time stamps and `timestep_ps` was used
    sources: tuple[SourceFile, ...]  # topology, trajectory
    format_version: int = CACHE_FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str, *, origin: str) -> EntryManifest:
        try:
            fields = json.loads(text)
            fields["sources"] = tuple(SourceFile(**source) for source in fields["sources"])
            return cls(**fields)
        except (TypeError, KeyError, json.JSONDecodeError) as error:
            raise CacheError(
                f"{origin}: unreadable manifest ({error}); re-run `python -m mdgen.prepare`"
            ) from error


def validate_entry_name(name: str) -> str:
    """Entry names become directory names: no path separators, no leading dot, no temporary marker."""
    if not name or "/" in name or os.sep in name or name.startswith(".") or _TEMPORARY_MARKER in name:
        raise CacheError(f"invalid cache entry name {name!r}")
    return name


def _holds_only_entry_files(directory: Path) -> bool:
    return all(child.name in ENTRY_FILES and child.is_file() for child in directory.iterdir())


def is_entry_dir(directory: str | Path) -> bool:
    """A finished entry as EntryWriter leaves it: a manifest and nothing but the entry's own files."""
    directory = Path(directory)
    return (
        directory.is_dir()
        and not directory.is_symlink()
        and (directory / MANIFEST_FILE).is_file()
        and _holds_only_entry_files(directory)
    )


def is_temporary_entry_dir(directory: str | Path) -> bool:
    """A work (or moved-aside) directory of EntryWriter, by its name; left behind when prepare is killed."""
    directory = Path(directory)
    return bool(_TEMPORARY_NAME.match(directory.name)) and directory.is_dir() and not directory.is_symlink()


def remove_entry_dir(directory: str | Path) -> bool:
    """Delete an entry or temporary directory file by file: only ``ENTRY_FILES``, then the directory.

    Anything else inside (a user's file, a sub-directory) stays, as does the directory: returns False
    and logs a warning. Missing directories count as removed.
    """
    directory = Path(directory)
    if not directory.exists():
        return True
    if directory.is_symlink() or not directory.is_dir():
        logger.warning("%s: not a directory written by mdgen.prepare; left in place", directory)
        return False
    for child in directory.iterdir():
        if child.name in ENTRY_FILES and child.is_file() and not child.is_symlink():
            child.unlink()
    try:
        directory.rmdir()
    except OSError:
        left = sorted(child.name for child in directory.iterdir())
        logger.warning("%s: holds files mdgen.prepare did not write (%s); left in place", directory, left)
        return False
    return True


def is_cache_dir(directory: str | Path) -> bool:
    """True for a directory prepare made: it has the marker, or (caches made before the marker) the
    prepare lock file and nothing but entries and temporary entry directories."""
    directory = Path(directory)
    if not directory.is_dir():
        return False
    if (directory / CACHE_MARKER_FILE).is_file():
        return True
    if not (directory / PREPARE_LOCK_FILE).is_file():
        return False
    for child in directory.iterdir():
        if child.name == PREPARE_LOCK_FILE:
            continue
        if is_temporary_entry_dir(child):
            if not _holds_only_entry_files(child):
                return False
        elif not is_entry_dir(child):
            return False
    return True


def mark_cache_dir(directory: str | Path) -> None:
    """Write the cache marker (atomically) unless it is there."""
    marker = Path(directory) / CACHE_MARKER_FILE
    if marker.is_file():
        return
    partial = marker.with_name(f"{CACHE_MARKER_FILE}.partial")
    partial.write_text(
        json.dumps({"written_by": "mdgen.prepare", "format_version": CACHE_FORMAT_VERSION}, indent=1) + "\n"
    )
    os.replace(partial, marker)


def remove_stale_temporaries(cache_dir: str | Path) -> list[Path]:
    """Remove the temporary entry directories of killed prepare runs; call only while holding the
    prepare lock (no live writer then). Returns those left in place because they hold foreign files."""
    left = []
    for child in sorted(Path(cache_dir).iterdir()):
        if is_temporary_entry_dir(child):
            if remove_entry_dir(child):
                logger.info("removed %s, left by an interrupted prepare", child)
            else:
                left.append(child)
    return left


def read_manifest(entry_dir: str | Path) -> EntryManifest:
    path = Path(entry_dir) / MANIFEST_FILE
    if not path.is_file():
        raise CacheError(f"cache entry {Path(entry_dir).name}: {path} does not exist")
    return EntryManifest.from_json(path.read_text(), origin=str(path))


def list_cached_entries(cache_dir: str | Path) -> dict[str, EntryManifest]:
    """Every finished entry of ``cache_dir`` (a directory with a manifest), by name."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return {}
    entries = {}
    for manifest_path in sorted(cache_dir.glob(f"*/{MANIFEST_FILE}")):
        entry_dir = manifest_path.parent
        if _TEMPORARY_MARKER in entry_dir.name:
            continue
        entries[entry_dir.name] = read_manifest(entry_dir)
    return entries


class EntryWriter:
    """Builds one entry in a temporary directory; ``commit`` renames it into place.

    Use as a context manager: leaving the block without ``commit`` (an error) removes the temporary
    directory. ``rots``, ``trans`` and ``torsions`` are writable (N, L, ...) float32 memory maps to fill
    chunk by chunk.
    """

    def __init__(self, cache_dir: str | Path, name: str, num_frames: int, num_residues: int):
        self.cache_dir = Path(cache_dir)
        self.name = validate_entry_name(name)
        self.num_frames = num_frames
        self.num_residues = num_residues
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"{name}{_TEMPORARY_MARKER}", dir=self.cache_dir))
        n, l = num_frames, num_residues
        self.rots = self._allocate("rots", (n, l, 3, 3))  # (N, L, 3, 3)
        self.trans = self._allocate("trans", (n, l, 3))  # (N, L, 3) Å
        self.torsions = self._allocate("torsions", (n, l, NUM_TORSIONS, 2))  # (N, L, 7, 2) (sin, cos)
        self._committed = False

    def _allocate(self, array_name: str, shape: tuple[int, ...]) -> np.memmap:
        return np.lib.format.open_memmap(
            self.work_dir / f"{array_name}.npy", mode="w+", dtype=np.float32, shape=shape
        )

    def commit(
        self,
        manifest: EntryManifest,
        *,
        aatype: np.ndarray,  # (L,) int
        residue_index: np.ndarray,  # (L,) int
        torsion_mask: np.ndarray,  # (L, 7) bool
        atom14_frame0: np.ndarray,  # (L, 14, 3) Å
        atom14_mask: np.ndarray,  # (L, 14) bool
    ) -> Path:
        """Write the per-entry arrays and the manifest, then atomically install the entry."""
        if (manifest.name, manifest.num_frames, manifest.num_residues) != (
            self.name,
            self.num_frames,
            self.num_residues,
        ):
            raise CacheError(f"cache entry {self.name}: manifest does not describe the arrays being written")
        for memmap in (self.rots, self.trans, self.torsions):
            memmap.flush()
        small_arrays = {
            "aatype": np.asarray(aatype, dtype=np.int64),
            "residue_index": np.asarray(residue_index, dtype=np.int64),
            "torsion_mask": np.asarray(torsion_mask, dtype=bool),
            "atom14_frame0": np.asarray(atom14_frame0, dtype=np.float32),
            "atom14_mask": np.asarray(atom14_mask, dtype=bool),
        }
        for array_name, array in small_arrays.items():
            np.save(self.work_dir / f"{array_name}.npy", array)
        (self.work_dir / MANIFEST_FILE).write_text(manifest.to_json())
        final_dir = self.cache_dir / self.name
        if final_dir.exists() or final_dir.is_symlink():
            if final_dir.is_symlink() or not is_entry_dir(final_dir):
                raise CacheError(
                    f"cache entry {self.name}: {final_dir} exists and is not an entry written by "
                    "mdgen.prepare (it holds other files or no manifest.json); it was left untouched: "
                    "move it away or choose another out_dir"
                )
            # A directory cannot be renamed over a non-empty one: move the stale entry aside first.
            stale_dir = self.cache_dir / f"{self.name}{_TEMPORARY_MARKER}stale-{uuid.uuid4().hex[:8]}"
            os.replace(final_dir, stale_dir)
            os.replace(self.work_dir, final_dir)
            remove_entry_dir(stale_dir)
        else:
            os.replace(self.work_dir, final_dir)
        self._committed = True
        return final_dir

    def abort(self) -> None:
        remove_entry_dir(self.work_dir)

    def __enter__(self) -> EntryWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        if not self._committed:
            self.abort()


@dataclass(frozen=True)
class CachedEntry:
    """A finished entry opened read-only; the per-frame arrays are memory maps (nothing is loaded)."""

    manifest: EntryManifest
    rots: np.ndarray  # (N, L, 3, 3) float32
    trans: np.ndarray  # (N, L, 3) float32, Å
    torsions: np.ndarray  # (N, L, 7, 2) float32
    torsion_mask: np.ndarray  # (L, 7) bool
    aatype: np.ndarray  # (L,) int64
    residue_index: np.ndarray  # (L,) int64
    atom14_frame0: np.ndarray  # (L, 14, 3) float32, Å
    atom14_mask: np.ndarray  # (L, 14) bool


def open_entry(cache_dir: str | Path, name: str) -> CachedEntry:
    """Memory-map entry ``name`` of ``cache_dir`` and check its arrays against its manifest."""
    entry_dir = Path(cache_dir) / name
    if not entry_dir.is_dir():
        raise CacheError(f"cache entry {name}: {entry_dir} does not exist; run `python -m mdgen.prepare`")
    manifest = read_manifest(entry_dir)
    if manifest.format_version != CACHE_FORMAT_VERSION:
        raise CacheError(
            f"cache entry {name}: format version {manifest.format_version}, this mdgen reads "
            f"{CACHE_FORMAT_VERSION}; re-run `python -m mdgen.prepare`"
        )
    n, l = manifest.num_frames, manifest.num_residues
    expected = {
        "rots": ((n, l, 3, 3), np.float32),
        "trans": ((n, l, 3), np.float32),
        "torsions": ((n, l, NUM_TORSIONS, 2), np.float32),
        "torsion_mask": ((l, NUM_TORSIONS), np.bool_),
        "aatype": ((l,), np.int64),
        "residue_index": ((l,), np.int64),
        "atom14_frame0": ((l, NUM_ATOM14, 3), np.float32),
        "atom14_mask": ((l, NUM_ATOM14), np.bool_),
    }
    arrays = {}
    for array_name, (shape, dtype) in expected.items():
        path = entry_dir / f"{array_name}.npy"
        if not path.is_file():
            raise CacheError(f"cache entry {name}: {path} is missing")
        array = np.load(path, mmap_mode="r")
        if array.shape != shape or array.dtype != dtype:
            raise CacheError(
                f"cache entry {name}: {path.name} has shape {array.shape} {array.dtype}, "
                f"the manifest implies {shape} {np.dtype(dtype)}"
            )
        arrays[array_name] = array
    return CachedEntry(manifest=manifest, **arrays)
