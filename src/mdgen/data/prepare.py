"""Turn MD trajectories into the training cache (``mdgen.data.cache``), in parallel, reporting every failure.

For each entry found by ``mdgen.data.sim_dir_layouts``: read the trajectory at the requested output interval,
compute per frame the residue rigids and torsions once (``mdgen.tokens.frame_features``, in chunks of
frames to bound memory), and install the entry atomically. An entry whose manifest matches the
source files (path, size, mtime) and the requested interval is left alone. A bad entry (missing file,
atom-count mismatch, non-standard residue, NaN coordinates, too few frames, ...) is recorded with its
problem and the others are still prepared; ``PrepareSummary.ok`` is False if any failed.

The cache directory must be new, empty or a cache prepare made (``mdgen.data.cache.is_cache_dir``), and
neither equal to, inside, nor around the simulation directory: prepare never writes among a user's
files, and deletes only what it wrote (stale ``NAME.tmp-*`` directories of a killed run included).
"""

from __future__ import annotations

import fcntl
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mdtraj
import numpy as np
import torch
from tqdm.auto import tqdm

from mdgen.constants import UNKNOWN_AATYPE
from mdgen.data.cache import (
    CACHE_FORMAT_VERSION,
    PREPARE_LOCK_FILE,
    CacheError,
    EntryManifest,
    EntryWriter,
    SourceFile,
    is_cache_dir,
    mark_cache_dir,
    read_manifest,
    remove_stale_temporaries,
)
from mdgen.data.sim_dir_layouts import ATLAS_REPLICAS, SourceEntry, discover_entries
from mdgen.data.workers import die_with_parent
from mdgen.errors import UserError
from mdgen.timesteps import frames_per_interval, same_timestep, timestep_from_stamps
from mdgen.tokens import frame_features
from mdgen.trajectory_files import read_trajectory

logger = logging.getLogger(__name__)


PREPARED, UP_TO_DATE, FAILED = "prepared", "up_to_date", "failed"


class PrepareError(UserError):
    """One entry cannot be prepared; the message says why (and names the file where there is one)."""


@dataclass(frozen=True)
class PrepareOptions:
    """How every entry of one prepare run is processed."""

    interval_ps: float | None = None  # output frame interval; None keeps the source interval
    timestep_ps: float | None = None  # source frame interval for files without time stamps (DCD)
    min_frames: int = 2  # entries with fewer frames at interval_ps fail
    chunk_frames: int = 2048  # frames featurized at once (bounds memory)


@dataclass(frozen=True)
class EntryOutcome:
    """What happened to one entry."""

    name: str
    status: str  # PREPARED | UP_TO_DATE | FAILED
    problem: str = ""  # why it failed
    num_frames: int = 0  # cached frames (prepared or up to date)


@dataclass(frozen=True)
class PrepareSummary:
    """The outcome of a prepare run, one record per entry, sorted by name."""

    cache_dir: str
    outcomes: tuple[EntryOutcome, ...]
    wall_s: float

    def _names(self, status: str) -> list[str]:
        return [outcome.name for outcome in self.outcomes if outcome.status == status]

    @property
    def prepared(self) -> list[str]:
        return self._names(PREPARED)

    @property
    def up_to_date(self) -> list[str]:
        return self._names(UP_TO_DATE)

    @property
    def failures(self) -> dict[str, str]:
        return {outcome.name: outcome.problem for outcome in self.outcomes if outcome.status == FAILED}

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> str:
        lines = [
            f"prepare -> {self.cache_dir}: {len(self.prepared)} prepared, {len(self.up_to_date)} up to date, "
            f"{len(self.failures)} failed ({self.wall_s:.1f} s)"
        ]
        lines += [f"  FAILED {name}: {problem}" for name, problem in self.failures.items()]
        return "\n".join(lines)


