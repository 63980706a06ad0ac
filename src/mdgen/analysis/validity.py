"""Physical validity of frames (METHOD 12) and deviation of covalent geometry from ideal values.

A frame is valid when it has
(a) no chain break: every consecutive CA(i)-CA(i+1) in [3.6, 4.0] A, or [2.7, 4.0] A when residue
    i+1 is a proline (cis peptide bond allowed), and every C(i)-N(i+1) in [1.2, 1.5] A;
(b) no clash: no heavy-atom pair more than three covalent bonds apart overlaps by 0.4 A or more,
    overlap = r1 + r2 - distance with Bondi radii C 1.70, N 1.55, O 1.52, S 1.80 A; pairs of two
    N/O atoms (possible hydrogen bond) only clash below 2.5 A.
Bond lengths and angles are reported separately as mean absolute deviations from ideal values
measured on the reference MD (its mean per bond / angle), so they are never part of the valid flag.
The bond graph comes from the topology (mdtraj's residue templates), never from the coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import mdtraj as md
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path

from mdgen.analysis.loading import EvaluationInputError

BONDI_RADII_A = {"C": 1.70, "N": 1.55, "O": 1.52, "S": 1.80}
CLASH_OVERLAP_A = 0.4
HBOND_MIN_DISTANCE_A = 2.5
CA_CA_RANGE_A = (3.6, 4.0)
CA_CA_BEFORE_PROLINE_RANGE_A = (2.7, 4.0)
C_N_RANGE_A = (1.2, 1.5)
MIN_BONDS_APART = 4  # "more than three covalent bonds apart"
_NM_TO_A = 10.0
_MAX_DISTANCES_PER_CHUNK = 20_000_000  # frames x pairs held in memory at once


@dataclass(frozen=True)
class ValidityScores:
    n_frames: int
    valid_fraction: float  # no chain break and no clash
    ca_break_rate: float  # fraction of frames with a CA-CA distance out of range
    cn_break_rate: float  # fraction of frames with a C-N peptide bond out of range
    clash_rate: float  # fraction of frames with at least one clash
    bond_length_deviation_A: float  # mean |length - ideal| over bonds and frames
    bond_angle_deviation_deg: float  # mean |angle - ideal| over angles and frames


@dataclass(frozen=True)
class CovalentGeometry:
    """Bonds and bond angles of a topology, with ideal values (measured on a reference)."""

    bonds: np.ndarray  # (B, 2) atom indices
    angles: np.ndarray  # (A, 3) atom indices, centre atom in the middle
    ideal_lengths_A: np.ndarray  # (B,)
    ideal_angles_deg: np.ndarray  # (A,)


def _bond_array(topology: md.Topology) -> np.ndarray:
    bonds = np.asarray([(a.index, b.index) for a, b in topology.bonds], dtype=np.int64).reshape(-1, 2)
    if len(bonds) == 0:
        raise EvaluationInputError("topology has no bonds; validity needs standard residue templates")
    return bonds


def _angle_array(bonds: np.ndarray, n_atoms: int) -> np.ndarray:
    neighbours = [[] for _ in range(n_atoms)]
    for a, b in bonds:
        neighbours[a].append(b)
        neighbours[b].append(a)
    triples = [
        (a, centre, b)
        for centre in range(n_atoms)
        for i, a in enumerate(neighbours[centre])
        for b in neighbours[centre][i + 1 :]
    ]
    return np.asarray(triples, dtype=np.int64).reshape(-1, 3)


def measure_covalent_geometry(reference: md.Trajectory) -> CovalentGeometry:
    """Ideal bond lengths and angles = their means over the reference frames."""
    bonds = _bond_array(reference.topology)
    angles = _angle_array(bonds, reference.n_atoms)
    lengths = md.compute_distances(reference, bonds, periodic=False) * _NM_TO_A
    values = (
        np.degrees(md.compute_angles(reference, angles, periodic=False)) if len(angles) else np.zeros((1, 0))
    )
    return CovalentGeometry(bonds, angles, lengths.mean(0), values.mean(0))


def _clash_candidates(topology: md.Topology, bonds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Atom pairs (P, 2) more than three bonds apart and their clash distance thresholds (P,) in A."""
    n = topology.n_atoms
    graph = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n, n))
    hops = shortest_path(graph, directed=False, unweighted=True)
    i, j = np.triu_indices(n, k=1)
    far = hops[i, j] >= MIN_BONDS_APART  # inf (different molecules) counts as far
    pairs = np.stack([i[far], j[far]], axis=1)
    elements = []
    for atom in topology.atoms:
        symbol = atom.element.symbol
        if symbol not in BONDI_RADII_A:
            raise EvaluationInputError(f"no Bondi radius for element {symbol!r} (atom {atom})")
        elements.append(symbol)
    elements = np.asarray(elements)
    radii = np.asarray([BONDI_RADII_A[e] for e in elements])
    thresholds = radii[pairs[:, 0]] + radii[pairs[:, 1]] - CLASH_OVERLAP_A
    polar = np.isin(elements[pairs[:, 0]], ["N", "O"]) & np.isin(elements[pairs[:, 1]], ["N", "O"])
    thresholds = np.where(polar, HBOND_MIN_DISTANCE_A, thresholds)
    return pairs, thresholds


