"""Split CSVs: which trajectories form the train / val / test sets.

The format is the published one (``splits/4AA_*.csv``, ``splits/atlas_*.csv`` of the original MDGen):
a header row with at least the columns ``name`` and ``seqres``, one row per peptide or protein chain.
Extra columns (``release_date``, ``msa_id``, ``seqlen`` in the ATLAS files) are kept but not used.
For tetrapeptides ``seqres`` equals ``name``; for ATLAS ``name`` is the chain (``6o2v_A``) whose
replicas are cached as ``6o2v_A_R1`` ... ``6o2v_A_R3``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mdgen.errors import UserError

REQUIRED_COLUMNS = ("name", "seqres")


class SplitError(UserError):
    """A split CSV is malformed; the message names the file (and row) and the problem."""


@dataclass(frozen=True)
class SplitRow:
    """One row of a split CSV: a trajectory name and its sequence (one letter per residue)."""

    name: str
    seqres: str


def read_split(path: str | Path) -> list[SplitRow]:
    """Read a split CSV in the published ``name,seqres[,...]`` format, in file order.

    Raises ``SplitError`` for a missing file, a missing column, an empty name or sequence,
    or a name listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"split file {path} does not exist")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [column for column in REQUIRED_COLUMNS if column not in columns]
        if missing:
            raise SplitError(f"split file {path}: missing column(s) {missing}; header is {columns}")
        rows: list[SplitRow] = []
        first_line_of = {}
        for line_number, record in enumerate(reader, start=2):
            name = (record["name"] or "").strip()
            seqres = (record["seqres"] or "").strip()
            if not name or not seqres:
                raise SplitError(f"split file {path}, line {line_number}: empty name or seqres")
            if name in first_line_of:
                raise SplitError(
                    f"split file {path}, line {line_number}: {name!r} already listed on line {first_line_of[name]}"
                )
            first_line_of[name] = line_number
            rows.append(SplitRow(name=name, seqres=seqres))
    if not rows:
        raise SplitError(f"split file {path} lists no entries")
    return rows


def write_split(path: str | Path, rows: Iterable[SplitRow]) -> Path:
    """Write ``rows`` as a ``name,seqres`` CSV (readable by ``read_split`` and by pandas)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REQUIRED_COLUMNS)
        for row in rows:
            writer.writerow((row.name, row.seqres))
    return path


def split_names(rows: Sequence[SplitRow]) -> list[str]:
    """The names of ``rows``, in order."""
    return [row.name for row in rows]