def probe_time_stamps(trajectory_path: Path) -> tuple[int, float]:
    """Read the first (up to) two frames: (how many there are, time between them in ps or nan).

    The interval is nan for DCD files, which carry no time (mdtraj reports frame numbers), and for a
    single-frame file; otherwise `mdgen.timesteps.timestep_from_stamps` of the two stamps.
    """
    try:
        with mdtraj.open(str(trajectory_path)) as handle:
            first_frames = handle.read(n_frames=2)
    except Exception as error:  # mdtraj raises many types for corrupt files; keep its message
        raise PrepareError(f"{trajectory_path}: cannot read trajectory ({error})") from error
    num_frames = len(first_frames[0])
    if trajectory_path.suffix.lower() == ".dcd" or num_frames < 2:
        return num_frames, math.nan
    return num_frames, timestep_from_stamps(first_frames[1], trajectory_path)


def is_up_to_date(manifest: EntryManifest, sources: tuple[SourceFile, ...], options: PrepareOptions) -> bool:
    """True when re-preparing would write the same entry."""
    wanted_interval = manifest.source_interval_ps if options.interval_ps is None else options.interval_ps
    return (
        manifest.format_version == CACHE_FORMAT_VERSION
        and manifest.sources == sources
        and same_timestep(manifest.interval_ps, wanted_interval)
        and manifest.num_frames >= options.min_frames
        and not (
            manifest.timestep_from_config
            and options.timestep_ps is not None
            and not same_timestep(manifest.source_interval_ps, options.timestep_ps)
        )
    )


def prepare_entry(source: SourceEntry, cache_dir: str | Path, options: PrepareOptions) -> EntryOutcome:
    """Prepare one entry, or confirm that it is up to date; never raises for bad data."""
    try:
        return _prepare_entry(source, Path(cache_dir), options)
    except (UserError, OSError) as error:  # PrepareError, TrajectoryError, TimeStepError, CacheError
        return EntryOutcome(source.name, FAILED, problem=str(error))
    except Exception as error:  # a bug or an unforeseen input: still report it against this entry
        logger.exception("unexpected error while preparing %s", source.name)
        return EntryOutcome(source.name, FAILED, problem=f"unexpected {type(error).__name__}: {error}")


def _prepare_entry(source: SourceEntry, cache_dir: Path, options: PrepareOptions) -> EntryOutcome:
    for path in (source.topology_path, source.trajectory_path):
        if not path.is_file():
            raise PrepareError(f"missing file {path}")
    sources = (SourceFile.from_path(source.topology_path), SourceFile.from_path(source.trajectory_path))
    existing = cache_dir / source.name
    if existing.is_dir():
        try:
            manifest = read_manifest(existing)
        except CacheError:
            manifest = None  # unreadable: rebuild it
        if manifest is not None and is_up_to_date(manifest, sources, options):
            return EntryOutcome(source.name, UP_TO_DATE, num_frames=manifest.num_frames)

    num_first_frames, file_interval = probe_time_stamps(source.trajectory_path)
    if num_first_frames < 2:
        raise PrepareError(
            f"too few frames: {num_first_frames} in {source.trajectory_path} (min_frames={options.min_frames})"
        )
    timestep_from_config = math.isnan(file_interval)
    if timestep_from_config:
        if options.timestep_ps is None:
            raise PrepareError(f"{source.trajectory_path} has no time stamps; set timestep_ps")
        file_interval = float(options.timestep_ps)
    stride = (
        1
        if options.interval_ps is None
        else frames_per_interval(options.interval_ps, file_interval, source.trajectory_path, "interval_ps")
    )
    interval_ps = file_interval if options.interval_ps is None else float(options.interval_ps)

    trajectory = read_trajectory(source.topology_path, source.trajectory_path, stride=stride)
    if not timestep_from_config and not math.isnan(trajectory.timestep_ps):
        if not same_timestep(trajectory.timestep_ps, interval_ps):
            raise PrepareError(
                f"{source.trajectory_path}: frames are {trajectory.timestep_ps} ps apart after striding by "
                f"{stride}, expected {interval_ps} ps from the first two time stamps"
            )
    unknown = np.nonzero(trajectory.aatype == UNKNOWN_AATYPE)[0]
    if unknown.size:
        raise PrepareError(f"{source.topology_path}: unknown residue type at position(s) {unknown.tolist()}")
    if trajectory.num_frames < options.min_frames:
        raise PrepareError(
            f"too few frames: {trajectory.num_frames} at {interval_ps} ps in {source.trajectory_path} "
            f"(min_frames={options.min_frames})"
        )

    manifest = EntryManifest(
        name=source.name,
        sequence=trajectory.sequence,
        num_frames=trajectory.num_frames,
        num_residues=trajectory.num_residues,
        interval_ps=interval_ps,
        source_interval_ps=file_interval,
        timestep_from_config=timestep_from_config,
        sources=sources,
    )
    with EntryWriter(cache_dir, source.name, trajectory.num_frames, trajectory.num_residues) as writer:
        torsion_mask = _write_frame_features(
            trajectory.atom14, trajectory.aatype, writer, options.chunk_frames, source
        )
        writer.commit(
            manifest,
            aatype=trajectory.aatype,
            residue_index=trajectory.residue_index,
            torsion_mask=torsion_mask,
            atom14_frame0=trajectory.atom14[0],
            atom14_mask=trajectory.atom14_mask,
        )
    return EntryOutcome(source.name, PREPARED, num_frames=trajectory.num_frames)


