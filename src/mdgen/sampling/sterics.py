"""Steric clash removal for the chain decoder: small torsion changes that clear METHOD 12 overlaps.

An ideal-geometry chain built from MD-like torsions still overlaps atoms now and then: bond angles are
fixed at ideal values, so contacts that MD keeps at van der Waals distance by bending angles come out
0.1-0.5 Å too close (decoding real MD frames this way leaves 35-40 % of them with a METHOD 12 clash).
For every frame that has a clash, `remove_clashes` moves its free torsions (φ, ψ, χ1-4; ω stays near
planar) by gradient steps on a repulsion-only penalty until every pair is `margin_A` clear of its
limit, then stops (the gradient in torsion space is computed directly from the atom forces,
`torsion_gradient`, not by back-propagating through the chain builder: the same numbers, about half the cost); the chain stays ideal because it is rebuilt from the torsions. Frames without a
clash are returned unchanged, and a frame that is not cleared within `max_steps` is kept as far as it
got (counted, never dropped).

Pairs and limits are METHOD 12's (mdgen.analysis.validity): heavy atoms more than three covalent bonds
apart, which overlap when closer than r1 + r2 - 0.4 Å (Bondi radii), N/O pairs only below 2.5 Å.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import mdtraj as md
import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path

from mdgen import constants as rc
from mdgen.analysis.validity import BONDI_RADII_A, CLASH_OVERLAP_A, HBOND_MIN_DISTANCE_A, MIN_BONDS_APART
from mdgen.geometry.backbone import chain_atom14
from mdgen.geometry.tables import residue_table

_N, _CA, _C, _O = 0, 1, 2, 3  # atom14 slots of the backbone
_PHI, _PSI, _CHI1 = 1, 2, 3  # torsion indices (ω = 0)

MARGIN_A = 0.05  # clearance beyond the clash limit that a refined pair is pushed to
# Frames with a pair closer than limit + this are refined: XTC stores 0.01 Å, so a pair that clears its
# limit by less could read as a clash from the written file.
STORAGE_TOLERANCE_A = 0.02
# Step budget (experiments/quality/decoder.md): decoded MD needs a few steps (100 % valid, ~0.7 ms/frame
# CPU, changed torsions move 1° on average); a weak model's frames need more (40 steps clear 88 % of the frames
# of a 435-step pilot model, 20 steps 59 %); frames stop as soon as they are clear.
MAX_STEPS = 40
STEP_RAD = 0.15  # largest torsion change of the first step (8.6°), 5 % less each further step


@dataclass(frozen=True)
class StericPairs:
    """Atom pairs of one sequence that may clash, as flat atom14 indices (residue * 14 + slot)."""

    first: torch.Tensor  # (P,) int64
    second: torch.Tensor  # (P,) int64
    min_distance_A: torch.Tensor  # (P,) float, closer than this is a clash


@functools.lru_cache(maxsize=64)
def _steric_pairs_numpy(aatype: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    topology = md.Topology()
    chain = topology.add_chain()
    flat_index = []
    for position, a in enumerate(aatype):
        resname = rc.RESNAMES3[a]
        residue = topology.add_residue(resname, chain, resSeq=position + 1)
        for slot, name in enumerate(rc.ATOM14_NAMES[resname]):
            if name:
                topology.add_atom(name, md.element.get_by_symbol(name[0]), residue)
                flat_index.append(position * 14 + slot)
    topology.create_standard_bonds()
    bonds = np.array([(a.index, b.index) for a, b in topology.bonds], dtype=np.int64).reshape(-1, 2)
    n = topology.n_atoms
    graph = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n, n))
    hops = shortest_path(graph, directed=False, unweighted=True)
    i, j = np.triu_indices(n, k=1)
    far = hops[i, j] >= MIN_BONDS_APART
    i, j = i[far], j[far]
    elements = np.array([atom.element.symbol for atom in topology.atoms])
    radii = np.array([BONDI_RADII_A[e] for e in elements])
    limit = radii[i] + radii[j] - CLASH_OVERLAP_A
    polar = np.isin(elements[i], ["N", "O"]) & np.isin(elements[j], ["N", "O"])
    limit = np.where(polar, HBOND_MIN_DISTANCE_A, limit)
    flat_index = np.array(flat_index, dtype=np.int64)
    return flat_index[i], flat_index[j], limit


def steric_pairs(aatype, device: torch.device | None = None) -> StericPairs:
    """METHOD 12 clash candidates of the sequence aatype (L,) (cached per sequence)."""
    first, second, limit = _steric_pairs_numpy(tuple(int(a) for a in np.asarray(aatype)))
    return StericPairs(
        torch.as_tensor(first, device=device),
        torch.as_tensor(second, device=device),
        torch.as_tensor(limit, dtype=torch.float32, device=device),
    )


def _pair_distances(atom14: torch.Tensor, pairs: StericPairs) -> torch.Tensor:
    """atom14 (N, L, 14, 3) -> (N, P) Å."""
    flat = atom14.flatten(-3, -2)
    return (flat[:, pairs.first] - flat[:, pairs.second]).norm(dim=-1)


@functools.lru_cache(maxsize=64)
def _torsion_axes_and_moving_atoms(aatype: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """How `chain_atom14` moves atoms when one torsion changes (residue 0 fixed, the chain grows to the
    C terminus): per torsion (L * 7), the flat atom14 indices (b, c) of its rotation axis b -> c (-1: not
    a torsion of this residue; ω is never moved), and which atoms (L * 7, L * 14) turn about that axis.

    φ(i) turns residue i's C, O and side chain and every later residue about N(i) -> CA(i); ψ(i) turns
    O(i) and every later residue about CA(i) -> C(i); χk(i) turns the atoms of rigid groups χk..χ4 of
    residue i about the middle bond of its χk atoms.
    """
    num_residues = len(aatype)
    axis = -np.ones((num_residues, 7, 2), dtype=np.int64)
    moving = np.zeros((num_residues, 7, num_residues, 14), dtype=np.float32)
    for i, a in enumerate(aatype):
        names = rc.ATOM14_NAMES[rc.RESNAMES3[a]]
        first = i * 14
        axis[i, _PHI] = (first + _N, first + _CA)
        moving[i, _PHI, i, _C:] = 1.0
        moving[i, _PHI, i + 1 :] = 1.0
        axis[i, _PSI] = (first + _CA, first + _C)
        moving[i, _PSI, i, _O] = 1.0
        moving[i, _PSI, i + 1 :] = 1.0
        for k, chi_atoms in enumerate(rc.CHI_ANGLES_ATOMS[a]):
            axis[i, _CHI1 + k] = (first + names.index(chi_atoms[1]), first + names.index(chi_atoms[2]))
            moving[i, _CHI1 + k, i] = rc.ATOM14_RIGID_GROUP[a] >= rc.CHI1_GROUP + k
    moving *= rc.ATOM14_MASK[np.asarray(aatype)][None, None]  # absent atoms never move
    return axis.reshape(-1, 2), moving.reshape(num_residues * 7, num_residues * 14)


def torsion_gradient(
    atom14: torch.Tensor, shortfall: torch.Tensor, pairs: StericPairs, aatype: Sequence[int]
) -> torch.Tensor:
    """dE/dθ (N, L, 7) of E = Σ shortfall² for chains built by `chain_atom14` (ω entries 0).

    atom14 (N, L, 14, 3) Å; shortfall (N, P) = relu(limit - distance) of `pairs`. Turning torsion k by dθ
    moves each of its atoms a by dθ u_k × (x_a - c_k) (u_k the unit axis, c_k a point on it), so
    dE/dθ_k = u_k · Σ_a (x_a - c_k) × g_a with g_a = dE/dx_a: one scatter of pair forces onto atoms and
    two small matrix products, instead of a backward pass through the chain builder.
    """
    axis, moving = _torsion_axes_and_moving_atoms(tuple(int(a) for a in aatype))
    axis = torch.as_tensor(axis, device=atom14.device)
    moving = torch.as_tensor(moving, dtype=atom14.dtype, device=atom14.device)  # (K, A)
    flat = atom14.flatten(-3, -2)  # (N, A, 3)
    separation = flat[:, pairs.first] - flat[:, pairs.second]  # (N, P, 3)
    distance = separation.norm(dim=-1).clamp_min(1e-9)
    pull = (-2.0 * shortfall / distance)[..., None] * separation  # dE/dx of each pair's first atom
    force = torch.zeros_like(flat).index_add_(1, pairs.first, pull).index_add_(1, pairs.second, -pull)
    moment = torch.einsum("ka,naj->nkj", moving, torch.cross(flat, force, dim=-1))  # Σ_a x_a × g_a
    total = torch.einsum("ka,naj->nkj", moving, force)  # Σ_a g_a
    start, end = flat[:, axis[:, 0].clamp_min(0)], flat[:, axis[:, 1].clamp_min(0)]  # (N, K, 3)
    direction = (end - start) / (end - start).norm(dim=-1, keepdim=True).clamp_min(1e-9)
    gradient = (direction * (moment - torch.cross(end, total, dim=-1))).sum(-1) * (axis[:, 0] >= 0)
    return gradient.unflatten(-1, (len(aatype), 7))


def _free_torsions(aatype: torch.Tensor) -> torch.Tensor:
    """(L, 7) bool: torsions moved to clear clashes: φ (not residue 0), ψ, and the residue's χ."""
    free = torch.zeros(len(aatype), 7, dtype=torch.bool, device=aatype.device)
    free[1:, 1] = True
    free[:, 2] = True
    free[:, 3:] = residue_table("CHI_ANGLES_MASK", device=aatype.device)[aatype]
    return free


