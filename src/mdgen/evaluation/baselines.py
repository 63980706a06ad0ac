"""Reference points a model must beat, built from MD frames (no model involved).

- `repeat_first_frame`: the start frame held for the whole trajectory (the forward 'trivial baseline').
- `hold_coarse_frames`, `interpolate_coarse_frames`: naive upsamplers of a coarse trajectory.
- `randomise_backbone_torsions`, `shuffle_frames`: negative controls (wrong ensemble / no dynamics).
"""

from __future__ import annotations

import mdtraj as md
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mdgen.analysis.features import torsion_definitions


def _with_time(xyz: np.ndarray, topology: md.Topology, timestep_ps: float) -> md.Trajectory:
    time = np.arange(1, len(xyz) + 1, dtype=np.float64) * timestep_ps
    return md.Trajectory(xyz=xyz.astype(np.float32), topology=topology, time=time)


def repeat_first_frame(traj: md.Trajectory, n_frames: int, timestep_ps: float) -> md.Trajectory:
    """Frame 0 of `traj` repeated `n_frames` times at `timestep_ps`."""
    return _with_time(np.repeat(traj.xyz[:1], n_frames, axis=0), traj.topology, timestep_ps)


def hold_coarse_frames(coarse: md.Trajectory, factor: int, fine_timestep_ps: float) -> md.Trajectory:
    """Each coarse frame repeated `factor` times: a fine trajectory with no sub-interval motion."""
    return _with_time(np.repeat(coarse.xyz, factor, axis=0), coarse.topology, fine_timestep_ps)


def interpolate_coarse_frames(coarse: md.Trajectory, factor: int, fine_timestep_ps: float) -> md.Trajectory:
    """Straight-line Cartesian interpolation between consecutive coarse frames ((T-1) * factor + 1 frames)."""
    weights = (np.arange(factor) / factor)[None, :, None, None]  # (1, factor, 1, 1)
    start, end = coarse.xyz[:-1, None], coarse.xyz[1:, None]  # (T-1, 1, N, 3) nm
    xyz = ((1.0 - weights) * start + weights * end).reshape(-1, coarse.n_atoms, 3)
    return _with_time(np.concatenate([xyz, coarse.xyz[-1:]]), coarse.topology, fine_timestep_ps)


def shuffle_frames(traj: md.Trajectory, rng: np.random.Generator) -> md.Trajectory:
    """Frames in random order: the same ensemble with its dynamics destroyed."""
    return md.Trajectory(xyz=traj.xyz[rng.permutation(traj.n_frames)], topology=traj.topology, time=traj.time)


def _downstream_atoms(topology: md.Topology, axis_from: int, axis_to: int) -> np.ndarray:
    """Atoms on the `axis_to` side of the bond axis_from-axis_to (the bond must not be in a ring)."""
    bonds = np.asarray(
        [(a.index, b.index) for a, b in topology.bonds if {a.index, b.index} != {axis_from, axis_to}]
    )
    n = topology.n_atoms
    graph = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    if component[axis_from] == component[axis_to]:
        raise ValueError(f"bond {axis_from}-{axis_to} is in a ring; cannot rotate about it")
    return np.flatnonzero(component == component[axis_to])


def set_backbone_torsions(traj: md.Trajectory, angles: np.ndarray) -> md.Trajectory:
    """Frames whose phi/psi (in `torsion_definitions` order) are set to `angles` (T, n_backbone) rad.

    Each torsion is set by rigidly rotating the chain beyond its central bond, so bond lengths and
    angles are untouched (clashes may appear, as they should for impossible torsions). A NaN column
    leaves that torsion as it is (needed for proline phi, whose bond is in a ring).
    """
    definitions = torsion_definitions(traj.topology)
    backbone = definitions.atom_indices[definitions.is_backbone]
    if angles.shape != (traj.n_frames, len(backbone)):
        raise ValueError(
            f"angles {angles.shape} do not match ({traj.n_frames}, {len(backbone)}) backbone torsions"
        )
    xyz = traj.xyz.astype(np.float64).copy()  # (T, N, 3) nm
    for quad, target in zip(backbone, angles.T):
        if np.all(np.isnan(target)):
            continue
        moving = _downstream_atoms(traj.topology, int(quad[1]), int(quad[2]))
        current = md.compute_dihedrals(md.Trajectory(xyz, traj.topology), quad[None], periodic=False)[:, 0]
        origin = xyz[:, quad[2]]  # (T, 3)
        axis = origin - xyz[:, quad[1]]
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        xyz[:, moving] = _rotate(xyz[:, moving] - origin[:, None], axis, target - current) + origin[:, None]
    return md.Trajectory(xyz=xyz.astype(np.float32), topology=traj.topology, time=traj.time)


def randomise_backbone_torsions(traj: md.Trajectory, rng: np.random.Generator) -> md.Trajectory:
    """Every rotatable phi and psi of every frame set to an independent uniform angle (proline phi kept)."""
    definitions = torsion_definitions(traj.topology)
    backbone = definitions.atom_indices[definitions.is_backbone]
    angles = rng.uniform(-np.pi, np.pi, (traj.n_frames, len(backbone)))
    for k, quad in enumerate(backbone):
        if _in_ring(traj.topology, int(quad[1]), int(quad[2])):
            angles[:, k] = np.nan
    return set_backbone_torsions(traj, angles)


def _in_ring(topology: md.Topology, a: int, b: int) -> bool:
    try:
        _downstream_atoms(topology, a, b)
    except ValueError:
        return True
    return False


def _rotate(points: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues rotation of points (T, M, 3) about unit axes (T, 3) by angles (T,) rad."""
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    axis = axis[:, None, :]
    dot = (points * axis).sum(-1, keepdims=True)
    return points * cos + np.cross(axis, points) * sin + axis * dot * (1.0 - cos)
