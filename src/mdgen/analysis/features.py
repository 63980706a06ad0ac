"""Torsion features of a trajectory: backbone phi/psi and side-chain chi1..chi5, with explicit labels.

Order (chosen and fixed here, unlike the original's zipped phi/psi lists): residue by residue along the
chain, within a residue phi, psi, chi1, ..., chi5 where mdtraj defines them. Labels read
`phi:LYS2` (torsion type, residue name, 1-based position). An uncapped chain has no phi on its first
residue and no psi on its last, so residue-paired (phi_i, psi_i) exist for the inner residues only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mdtraj as md
import numpy as np

_TORSION_FUNCTIONS = {
    "phi": md.compute_phi,
    "psi": md.compute_psi,
    "chi1": md.compute_chi1,
    "chi2": md.compute_chi2,
    "chi3": md.compute_chi3,
    "chi4": md.compute_chi4,
    "chi5": md.compute_chi5,
}
BACKBONE_TORSIONS = ("phi", "psi")
_TYPE_ORDER = {name: i for i, name in enumerate(_TORSION_FUNCTIONS)}


@dataclass(frozen=True)
class TorsionDefinitions:
    """Which torsions a topology has: atom quadruples and labels, in the documented order."""

    atom_indices: np.ndarray  # (F, 4) int
    labels: tuple[str, ...]  # (F,) e.g. "psi:ALA1"
    is_backbone: np.ndarray  # (F,) bool
    residue_pairs: tuple[tuple[int, int], ...]  # (phi column, psi column) of each inner residue

    @property
    def pair_labels(self) -> tuple[str, ...]:
        return tuple(self.labels[phi].split(":")[1] for phi, _ in self.residue_pairs)


def torsion_definitions(topology: md.Topology) -> TorsionDefinitions:
    """Enumerate the torsions of a topology (one frame is enough; mdtraj needs a trajectory)."""
    probe = md.Trajectory(np.zeros((1, topology.n_atoms, 3), np.float32), topology)
    entries = []  # (residue index, type order, quadruple, label)
    for kind, compute in _TORSION_FUNCTIONS.items():
        quadruples, _ = compute(probe)
        for quad in quadruples:
            # atom 1 of every quadruple belongs to the residue that owns the torsion (N for phi, CA/CB... else)
            residue = topology.atom(int(quad[1])).residue
            entries.append(
                (residue.index, _TYPE_ORDER[kind], quad, f"{kind}:{residue.name}{residue.index + 1}")
            )
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    labels = tuple(entry[3] for entry in entries)
    column = {label: i for i, label in enumerate(labels)}
    pairs = []
    for residue in topology.residues:
        tag = f"{residue.name}{residue.index + 1}"
        if f"phi:{tag}" in column and f"psi:{tag}" in column:
            pairs.append((column[f"phi:{tag}"], column[f"psi:{tag}"]))
    return TorsionDefinitions(
        atom_indices=np.asarray([entry[2] for entry in entries], dtype=np.int64).reshape(-1, 4),
        labels=labels,
        is_backbone=np.asarray([label.split(":")[0] in BACKBONE_TORSIONS for label in labels]),
        residue_pairs=tuple(pairs),
    )


def torsion_angles(traj: md.Trajectory, definitions: TorsionDefinitions) -> np.ndarray:
    """Torsions (T, F) in radians in [-pi, pi]."""
    return md.compute_dihedrals(traj, definitions.atom_indices, periodic=False).astype(np.float64)


def pooled_torsion_angles(
    trajectories: Sequence[md.Trajectory], definitions: TorsionDefinitions
) -> np.ndarray:
    """Torsions of several trajectories stacked along time (T_total, F) rad, for histograms."""
    return np.concatenate([torsion_angles(traj, definitions) for traj in trajectories], axis=0)


def cos_sin(angles: np.ndarray) -> np.ndarray:
    """(T, F) rad -> (T, 2F) features [cos of all, sin of all], the TICA input."""
    return np.concatenate([np.cos(angles), np.sin(angles)], axis=-1)