def _write_frame_features(
    atom14: np.ndarray,  # (N, L, 14, 3) Å
    aatype: np.ndarray,  # (L,)
    writer: EntryWriter,
    chunk_frames: int,
    source: SourceEntry,
) -> np.ndarray:
    """Fill the writer's (N, L, ...) arrays chunk by chunk; returns frame 0's torsion mask (L, 7)."""
    aatype_tensor = torch.from_numpy(aatype)
    torsion_mask = None
    for start in range(0, atom14.shape[0], chunk_frames):
        stop = min(start + chunk_frames, atom14.shape[0])
        with torch.no_grad():
            features = frame_features(torch.from_numpy(atom14[start:stop]), aatype_tensor)
        for name in ("rots", "trans", "torsions"):
            values = getattr(features, name).numpy()
            finite = np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
            if not finite.all():
                bad_frame = start + int(np.nonzero(~finite)[0][0])
                raise PrepareError(
                    f"{source.trajectory_path}: non-finite {name} at frame {bad_frame} (degenerate backbone?)"
                )
            getattr(writer, name)[start:stop] = values
        if torsion_mask is None:
            torsion_mask = features.torsion_mask.numpy().astype(bool)  # (L, 7), the same for every frame
    return torsion_mask


def check_cache_location(sim_dir: str | Path, cache_dir: str | Path) -> None:
    """Refuse a cache directory that is, is inside, or contains the simulation directory, or that exists
    and holds anything but a cache: prepare would write among (and replace) the user's files."""
    sim_dir, cache_dir = Path(sim_dir), Path(cache_dir)
    sim_resolved, cache_resolved = sim_dir.resolve(), cache_dir.resolve()
    if cache_resolved == sim_resolved:
        raise PrepareError(
            f"out_dir {cache_dir} is the simulation directory sim_dir; give a separate out_dir"
        )
    if cache_resolved.is_relative_to(sim_resolved):
        raise PrepareError(
            f"out_dir {cache_dir} is inside the simulation directory {sim_dir}; give an out_dir outside it"
        )
    if sim_resolved.is_relative_to(cache_resolved):
        raise PrepareError(
            f"out_dir {cache_dir} contains the simulation directory {sim_dir}; give an out_dir outside it"
        )
    if cache_dir.exists() and not cache_dir.is_dir():
        raise PrepareError(f"out_dir {cache_dir} exists and is not a directory")
    if cache_dir.is_dir() and not is_cache_dir(cache_dir):
        try:
            contents = sorted(child.name for child in cache_dir.iterdir())
        except OSError as error:
            raise PrepareError(f"out_dir {cache_dir}: cannot list it ({error.strerror})") from error
        if contents:
            shown = ", ".join(contents[:5]) + (", ..." if len(contents) > 5 else "")
            raise PrepareError(
                f"out_dir {cache_dir} is not empty and is not a cache written by mdgen.prepare (it holds "
                f"{shown}); give a new or empty directory"
            )


