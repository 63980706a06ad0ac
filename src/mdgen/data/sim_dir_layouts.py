"""Find the trajectories of a simulation directory in one of the three supported layouts.

| layout         | files                                                  | entry names        |
|----------------|--------------------------------------------------------|--------------------|
| `tetrapeptide` | `DIR/NAME/NAME.pdb` + `DIR/NAME/NAME{suffix}.xtc`      | `NAME`             |
| `atlas`        | `DIR/NAME/NAME.pdb` + `DIR/NAME/NAME_prod_R{i}_fit.xtc`| `NAME_R1` .. `_R3` |
| `flat`         | `DIR/NAME.pdb` + `DIR/NAME{suffix}.xtc`                | `NAME`             |

`suffix` is `trajectory_suffix` (e.g. `_fine` for the 100 fs files of the shared data); a `.dcd` file
is used when no `.xtc` exists. Discovery only builds the list of expected files: a missing file is
not skipped here but reported by `prepare` for its entry. Directories that are hidden or end in
`.tmp` / contain `.tmp-` (simulations or caches being written) are not entries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mdgen.errors import UserError

LAYOUTS = ("auto", "tetrapeptide", "atlas", "flat")
TRAJECTORY_EXTENSIONS = (".xtc", ".dcd")
ATLAS_REPLICAS = (1, 2, 3)
_ATLAS_TRAJECTORY = re.compile(r"^(?P<name>.+)_prod_R(?P<replica>\d+)_fit\.xtc$")


class LayoutError(UserError):
    """The simulation directory cannot be read as the requested layout."""


@dataclass(frozen=True)
class SourceEntry:
    """One trajectory to prepare: the cache entry name and its (possibly missing) input files."""

    name: str
    topology_path: Path
    trajectory_path: Path


def atlas_replica_name(chain: str, replica: int) -> str:
    """Cache entry name of one ATLAS replica, e.g. ``6o2v_A_R2``."""
    return f"{chain}_R{replica}"


def _is_work_in_progress(path: Path) -> bool:
    return path.name.startswith(".") or path.name.endswith(".tmp") or ".tmp-" in path.name


def _entry_directories(sim_dir: Path) -> list[Path]:
    return sorted(p for p in sim_dir.iterdir() if p.is_dir() and not _is_work_in_progress(p))


def _trajectory_file(directory: Path, stem: str) -> Path:
    """The first existing `stem.xtc` / `stem.dcd`; the `.xtc` path when neither exists."""
    for extension in TRAJECTORY_EXTENSIONS:
        candidate = directory / f"{stem}{extension}"
        if candidate.is_file():
            return candidate
    return directory / f"{stem}{TRAJECTORY_EXTENSIONS[0]}"


def detect_layout(sim_dir: str | Path) -> str:
    """Guess the layout of ``sim_dir`` from its contents (see the module docstring)."""
    sim_dir = Path(sim_dir)
    top_level_topologies = sorted(sim_dir.glob("*.pdb"))
    directories = _entry_directories(sim_dir)
    if top_level_topologies and directories:
        raise LayoutError(
            f"{sim_dir}: holds both PDB files ({top_level_topologies[0].name}, ...) and sub-directories "
            f"({directories[0].name}, ...); pass layout=flat|tetrapeptide|atlas"
        )
    if top_level_topologies:
        return "flat"
    if any(
        _ATLAS_TRAJECTORY.match(path.name)
        for directory in directories
        for path in directory.glob("*_fit.xtc")
    ):
        return "atlas"
    if directories:
        return "tetrapeptide"
    raise LayoutError(f"{sim_dir}: no simulations found (no NAME.pdb files and no NAME/ sub-directories)")


def discover_entries(
    sim_dir: str | Path,
    *,
    layout: str = "auto",
    names: Sequence[str] | None = None,
    trajectory_suffix: str = "",
    replicas: Sequence[int] = ATLAS_REPLICAS,
) -> list[SourceEntry]:
    """List the entries of ``sim_dir``, sorted by name.

    ``names`` restricts the list (for ATLAS: chain names, each expanded to its ``replicas``); a
    requested name without files still yields an entry, so that `prepare` reports it as missing.
    """
    sim_dir = Path(sim_dir)
    if not sim_dir.is_dir():
        raise LayoutError(f"simulation directory {sim_dir} does not exist")
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if layout == "auto":
        layout = detect_layout(sim_dir)
    if layout == "atlas" and trajectory_suffix:
        raise LayoutError(
            f"trajectory_suffix={trajectory_suffix!r} does not apply to the ATLAS layout "
            "(its trajectories are always NAME_prod_R{i}_fit.xtc)"
        )

    if names is None:
        if layout == "flat":
            names = [path.stem for path in sorted(sim_dir.glob("*.pdb"))]
        else:
            names = [directory.name for directory in _entry_directories(sim_dir)]
    duplicates = sorted({name for name in names if list(names).count(name) > 1})
    if duplicates:
        raise LayoutError(f"names listed more than once: {duplicates}")

    entries: list[SourceEntry] = []
    for name in names:
        if layout == "flat":
            entries.append(
                SourceEntry(
                    name, sim_dir / f"{name}.pdb", _trajectory_file(sim_dir, f"{name}{trajectory_suffix}")
                )
            )
        elif layout == "tetrapeptide":
            directory = sim_dir / name
            entries.append(
                SourceEntry(
                    name, directory / f"{name}.pdb", _trajectory_file(directory, f"{name}{trajectory_suffix}")
                )
            )
        else:
            directory = sim_dir / name
            for replica in replicas:
                entries.append(
                    SourceEntry(
                        atlas_replica_name(name, replica),
                        directory / f"{name}.pdb",
                        directory / f"{name}_prod_R{replica}_fit.xtc",
                    )
                )
    return sorted(entries, key=lambda entry: entry.name)


def assign_to_sim_dirs(sim_dirs: Sequence[str | Path], names: Sequence[str]) -> dict[Path, list[str]]:
    """Which of several simulation directories holds each name: {sim_dir: [names]} in the given order.

    A name belongs to a directory that has `NAME/` (tetrapeptide and ATLAS layouts) or `NAME.pdb`
    (flat layout). A name found in no directory, or in more than one, is an error naming it.
    """
    dirs = [Path(d) for d in sim_dirs]
    for directory in dirs:
        if not directory.is_dir():
            raise LayoutError(f"simulation directory {directory} does not exist")
    assigned: dict[Path, list[str]] = {directory: [] for directory in dirs}
    missing, ambiguous = [], []
    for name in names:
        holders = [d for d in dirs if (d / name).is_dir() or (d / f"{name}.pdb").is_file()]
        if not holders:
            missing.append(name)
        elif len(holders) > 1:
            ambiguous.append(f"{name} ({', '.join(map(str, holders))})")
        else:
            assigned[holders[0]].append(name)
    if missing:
        shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise LayoutError(f"{len(missing)} names are in none of the simulation directories {dirs}: {shown}")
    if ambiguous:
        raise LayoutError(f"names found in more than one simulation directory: {'; '.join(ambiguous[:20])}")
    return {directory: found for directory, found in assigned.items() if found}
