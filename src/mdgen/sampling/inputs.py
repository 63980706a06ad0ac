"""Where generation starts from: a frame of a PDB/XTC, the test split of a prepared cache, or a sequence.

Everything here checks its inputs before any expensive work and raises `SamplingInputError` (a
`ValueError`) naming the file or value and the problem. Reading a trajectory raises
`mdgen.trajectory_files.TrajectoryError` (also a `ValueError`) for missing or inconsistent files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mdtraj
import numpy as np

from mdgen.constants import RESTYPES, aatype_from_sequence
from mdgen.errors import UserError
from mdgen.trajectory_files import Trajectory, read_trajectory


class SamplingInputError(UserError):
    """An input of a sampling run is missing, malformed, or does not fit the checkpoint."""


@dataclass(frozen=True)
class StartStructure:
    """One frame that a generated trajectory starts from."""

    name: str  # output stem
    atom14: np.ndarray  # (L, 14, 3) float32 Å
    aatype: np.ndarray  # (L,) int64, RESTYPES order
    source: str  # where the coordinates came from (file, cache entry, or "built from sequence")

    @property
    def sequence(self) -> str:
        return "".join(RESTYPES[a] for a in self.aatype)


# ---- checks ------------------------------------------------------------------------------------------


def check_sequences(sequences: Sequence[str]) -> list[str]:
    """Upper-cased sequences; raises naming the first one with a non-standard letter or a duplicate."""
    checked = []
    for sequence in sequences:
        sequence = str(sequence).strip().upper()
        try:
            aatype_from_sequence(sequence)
        except ValueError as error:
            raise SamplingInputError(f"sequences: {error}; allowed letters: {RESTYPES}") from error
        if not sequence:
            raise SamplingInputError("sequences: an empty sequence was given")
        if sequence in checked:
            raise SamplingInputError(f"sequences: {sequence} is listed twice (outputs are named by sequence)")
        checked.append(sequence)
    return checked


def check_file(path: str | Path | None, option: str) -> Path:
    if path is None:
        raise SamplingInputError(f"{option} is required")
    path = Path(path)
    if not path.is_file():
        raise SamplingInputError(f"{option}={path}: file not found")
    return path


def check_frame_index(frame: int, num_frames: int, option: str, source: str) -> int:
    """A Python-style frame index (negative from the end) as a non-negative index into `source`."""
    index = frame + num_frames if frame < 0 else frame
    if not 0 <= index < num_frames:
        raise SamplingInputError(f"{option}={frame} is out of range: {source} has {num_frames} frames")
    return index


def check_sequence_matches(trajectory: Trajectory, sequence: str | None) -> None:
    """When the user also gave a sequence, the trajectory's topology must hold exactly that sequence."""
    if sequence is not None and trajectory.sequence != sequence:
        raise SamplingInputError(
            f"{trajectory.source}: topology sequence {trajectory.sequence} does not match the given "
            f"sequence {sequence}"
        )


# ---- sources -----------------------------------------------------------------------------------------


def read_input_trajectory(pdb: str | Path, xtc: str | Path | None = None, stride: int = 1) -> Trajectory:
    """Topology (+ trajectory) as atom14; missing files and topology/trajectory mismatches raise early."""
    check_file(pdb, "input_pdb")
    if xtc is not None:
        check_file(xtc, "input_xtc")
    return read_trajectory(pdb, xtc, stride=stride)


def structure_from_frame(trajectory: Trajectory, frame: int, name: str) -> StartStructure:
    index = check_frame_index(frame, trajectory.num_frames, "input_frame", trajectory.source)
    return StartStructure(
        name=name,
        atom14=trajectory.atom14[index],
        aatype=trajectory.aatype,
        source=f"{trajectory.source} frame {index}",
    )


def structures_from_split(cache_dir: str | Path, split_csv: str | Path) -> list[StartStructure]:
    """Frame 0 of every entry of a split CSV, from a prepared cache (ATLAS chains: replica 1)."""
    from mdgen.data.cache import list_cached_entries, open_entry
    from mdgen.data.splits import SplitError, read_split

    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        raise SamplingInputError(
            f"cache_dir={cache_dir}: directory not found (run `python -m mdgen.prepare`)"
        )
    try:
        rows = read_split(split_csv)
    except SplitError as error:
        raise SamplingInputError(f"split: {error}") from error
    available = list_cached_entries(cache_dir)
    structures = []
    for row in rows:
        entry_name = row.name if row.name in available else f"{row.name}_R1"
        if entry_name not in available:
            raise SamplingInputError(
                f"split {split_csv}: {row.name} has no entry in cache {cache_dir} (looked for {row.name} "
                f"and {row.name}_R1)"
            )
        entry = open_entry(cache_dir, entry_name)
        if entry.manifest.sequence != row.seqres:
            raise SamplingInputError(
                f"split {split_csv}: {row.name} has seqres {row.seqres}, but cache entry {entry_name} holds "
                f"{entry.manifest.sequence}"
            )
        structures.append(
            StartStructure(
                name=row.name,
                atom14=np.asarray(entry.atom14_frame0, dtype=np.float32),
                aatype=np.asarray(entry.aatype, dtype=np.int64),
                source=f"cache {cache_dir} entry {entry_name} frame 0",
            )
        )
    return structures


def structure_from_sequence(sequence: str, minimization_max_iterations: int = 1000) -> StartStructure:
    """Build the peptide (`mdgen.md.simulation`'s builder and force field) and energy-minimise it.

    The minimisation runs on OpenMM's Reference platform, which is deterministic, so the same sequence
    always gives the same start structure.
    """
    import openmm
    from openmm import unit

    from mdgen.md.simulation import SimulationProtocol, create_system, heavy_atom_indices

    (sequence,) = check_sequences([sequence])
    topology, positions, system = create_system(SimulationProtocol(), sequence)
    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=minimization_max_iterations)
    positions_nm = (
        context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    )
    heavy = heavy_atom_indices(topology)
    heavy_topology = mdtraj.Topology.from_openmm(topology).subset(heavy)
    with tempfile.TemporaryDirectory() as tmp:
        pdb = Path(tmp) / f"{sequence}.pdb"
        mdtraj.Trajectory(positions_nm[heavy][None].astype(np.float32), heavy_topology).save_pdb(str(pdb))
        built = read_trajectory(pdb)
    if built.sequence != sequence:
        raise RuntimeError(f"built peptide {built.sequence} does not match the requested {sequence}")
    return StartStructure(
        name=sequence, atom14=built.atom14[0], aatype=built.aatype, source="built from sequence, minimised"
    )
