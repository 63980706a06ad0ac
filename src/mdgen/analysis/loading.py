"""Read trajectories for evaluation and put sample and reference on the same atoms and time axis.

Everything is read with mdtraj (`md.load(xtc, top=pdb)`), heavy atoms only. Time comes from each
trajectory's own XTC time stamps (`mdgen.timesteps.timestep_from_stamps`), so lags given in ps are
converted per trajectory (`mdgen.timesteps.frames_per_interval`).
Errors are `EvaluationInputError` with the offending file in the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mdtraj as md
import numpy as np

from mdgen.errors import UserError
from mdgen.timesteps import frames_per_interval, same_timestep, timestep_from_stamps
from mdgen.trajectory_files import rename_prochiral_atoms_to_iupac

# Atoms the reference may have and a generated structure may lack without it being a mismatch:
# atom14 decoders do not build the C-terminal second oxygen.
OPTIONAL_REFERENCE_ATOMS = frozenset({"OXT"})


class EvaluationInputError(UserError):
    """An input file is missing, unreadable, or inconsistent with its reference; the message names it."""


def file_in_manifest_dir(manifest: Path, entry: object, key: str) -> Path:
    """A file a JSON manifest names (`"topology": "AKIR.pdb"`), as a path relative to the manifest's folder.

    It must stay inside that folder: no absolute path, no `..`, no symlink leading out. A samples
    folder from elsewhere cannot make the evaluator read files outside it.
    """
    if not isinstance(entry, str) or not entry.strip():
        raise EvaluationInputError(f"{manifest}: {key} must be a file name, got {entry!r}")
    relative = Path(entry)
    folder = manifest.parent
    inside = not relative.is_absolute() and ".." not in relative.parts
    if inside:
        resolved, root = (folder / relative).resolve(), folder.resolve()
        inside = resolved == root or root in resolved.parents
    if not inside:
        raise EvaluationInputError(
            f"{manifest}: {key} {entry!r} points outside {folder}; refused (name a file in that folder)"
        )
    return relative


def load_trajectory(
    topology_path: Path, trajectory_path: Path | None = None, stride: int = 1
) -> md.Trajectory:
    """Heavy-atom trajectory from a PDB (+ XTC/DCD); raises `EvaluationInputError` naming the bad file."""
    for path in (topology_path, trajectory_path):
        if path is not None and not Path(path).is_file():
            raise EvaluationInputError(f"{path}: file not found")
    try:
        if trajectory_path is None:
            traj = md.load(str(topology_path))
        else:
            traj = md.load(str(trajectory_path), top=str(topology_path), stride=stride)
    except Exception as error:  # mdtraj raises many types (IOError, ValueError, RuntimeError)
        reason = _atom_count_mismatch(topology_path, trajectory_path) or " ".join(str(error).split())
        raise EvaluationInputError(
            f"{trajectory_path or topology_path}: cannot be read ({reason})"
        ) from error
    heavy = [atom.index for atom in traj.topology.atoms if atom.element.symbol != "H"]
    if len(heavy) != traj.n_atoms:
        traj = traj.atom_slice(heavy)
    if traj.n_frames == 0:
        raise EvaluationInputError(f"{trajectory_path or topology_path}: no frames")
    # Reference MD may name Leu/Val methyls the other way round from mdgen's outputs; without this,
    # Leu chi2 of sample and reference would differ by ~120 degrees.
    return rename_prochiral_atoms_to_iupac(traj)


def _atom_count_mismatch(topology_path: Path, trajectory_path: Path | None) -> str | None:
    """The reason "N atoms per frame, but TOPOLOGY has M" when both counts can be read and differ."""
    if trajectory_path is None:
        return None
    try:
        topology_atoms = md.load_topology(str(topology_path)).n_atoms
        with md.open(str(trajectory_path)) as handle:  # XTC/DCD: the first frame only
            trajectory_atoms = handle.read(n_frames=1)[0].shape[1]
    except Exception:  # not countable this way: keep mdtraj's own message
        return None
    if trajectory_atoms == topology_atoms:
        return None
    return f"{trajectory_atoms} atoms per frame, but {topology_path} has {topology_atoms}"


def _atom_keys(topology: md.Topology) -> list[tuple[int, str, str]]:
    return [(atom.residue.index, atom.residue.name, atom.name) for atom in topology.atoms]


def common_atom_indices(
    reference: md.Topology, sample: md.Topology, sample_source: Path | str
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into reference, into sample) of the atoms both have, in reference order.

    A mismatch (different sequence, an atom only the sample has, or a reference atom missing from the
    sample other than `OPTIONAL_REFERENCE_ATOMS`) raises `EvaluationInputError` naming `sample_source`.
    """
    ref_residues = [residue.name for residue in reference.residues]
    sample_residues = [residue.name for residue in sample.residues]
    if ref_residues != sample_residues:
        raise EvaluationInputError(
            f"{sample_source}: residues {'-'.join(sample_residues)} differ from the reference "
            f"{'-'.join(ref_residues)}"
        )
    ref_index = {key: i for i, key in enumerate(_atom_keys(reference))}
    sample_index = {key: i for i, key in enumerate(_atom_keys(sample))}
    extra = sorted(set(sample_index) - set(ref_index))
    missing = [key for key in ref_index if key not in sample_index and key[2] not in OPTIONAL_REFERENCE_ATOMS]
    if extra or missing:
        describe = lambda keys: ", ".join(f"{name}{res + 1}:{atom}" for res, name, atom in keys[:6])  # noqa: E731
        raise EvaluationInputError(
            f"{sample_source}: atoms do not match the reference ({sample.n_atoms} vs {reference.n_atoms} atoms;"
            f" missing: [{describe(missing)}], unexpected: [{describe(extra)}])"
        )
    common = [key for key in ref_index if key in sample_index]
    return np.asarray([ref_index[k] for k in common]), np.asarray([sample_index[k] for k in common])


