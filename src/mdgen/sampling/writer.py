"""Sampling outputs on disk: atomic files, "finished" checks for resuming, and concatenation.

Every file appears atomically (`mdgen.files.atomic_path`: written under a temporary name in the same
directory, then renamed), so a file that exists is complete. One output is a trajectory `STEM.pdb` + `STEM.xtc`
(+ an optional JSON record written last); it counts as finished when its last-written file exists,
which is what lets a re-run skip it. Inside `recording_writes(note)`, every path is passed to `note`
before it is created (the sampling record lists it first, so a kill cannot leave an unlisted file).
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdgen.files import atomic_write_text
from mdgen.trajectory_files import read_trajectory, write_trajectory

_write_ledger: ContextVar[Callable[[Path], None] | None] = ContextVar("mdgen_write_ledger", default=None)


@contextmanager
def recording_writes(note: Callable[[Path], None]) -> Iterator[None]:
    """Call `note(path)` before each file this module writes is created (it may raise to refuse it)."""
    token = _write_ledger.set(note)
    try:
        yield
    finally:
        _write_ledger.reset(token)


def _announce(*paths: Path) -> None:
    note = _write_ledger.get()
    if note is not None:
        for path in paths:
            note(Path(path))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Announce `path`, then write `text` to it atomically (`mdgen.files.atomic_write_text`)."""
    _announce(Path(path))
    return atomic_write_text(path, text)


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    return write_text(path, json.dumps(payload, indent=1, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    buffer = _io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


@dataclass(frozen=True)
class TrajectoryOutput:
    """One generated trajectory: `stem.pdb` (frame 0, the topology) and `stem.xtc` (all frames).

    With `has_record`, a JSON record `stem.json` is written after the trajectory and marks it finished.
    """

    stem: Path
    has_record: bool = False

    @property
    def pdb(self) -> Path:
        return self.stem.with_name(self.stem.name + ".pdb")

    @property
    def xtc(self) -> Path:
        return self.stem.with_name(self.stem.name + ".xtc")

    @property
    def record(self) -> Path:
        return self.stem.with_name(self.stem.name + ".json")

    def is_finished(self) -> bool:
        """The files are written pdb, xtc, record in that order, each atomically: the last one decides."""
        last = self.record if self.has_record else self.xtc
        return last.is_file() and self.pdb.is_file()

    def write(
        self,
        atom14: np.ndarray,
        aatype: np.ndarray,
        frame_interval_ps: float,
        record: Mapping[str, Any] | None = None,
    ) -> None:
        """atom14 (T, L, 14, 3) Å, aatype (L,); XTC time of frame i is i * frame_interval_ps."""
        if self.has_record != (record is not None):
            raise ValueError(f"{self.stem}: a record is {'required' if self.has_record else 'not expected'}")
        _announce(self.pdb, self.xtc, *([self.record] if record is not None else []))
        write_trajectory(self.stem, atom14, aatype, timestep_ps=frame_interval_ps)
        if record is not None:
            write_json(self.record, record)

    def read_record(self) -> dict[str, Any]:
        return json.loads(self.record.read_text())

    def remove(self) -> None:
        for path in (self.record, self.xtc, self.pdb):
            path.unlink(missing_ok=True)


def concatenate_outputs(
    parts: Sequence[TrajectoryOutput], target: TrajectoryOutput, frame_interval_ps: float
) -> None:
    """Join finished parts along time into `target` (time stamps continue across parts), then delete them.

    The target appears atomically, so an interruption leaves either the parts or the target.
    """
    pieces = [read_trajectory(part.pdb, part.xtc) for part in parts]
    first = pieces[0]
    for part, piece in zip(parts, pieces):
        if piece.sequence != first.sequence:
            raise ValueError(
                f"{part.xtc}: sequence {piece.sequence} differs from {first.sequence} of {parts[0].xtc}"
            )
    atom14 = np.concatenate([piece.atom14 for piece in pieces], axis=0)  # (sum T, L, 14, 3) Å
    target.write(atom14, first.aatype, frame_interval_ps)
    for part in parts:
        part.remove()
