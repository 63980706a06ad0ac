"""Which request produced the files of an out_dir, and the rules for writing into one.

`mdgen.sample` writes `sampling_request.json` into out_dir before it generates anything:

    {"format_version": 1,
     "options": {every SamplingRequest field but out_dir; input paths made absolute},
     "checkpoint": {"path", "size", "mtime_ns", "sha256"},
     "sampler": {the ODE solver settings},
     "files": [every file the runs of this request wrote, relative to out_dir]}

Rules, all checked before anything is written:
- out_dir, if it exists, is a readable directory that holds only files its record lists (and the
  temporaries of interrupted writes of those files): never another file, and never an input
  (input_pdb, input_xtc, split, cache_dir, ckpt_path); it does not lie inside cache_dir either;
- a re-run with other options, or another checkpoint (compared by sha256, so a moved checkpoint is the
  same one and a retrained `last.ckpt` is not), is refused naming the differences, unless
  `overwrite=true`, which deletes the recorded files (nothing else) and regenerates;
- a re-run with the same options resumes: finished outputs are kept and skipped.
Every file is added to the record *before* it is created (`writer.recording_writes`), so after a kill
the record still lists everything the run may have left. Options are compared generically, field by
field, so a field added to `SamplingRequest` is recorded and compared without a change here; a record
written before a field existed counts as having the field's default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from mdgen.files import sha256_of
from mdgen.sampling.inputs import SamplingInputError
from mdgen.sampling.request import SamplingRequest
from mdgen.sampling.writer import recording_writes, write_json

RECORD_FILE = "sampling_request.json"
RECORD_FORMAT_VERSION = 1
# Options naming files that must stay outside out_dir; compared as absolute paths (ckpt_path by sha256).
INPUT_OPTIONS = ("ckpt_path", "input_pdb", "input_xtc", "split", "cache_dir")
_NOT_COMPARED = ("out_dir", "ckpt_path")  # where the outputs go; the checkpoint is compared by content
_LISTED = 5  # foreign files named in a refusal

_sha256_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{"path", "size", "mtime_ns", "sha256"} of a file; the hash is reused while size and mtime match.

    `known` is an earlier identity (from a record): hashing a large checkpoint once per out_dir is enough.
    """
    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if known and (known.get("path"), known.get("size"), known.get("mtime_ns")) == key:
        _sha256_memo.setdefault(key, str(known["sha256"]))
    if key not in _sha256_memo:
        _sha256_memo[key] = sha256_of(resolved)
    return {"path": key[0], "size": key[1], "mtime_ns": key[2], "sha256": _sha256_memo[key]}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def request_options(request: SamplingRequest) -> dict[str, Any]:
    """Every field of the request as JSON values, input paths absolute (the working directory may change)."""
    options = {}
    for item in fields(request):
        if item.name == "out_dir":
            continue
        value = _plain(getattr(request, item.name))
        if item.name in INPUT_OPTIONS and value is not None:
            value = str(Path(value).resolve())
        options[item.name] = value
    return options