def _chain_links(topology: md.Topology) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CA(i)-CA(i+1) pairs, C(i)-N(i+1) pairs and whether residue i+1 is a proline."""
    ca_pairs, cn_pairs, before_proline = [], [], []
    for chain in topology.chains:
        residues = list(chain.residues)
        for current, following in zip(residues[:-1], residues[1:]):
            atoms_now = {atom.name: atom.index for atom in current.atoms}
            atoms_next = {atom.name: atom.index for atom in following.atoms}
            missing = [n for n in ("CA", "C") if n not in atoms_now] + [
                n for n in ("CA", "N") if n not in atoms_next
            ]
            if missing:
                raise EvaluationInputError(f"residues {current}/{following} lack backbone atoms {missing}")
            ca_pairs.append((atoms_now["CA"], atoms_next["CA"]))
            cn_pairs.append((atoms_now["C"], atoms_next["N"]))
            before_proline.append(following.name == "PRO")
    as_pairs = lambda pairs: np.asarray(pairs, dtype=np.int64).reshape(-1, 2)  # noqa: E731
    return as_pairs(ca_pairs), as_pairs(cn_pairs), np.asarray(before_proline, dtype=bool)


def frame_failures(traj: md.Trajectory) -> dict[str, np.ndarray]:
    """Per-frame failure flags (T,) bool: 'ca_break', 'cn_break', 'clash'."""
    ca_pairs, cn_pairs, before_proline = _chain_links(traj.topology)
    pairs, thresholds = _clash_candidates(traj.topology, _bond_array(traj.topology))
    ca = (
        md.compute_distances(traj, ca_pairs, periodic=False) * _NM_TO_A
        if len(ca_pairs)
        else np.zeros((traj.n_frames, 0))
    )
    cn = (
        md.compute_distances(traj, cn_pairs, periodic=False) * _NM_TO_A
        if len(cn_pairs)
        else np.zeros((traj.n_frames, 0))
    )
    ca_low = np.where(before_proline, CA_CA_BEFORE_PROLINE_RANGE_A[0], CA_CA_RANGE_A[0])
    clash = np.zeros(traj.n_frames, dtype=bool)
    chunk = max(1, _MAX_DISTANCES_PER_CHUNK // max(len(pairs), 1))
    for start in range(0, traj.n_frames, chunk):
        if len(pairs):
            distances = md.compute_distances(traj[start : start + chunk], pairs, periodic=False) * _NM_TO_A
            clash[start : start + chunk] = np.any(distances < thresholds[None], axis=1)
    return {
        "ca_break": np.any((ca < ca_low[None]) | (ca > CA_CA_RANGE_A[1]), axis=1),
        "cn_break": np.any((cn < C_N_RANGE_A[0]) | (cn > C_N_RANGE_A[1]), axis=1),
        "clash": clash,
    }


def validity_scores(traj: md.Trajectory, geometry: CovalentGeometry) -> ValidityScores:
    """Validity of every frame of `traj`, whose topology must be the one `geometry` was measured on."""
    failures = frame_failures(traj)
    lengths = md.compute_distances(traj, geometry.bonds, periodic=False) * _NM_TO_A
    if len(geometry.angles):
        angles = np.degrees(md.compute_angles(traj, geometry.angles, periodic=False))
        angle_deviation = float(np.abs(angles - geometry.ideal_angles_deg).mean())
    else:
        angle_deviation = float("nan")
    invalid = failures["ca_break"] | failures["cn_break"] | failures["clash"]
    return ValidityScores(
        n_frames=traj.n_frames,
        valid_fraction=float(1.0 - invalid.mean()),
        ca_break_rate=float(failures["ca_break"].mean()),
        cn_break_rate=float(failures["cn_break"].mean()),
        clash_rate=float(failures["clash"].mean()),
        bond_length_deviation_A=float(np.abs(lengths - geometry.ideal_lengths_A).mean()),
        bond_angle_deviation_deg=angle_deviation,
    )