def _create_cache_dir(cache_dir: Path) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PrepareError(f"out_dir {cache_dir}: cannot create it ({error.strerror or error})") from error


@contextmanager
def _exclusive_lock(cache_dir: Path):
    """Serialise concurrent prepare runs on one cache (e.g. one per node under DDP)."""
    _create_cache_dir(cache_dir)
    try:
        handle = open(cache_dir / PREPARE_LOCK_FILE, "w")
    except OSError as error:
        raise PrepareError(f"out_dir {cache_dir}: cannot write in it ({error.strerror or error})") from error
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _init_worker(parent_pid: int) -> None:
    die_with_parent(parent_pid)  # a killed prepare leaves no worker writing into the cache
    torch.set_num_threads(1)  # one process per core; torch's own threads would oversubscribe


def _prepare_entry_star(arguments: tuple) -> EntryOutcome:
    return prepare_entry(*arguments)


def prepare_simulations(
    sim_dir: str | Path,
    cache_dir: str | Path,
    *,
    interval_ps: float | None = None,
    names: Sequence[str] | None = None,
    layout: str = "auto",
    trajectory_suffix: str = "",
    num_workers: int = 1,
    min_frames: int = 2,
    timestep_ps: float | None = None,
    replicas: Sequence[int] = ATLAS_REPLICAS,
    chunk_frames: int = 2048,
    progress: bool = True,
) -> PrepareSummary:
    """Prepare every entry of ``sim_dir`` (or only ``names``) into ``cache_dir``.

    ``interval_ps``: output frame interval in ps (a whole multiple of the files' interval; None keeps
    it). ``timestep_ps``: source interval for files without time stamps. ``num_workers`` > 1 uses a
    process pool. Raises only for problems with the whole run (no such directory, unknown layout);
    per-entry problems are in the returned summary.
    """
    started = time.perf_counter()
    cache_dir = Path(cache_dir)
    if min_frames < 2:
        raise PrepareError(
            f"min_frames must be >= 2 (two frames define the frame interval), got {min_frames}"
        )
    if interval_ps is not None and not interval_ps > 0:
        raise PrepareError(f"interval_ps must be > 0 or null, got {interval_ps}")
    if chunk_frames < 1:
        raise PrepareError(f"chunk_frames must be >= 1, got {chunk_frames}")
    entries = discover_entries(
        sim_dir, layout=layout, names=names, trajectory_suffix=trajectory_suffix, replicas=replicas
    )
    check_cache_location(sim_dir, cache_dir)
    options = PrepareOptions(
        interval_ps=interval_ps, timestep_ps=timestep_ps, min_frames=min_frames, chunk_frames=chunk_frames
    )
    jobs = [(entry, cache_dir, options) for entry in entries]
    outcomes = []
    with _exclusive_lock(cache_dir):
        mark_cache_dir(cache_dir)
        remove_stale_temporaries(cache_dir)  # no other prepare runs on this cache while we hold the lock
        bar = tqdm(total=len(jobs), desc="prepare", unit="entry", disable=not progress)
        if num_workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                outcomes.append(_prepare_entry_star(job))
                bar.update()
        else:
            # Not fork: forking a process whose torch/OpenMP threads have run can deadlock. Not the fork
            # server either: its workers are its children, and it outlives a killed parent as long as
            # they live, so they could not die with the parent (mdgen.data.workers).
            context = multiprocessing.get_context("spawn")
            with context.Pool(
                min(num_workers, len(jobs)), initializer=_init_worker, initargs=(os.getpid(),)
            ) as pool:
                for outcome in pool.imap_unordered(_prepare_entry_star, jobs):
                    outcomes.append(outcome)
                    bar.update()
    bar.close()
    return PrepareSummary(
        cache_dir=str(cache_dir),
        outcomes=tuple(sorted(outcomes, key=lambda outcome: outcome.name)),
        wall_s=time.perf_counter() - started,
    )