def describe_run(
    request: SamplingRequest, sampler: Mapping[str, Any], known: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What the record stores about a run, the list of files aside."""
    known_checkpoint = (known or {}).get("checkpoint")
    return {
        "format_version": RECORD_FORMAT_VERSION,
        "options": request_options(request),
        "checkpoint": file_sha256(Path(request.ckpt_path), known_checkpoint),
        "sampler": {key: _plain(value) for key, value in sampler.items()},
    }


def _field_defaults() -> dict[str, Any]:
    defaults = {}
    for item in fields(SamplingRequest):
        if item.default is not MISSING:
            defaults[item.name] = _plain(item.default)
        elif item.default_factory is not MISSING:
            defaults[item.name] = _plain(item.default_factory())
    return defaults


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """`option: old -> new` for every option, checkpoint or sampler setting that differs."""
    defaults = _field_defaults()
    old_options, new_options = recorded.get("options", {}), current["options"]
    changed = []
    for name in sorted(set(old_options) | set(new_options)):
        if name in _NOT_COMPARED:
            continue
        old = old_options.get(name, defaults.get(name, "(not recorded)"))
        new = new_options.get(name, "(no such option now)")
        if old != new:
            changed.append(f"{name}: {_short(old)} -> {_short(new)}")
    old_hash = (recorded.get("checkpoint") or {}).get("sha256")
    if old_hash != current["checkpoint"]["sha256"]:
        changed.append(
            f"checkpoint: sha256 {str(old_hash)[:12]}... ({(recorded.get('checkpoint') or {}).get('path')}) -> "
            f"{current['checkpoint']['sha256'][:12]}... ({current['checkpoint']['path']})"
        )
    old_sampler, new_sampler = recorded.get("sampler", {}), current["sampler"]
    for name in sorted(set(old_sampler) | set(new_sampler)):
        if old_sampler.get(name) != new_sampler.get(name):
            changed.append(
                f"sampler.{name}: {_short(old_sampler.get(name))} -> {_short(new_sampler.get(name))}"
            )
    return changed


def _is_inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _is_temporary_of(name: str, recorded_names: set[str]) -> bool:
    """Atomic writes create `.NAME.<random>...` beside NAME; an interrupted one may leave it behind."""
    return name.startswith(".") and any(name.startswith(f".{recorded}.") for recorded in recorded_names)


def _walk(out_dir: Path) -> Iterator[tuple[Path, bool]]:
    """(path relative to out_dir, is_dir) of everything under out_dir; unreadable directories raise."""

    def refuse(error: OSError) -> None:
        raise SamplingInputError(
            f"out_dir={out_dir}: cannot be read ({error.strerror or error}: {error.filename})"
        ) from error

    for root, directories, files in os.walk(out_dir, onerror=refuse):
        base = Path(root).relative_to(out_dir)
        for name in directories:
            yield base / name, True
        for name in files:
            yield base / name, False


@dataclass
class OutputDirectory:
    """An out_dir checked against a run (`inspect`), then claimed by it (`claim`)."""

    path: Path
    description: dict[str, Any]
    record: dict[str, Any] | None  # the record of earlier runs, if any
    overwrite: bool
    files: list[str] = field(default_factory=list)

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_FILE

    @classmethod
    def inspect(
        cls, request: SamplingRequest, sampler: Mapping[str, Any], overwrite: bool = False
    ) -> OutputDirectory:
        """Check out_dir for this run; raises `SamplingInputError` (one line) and writes nothing."""
        path = Path(request.out_dir)
        if path.exists() and not path.is_dir():
            raise SamplingInputError(f"out_dir={path} is a file, not a directory")
        resolved = path.resolve()
        for option in INPUT_OPTIONS:
            value = getattr(request, option)
            if value is not None and _is_inside(Path(value).resolve(), resolved):
                raise SamplingInputError(
                    f"out_dir={path} holds the input {option}={value}; give the outputs a directory of their own"
                )
        if request.cache_dir is not None and _is_inside(resolved, Path(request.cache_dir).resolve()):
            raise SamplingInputError(f"out_dir={path} lies inside cache_dir={request.cache_dir}")
        record = cls._read_record(path) if path.is_dir() else None
        if path.is_dir():
            cls._refuse_foreign_files(path, record)
        description = describe_run(request, sampler, record)
        if record is not None and not overwrite:
            changed = differences(record, description)
            if changed:
                raise SamplingInputError(
                    f"out_dir={path} holds the outputs of other options ({'; '.join(changed)}); choose "
                    "another out_dir, or pass overwrite=true to delete those outputs and regenerate them"
                )
        return cls(path, description, record, overwrite, list((record or {}).get("files", [])))

    @staticmethod
    def _read_record(path: Path) -> dict[str, Any] | None:
        record_path = path / RECORD_FILE
        if not record_path.exists():
            return None
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError) as error:
            raise SamplingInputError(f"{record_path}: cannot be read ({error})") from error
        files = record.get("files") if isinstance(record, dict) else None
        if (
            not isinstance(files, list)
            or not all(isinstance(name, str) for name in files)
            or not isinstance(record.get("options"), dict)
            or not isinstance(record.get("sampler"), dict)
        ):
            raise SamplingInputError(f"{record_path}: not a record of mdgen.sample (options, sampler, files)")
        if record.get("format_version") != RECORD_FORMAT_VERSION:
            raise SamplingInputError(
                f"{record_path}: record format {record.get('format_version')}, this mdgen writes "
                f"{RECORD_FORMAT_VERSION}; choose another out_dir"
            )
        return record

    @staticmethod
    def _refuse_foreign_files(path: Path, record: Mapping[str, Any] | None) -> None:
        recorded = {Path(name) for name in (record or {}).get("files", [])} | {Path(RECORD_FILE)}
        parents = {parent for name in recorded for parent in name.parents}
        names_by_dir: dict[Path, set[str]] = {}
        for name in recorded:
            names_by_dir.setdefault(name.parent, set()).add(name.name)
        foreign = []
        for relative, is_dir in _walk(path):
            if is_dir:
                ours = relative in parents
            else:
                ours = relative in recorded or _is_temporary_of(
                    relative.name, names_by_dir.get(relative.parent, set())
                )
            if not ours:
                foreign.append(str(relative) + ("/" if is_dir else ""))
        if foreign:
            listed = ", ".join(sorted(foreign)[:_LISTED])
            more = f" and {len(foreign) - _LISTED} more" if len(foreign) > _LISTED else ""
            raise SamplingInputError(
                f"out_dir={path} holds files that mdgen.sample did not write ({listed}{more}); "
                "choose an empty or new out_dir"
            )

    # ---- after every check: claim out_dir and record what is written ------------------------------------

    @contextmanager
    def claimed(self, also: Sequence[str] = ()) -> Iterator[OutputDirectory]:
        """Delete the recorded outputs if overwriting, write the record, and record every write meanwhile.

        `also`: files (relative to out_dir) the caller writes after the block; listed from the start.
        """
        if self.overwrite and self.record is not None:
            self._remove_recorded_files()
            self.files = []
        self.files.extend(name for name in also if name not in self.files)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SamplingInputError(
                f"out_dir={self.path}: cannot be created ({error.strerror or error})"
            ) from error
        before = {relative for relative, is_dir in _walk(self.path) if not is_dir}
        self._save()
        with recording_writes(self.note):
            yield self
        # Files of writers that do not go through `writer` (none today): what appeared during the run.
        self.files.extend(
            str(relative)
            for relative, is_dir in _walk(self.path)
            if not is_dir
            and relative not in before
            and str(relative) not in self.files
            and not relative.name.startswith(".")
            and str(relative) != RECORD_FILE
        )
        self._save()

    def note(self, written: Path) -> None:
        """Called by the writer before `written` is created: keep it inside out_dir and list it first."""
        relative = Path(os.path.relpath(Path(written).resolve(), self.path.resolve()))
        if relative.parts[:1] == ("..",) or relative.is_absolute():
            raise SamplingInputError(f"{written} would be written outside out_dir={self.path}; refused")
        if str(relative) != RECORD_FILE and str(relative) not in self.files:
            self.files.append(str(relative))
            self._save()

    def _save(self) -> None:
        write_json(self.record_path, {**self.description, "files": self.files})

    def _remove_recorded_files(self) -> None:
        """Only what the record lists (and temporaries of those): never a file mdgen.sample did not write."""
        recorded = [Path(name) for name in self.record.get("files", [])]
        for relative in recorded:
            target = self.path / relative
            # A record edited by hand (or a symlinked folder in out_dir) cannot make this delete elsewhere.
            if relative.is_absolute() or ".." in relative.parts:
                continue
            if not target.parent.is_dir() or not _is_inside(target.parent.resolve(), self.path.resolve()):
                continue
            target.unlink(missing_ok=True)  # a symlink is removed itself, never what it points to
            for leftover in target.parent.iterdir():
                if _is_temporary_of(leftover.name, {relative.name}) and not leftover.is_dir():
                    leftover.unlink(missing_ok=True)
        directories = {parent for relative in recorded for parent in relative.parents if parent != Path(".")}
        for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
            try:
                (self.path / directory).rmdir()  # only when empty
            except OSError:
                pass
