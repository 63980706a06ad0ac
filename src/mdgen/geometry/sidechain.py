"""Side-chain builder: residue frames + torsions -> atom14 with ideal geometry (AlphaFold scheme)."""

from __future__ import annotations

import torch

from mdgen import constants as rc
from mdgen.geometry.rigids import apply_rigid, compose_rigids, rigid_from_4x4
from mdgen.geometry.tables import residue_table


def _rotation_about_x(sin_cos: torch.Tensor) -> torch.Tensor:
    """(..., 2) (sin, cos) -> (..., 3, 3) rotation about the local x axis."""
    sin, cos = sin_cos.unbind(-1)
    zero, one = torch.zeros_like(sin), torch.ones_like(sin)
    return torch.stack(
        [
            torch.stack([one, zero, zero], -1),
            torch.stack([zero, cos, -sin], -1),
            torch.stack([zero, sin, cos], -1),
        ],
        dim=-2,
    )


def rigid_group_frames(
    rots: torch.Tensor, trans: torch.Tensor, torsions: torch.Tensor, aatype: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global frames of the 8 rigid groups: rots (..., L, 8, 3, 3), trans (..., L, 8, 3) Å.

    Group g = parent ∘ default_frame[g] ∘ R_x(torsion[g - 1]); the parent is the backbone for
    pre-omega, phi, psi and chi1, and the previous chi group for chi2..chi4.
    """
    default = residue_table("RIGID_GROUP_DEFAULT_FRAMES", rots.dtype, rots.device)
    default_rots, default_trans = rigid_from_4x4(default[aatype.long()])  # (..., L, 8, 3, 3), (..., L, 8, 3)
    local_rots = default_rots[..., 1:, :, :] @ _rotation_about_x(torsions)  # (..., L, 7, 3, 3)
    local_trans = default_trans[..., 1:, :]

    group_rots, group_trans = [rots], [trans]
    for group in range(1, rc.NUM_RIGID_GROUPS):
        parent = 0 if group <= rc.CHI1_GROUP else group - 1
        r, t = compose_rigids(
            group_rots[parent],
            group_trans[parent],
            local_rots[..., group - 1, :, :],
            local_trans[..., group - 1, :],
        )
        group_rots.append(r)
        group_trans.append(t)
    return torch.stack(group_rots, dim=-3), torch.stack(group_trans, dim=-2)


def atom14_from_frames(
    rots: torch.Tensor, trans: torch.Tensor, torsions: torch.Tensor, aatype: torch.Tensor
) -> torch.Tensor:
    """rots (..., L, 3, 3), trans (..., L, 3) Å, torsions (..., L, 7, 2) (sin, cos), aatype (..., L)
    -> atom14 (..., L, 14, 3) Å with ideal geometry; zero where the residue type has no atom.

    Torsions are used as given (callers normalise the (sin, cos) pairs).
    """
    aatype = aatype.long()
    group_rots, group_trans = rigid_group_frames(rots, trans, torsions, aatype)
    lead = group_trans.shape[:-2]  # (..., L)
    atom_group = residue_table("ATOM14_RIGID_GROUP", device=rots.device)[aatype].expand(*lead, 14)
    atom_rots = torch.gather(group_rots, -3, atom_group[..., None, None].expand(*lead, 14, 3, 3))
    atom_trans = torch.gather(group_trans, -2, atom_group[..., None].expand(*lead, 14, 3))
    literature = residue_table("ATOM14_LITERATURE_POSITIONS", rots.dtype, rots.device)[aatype]
    mask = residue_table("ATOM14_MASK", device=rots.device)[aatype]  # (..., L, 14)
    return apply_rigid(atom_rots, atom_trans, literature) * mask[..., None]