def _restrict(traj: md.Trajectory, atoms: np.ndarray, topology: md.Topology) -> md.Trajectory:
    """traj's atoms `atoms` (in that order) on `topology`."""
    return md.Trajectory(xyz=traj.xyz[:, atoms], topology=topology, time=traj.time)


def match_atoms(
    reference: md.Trajectory, sample: md.Trajectory, sample_source: Path | str
) -> tuple[md.Trajectory, md.Trajectory]:
    """Both trajectories restricted to their common atoms, in reference order, sharing one topology."""
    ref_atoms, sample_atoms = common_atom_indices(reference.topology, sample.topology, sample_source)
    topology = reference.topology.subset(ref_atoms)
    return _restrict(reference, ref_atoms, topology), _restrict(sample, sample_atoms, topology)


@dataclass(frozen=True)
class TrajectoryGroup:
    """Trajectories of one system at one timestep (rollouts, or a single MD run), pooled in the metrics."""

    trajectories: tuple[md.Trajectory, ...]
    timestep_ps: float
    source: str  # what to name in messages and reports

    @classmethod
    def from_trajectories(cls, trajectories: Sequence[md.Trajectory], source: str) -> TrajectoryGroup:
        if not trajectories:
            raise EvaluationInputError(f"{source}: no trajectories")
        steps = [timestep_from_stamps(traj.time, source) for traj in trajectories]
        if not all(same_timestep(step, steps[0]) for step in steps):
            raise EvaluationInputError(
                f"{source}: trajectories have different timesteps {sorted(set(steps))} ps"
            )
        return cls(tuple(trajectories), steps[0], source)

    @property
    def n_frames(self) -> int:
        return sum(traj.n_frames for traj in self.trajectories)

    @property
    def duration_ps(self) -> float:
        return self.n_frames * self.timestep_ps

    def truncated(self, duration_ps: float) -> TrajectoryGroup:
        """The first `duration_ps` of simulated time, taking the trajectories in order."""
        remaining = frames_per_interval(duration_ps, self.timestep_ps, self.source, "truncation")
        if remaining > self.n_frames:
            raise EvaluationInputError(f"{self.source}: shorter than the requested {duration_ps} ps")
        kept = []
        for traj in self.trajectories:
            if remaining <= 0:
                break
            kept.append(traj[:remaining])
            remaining -= kept[-1].n_frames
        return TrajectoryGroup(tuple(kept), self.timestep_ps, f"{self.source}[:{duration_ps:g} ps]")


def load_group(topology_path: Path, trajectory_paths: Sequence[Path], source: str) -> TrajectoryGroup:
    """Trajectories sharing one topology file, as one group."""
    return TrajectoryGroup.from_trajectories(
        [load_trajectory(topology_path, p) for p in trajectory_paths], source
    )


def match_groups(
    reference: TrajectoryGroup, sample: TrajectoryGroup
) -> tuple[TrajectoryGroup, TrajectoryGroup]:
    """Both groups on the atoms they share (reference order, one topology); errors name the sample."""
    ref_atoms, sample_atoms = common_atom_indices(
        reference.trajectories[0].topology, sample.trajectories[0].topology, sample.source
    )
    topology = reference.trajectories[0].topology.subset(ref_atoms)
    restrict = lambda group, atoms: TrajectoryGroup(  # noqa: E731
        tuple(_restrict(t, atoms, topology) for t in group.trajectories), group.timestep_ps, group.source
    )
    return restrict(reference, ref_atoms), restrict(sample, sample_atoms)