@dataclass(frozen=True)
class ClashRemoval:
    torsions: torch.Tensor  # (N, L, 7, 2) buildable torsions after refinement
    clashing_before: int  # frames that had a clash (within STORAGE_TOLERANCE_A of a limit)
    clashing_after: int  # frames still with one (kept as they are)
    steps: int  # gradient steps taken


@torch.no_grad()  # the torsion gradient is computed directly (`torsion_gradient`), not by autograd
def remove_clashes(
    torsions: torch.Tensor,
    aatype: torch.Tensor,
    margin_A: float = MARGIN_A,
    max_steps: int = MAX_STEPS,
    step_rad: float = STEP_RAD,
) -> ClashRemoval:
    """Clear METHOD 12 clashes of N chains of one sequence by changing their free torsions a little.

    torsions (N, L, 7, 2) buildable (`mdgen.geometry.backbone.buildable_torsions`), aatype (L,).
    Each step moves the free torsions of every frame not yet `margin_A` clear of all limits down the
    gradient of sum(shortfall²), scaled so that no torsion turns by more than `step_rad` (decaying by 5 %
    a step); a frame stops as soon as it is clear.
    """
    aatype = aatype.long()
    aatype_tuple = tuple(aatype.tolist())
    pairs = steric_pairs(aatype.cpu().numpy(), torsions.device)
    distances = _pair_distances(chain_atom14(torsions, aatype), pairs)
    clashing = (distances < pairs.min_distance_A + STORAGE_TOLERANCE_A).any(-1)
    count = int(clashing.sum())
    if count == 0:
        return ClashRemoval(torsions, 0, 0, 0)
    selected = torsions[clashing].detach()
    angles = torch.atan2(selected[..., 0], selected[..., 1])  # (n, L, 7)
    free = _free_torsions(aatype).to(angles.dtype)
    delta = torch.zeros_like(angles)
    target = pairs.min_distance_A.to(angles.dtype) + margin_A
    active = torch.arange(len(angles), device=angles.device)
    steps = 0
    for steps in range(1, max_steps + 1):
        moved = angles[active] + delta[active] * free
        atoms = chain_atom14(torch.stack([moved.sin(), moved.cos()], dim=-1), aatype)
        shortfall = torch.relu(target - _pair_distances(atoms, pairs))  # (n_active, P)
        short = (shortfall > 0).any(0)  # (P,) only these pairs push any atom
        short_pairs = StericPairs(pairs.first[short], pairs.second[short], target[short])
        gradient = torsion_gradient(atoms, shortfall[:, short], short_pairs, aatype_tuple)
        clear = shortfall.amax(-1) == 0
        gradient = gradient * free
        scale = step_rad * 0.95 ** (steps - 1) / gradient.abs().amax((-2, -1), keepdim=True).clamp_min(1e-12)
        delta[active[~clear]] -= (scale * gradient)[~clear]
        active = active[~clear]
        if len(active) == 0:
            break
    moved = angles + delta * free
    refined = torch.stack([moved.sin(), moved.cos()], dim=-1).to(torsions.dtype)
    refined = torch.where(free.bool()[..., None], refined, selected)  # absent χ stay (0, 0)
    out = torsions.clone()
    out[clashing] = refined
    distances = _pair_distances(chain_atom14(refined, aatype), pairs)
    still = (distances < pairs.min_distance_A + STORAGE_TOLERANCE_A).any(-1)
    return ClashRemoval(out, count, int(still.sum()), steps)
