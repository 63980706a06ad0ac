"""The seven AlphaFold torsions [omega, phi, psi, chi1..chi4] as (sin, cos) pairs with masks."""

from __future__ import annotations

import torch

from mdgen import constants as rc
from mdgen.geometry.rigids import apply_rigid, invert_rigid, rigid_from_three_points
from mdgen.geometry.tables import residue_table

_EPS = 1e-8
_N, _CA, _C, _O = (rc.ATOM14_NAMES["ALA"].index(a) for a in rc.BACKBONE_ATOMS)


def dihedral_sin_cos(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """IUPAC dihedral a-b-c-d as (..., 2) (sin, cos), from points (..., 3) Å.

    Measured in the frame that the side-chain builder rotates (origin c, x along b->c, a in the
    xy-plane), so extracting an angle and rebuilding with it are exact inverses.
    """
    rots, trans = rigid_from_three_points(c, c - b, a - b)
    d_local = apply_rigid(*invert_rigid(rots, trans), d)  # (..., 3)
    sin_cos = torch.stack([d_local[..., 2], d_local[..., 1]], dim=-1)
    return sin_cos / torch.sqrt((sin_cos * sin_cos).sum(-1, keepdim=True) + _EPS)


def torsion_mask_from_aatype(aatype: torch.Tensor) -> torch.Tensor:
    """(..., L) aatype -> (..., L, 7) bool: which torsions exist for a complete chain of this sequence.

    omega and phi need residue i-1, so the first residue (index 0 along dim -1) has neither.
    """
    chi_mask = residue_table("CHI_ANGLES_MASK", device=aatype.device)[aatype]  # (..., L, 4)
    backbone = torch.ones(*aatype.shape, 3, dtype=torch.bool, device=aatype.device)
    backbone[..., 0, :2] = False
    return torch.cat([backbone, chi_mask], dim=-1)


def torsion_angles(
    atom14: torch.Tensor, aatype: torch.Tensor, atom14_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """atom14 (..., L, 14, 3) Å, aatype (..., L) -> torsions (..., L, 7, 2) (sin, cos), mask (..., L, 7) bool.

    Residues along dim -3 form one chain. psi is AlphaFold's: the dihedral N-CA-C-O shifted by pi
    (both sin and cos negated). It places the carbonyl O of the same residue, so it exists for the
    last residue too, and it differs from textbook psi (N, CA, C, N(i+1)) by the O/N(i+1) offset
    (about 1-3°). Masked torsions are (0, 0). atom14_mask (..., L, 14), when given, also masks torsions
    whose atoms are missing; by default every atom of the residue type is taken to be present.
    """
    aatype = aatype.long()
    n, ca, c, o = (atom14[..., i, :] for i in (_N, _CA, _C, _O))  # (..., L, 3) each
    prev_ca = torch.roll(ca, 1, dims=-2)  # wraps at residue 0, which is masked below
    prev_c = torch.roll(c, 1, dims=-2)
    omega = dihedral_sin_cos(prev_ca, prev_c, n, ca)
    phi = dihedral_sin_cos(prev_c, n, ca, c)
    psi = -dihedral_sin_cos(n, ca, c, o)

    chi_index = residue_table("CHI_ANGLES_ATOM14_INDEX", device=aatype.device)[aatype]  # (..., L, 4, 4)
    lead = torch.broadcast_shapes(atom14.shape[:-2], aatype.shape)  # (..., L)
    chi_atoms = torch.gather(
        atom14.unsqueeze(-3).expand(*lead, 4, 14, 3),
        -2,
        chi_index.expand(*lead, 4, 4)[..., None].expand(*lead, 4, 4, 3),
    )  # (..., L, 4 chis, 4 atoms, 3)
    chis = dihedral_sin_cos(*chi_atoms.unbind(-2))  # (..., L, 4, 2)

    torsions = torch.cat([omega[..., None, :], phi[..., None, :], psi[..., None, :], chis], dim=-2)
    mask = torsion_mask_from_aatype(aatype).expand(*lead, 7)
    if atom14_mask is not None:
        mask = mask & _atoms_present_mask(atom14_mask.bool(), chi_index)
    return torsions * mask[..., None], mask


def _atoms_present_mask(atom14_mask: torch.Tensor, chi_index: torch.Tensor) -> torch.Tensor:
    """(..., L, 14) presence -> (..., L, 7): every atom of each torsion is present."""
    backbone = atom14_mask[..., [_N, _CA, _C, _O]]  # (..., L, 4)
    prev = torch.roll(backbone, 1, dims=-2)
    omega = prev[..., _CA] & prev[..., _C] & backbone[..., _N] & backbone[..., _CA]
    phi = prev[..., _C] & backbone[..., _N] & backbone[..., _CA] & backbone[..., _C]
    psi = backbone.all(-1)
    lead = atom14_mask.shape[:-1]
    chi_present = torch.gather(
        atom14_mask.unsqueeze(-2).expand(*lead, 4, 14), -1, chi_index.expand(*lead, 4, 4)
    ).all(-1)  # (..., L, 4)
    return torch.cat([torch.stack([omega, phi, psi], -1), chi_present], dim=-1)
