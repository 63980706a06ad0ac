"""Generated tokens -> all-atom frames (METHOD 2.6), including tasks trained without torsions.

Offsets are composed with the window's first key frame (frame 0), taken from the input batch, never
from the model's regeneration of it. Torsions come from the tokens, except for frames-only tasks
(`task.no_torsion`, the inpainting/design recipe), whose torsion channels carry no information; there
  - residues/frames the task was given keep the torsions of the input (they are known), and
  - generated residues get psi from their generated backbone (the dihedral N-CA-C-N(i+1), which AF2's
    O-based psi approximates within a few degrees) and default side-chain rotamers (chi1 = -60°, the
    most common one, chi2..4 = 180°), so every atom is placed consistently with the designed identity.
"""

from __future__ import annotations

import math

import torch

from mdgen.geometry import atom14_from_frames, dihedral_sin_cos
from mdgen.tasks import TaskSpec
from mdgen.tokens import features_from_tokens

_PSI, _CHI1 = 2, 3
_N, _CA, _C = 0, 1, 2  # atom14 slots
DEFAULT_CHI_DEG = (-60.0, 180.0, 180.0, 180.0)


def decode_windows(
    tokens: torch.Tensor, batch: dict[str, torch.Tensor], aatype: torch.Tensor, task: TaskSpec
) -> torch.Tensor:
    """tokens (B, T, L, C_cont), the window batch the tokens were sampled for, aatype (B, L) to build
    -> atom14 (B, T, L, 14, 3) Å."""
    num_frames = tokens.shape[1]
    rots, trans, torsions = features_from_tokens(tokens, batch["rots"][:, 0], batch["trans"][:, 0])
    frame_aatype = aatype[:, None].expand(-1, num_frames, -1)  # (B, T, L)
    if task.no_torsion:
        given = given_token_mask(task, num_frames, tokens.shape[2], tokens.device)  # (T, L)
        torsions = frames_only_torsions(rots, trans, batch["torsions"], given, frame_aatype)
    return atom14_from_frames(rots, trans, torsions, frame_aatype)


def given_token_mask(
    task: TaskSpec, num_frames: int, num_residues: int, device: torch.device
) -> torch.Tensor:
    """(T, L) bool: tokens the task conditions on (their true geometry was in the batch)."""
    frames = task.frame_cond_mask(num_frames).to(device)
    residues = task.residue_cond_mask(num_residues).to(device)
    return frames[:, None] | residues[None, :]


def frames_only_torsions(
    rots: torch.Tensor,
    trans: torch.Tensor,
    given_torsions: torch.Tensor,
    given: torch.Tensor,
    aatype: torch.Tensor,
) -> torch.Tensor:
    """Torsions (B, T, L, 7, 2) for frames-only tokens: given ones kept, generated ones derived.

    rots (B, T, L, 3, 3), trans (B, T, L, 3) Å: decoded residue frames; given_torsions (B, T, L, 7, 2):
    the input's; given (T, L) bool; aatype (B, T, L) of the residues to build.
    """
    derived = torch.zeros_like(given_torsions)
    chi = torch.tensor([[math.sin(math.radians(d)), math.cos(math.radians(d))] for d in DEFAULT_CHI_DEG])
    derived[..., _CHI1:, :] = chi.to(derived)
    derived[..., :_PSI, 1] = 1.0  # omega, phi place no atom; keep them valid unit vectors
    derived[..., _PSI, :] = _psi_from_backbone(rots, trans, aatype)
    return torch.where(given[None, :, :, None, None], given_torsions, derived)


def _psi_from_backbone(rots: torch.Tensor, trans: torch.Tensor, aatype: torch.Tensor) -> torch.Tensor:
    """(sin, cos) (B, T, L, 2) of N-CA-C-N(i+1) from the ideal backbone of each frame; 180° for the last residue."""
    placeholder = torch.zeros(*trans.shape[:-1], 7, 2, dtype=trans.dtype, device=trans.device)
    placeholder[..., 1] = 1.0
    backbone = atom14_from_frames(rots, trans, placeholder, aatype)  # N, CA, C do not depend on torsions
    n, ca, c = backbone[..., _N, :], backbone[..., _CA, :], backbone[..., _C, :]
    psi = torch.empty(*trans.shape[:-1], 2, dtype=trans.dtype, device=trans.device)
    psi[..., :-1, :] = dihedral_sin_cos(n[..., :-1, :], ca[..., :-1, :], c[..., :-1, :], n[..., 1:, :])
    psi[..., -1, :] = torch.tensor([0.0, -1.0], dtype=trans.dtype, device=trans.device)
    return psi


def designed_positions(task: TaskSpec, num_residues: int) -> list[int]:
    """Residues whose identity the task designs (sorted, non-negative): its design_residues, or every
    residue whose identity is generated when none are named."""
    if not task.design:
        return []
    if task.design_residues:
        return sorted({r + num_residues if r < 0 else r for r in task.design_residues})
    return torch.nonzero(task.design_residue_mask(num_residues)).flatten().tolist()


def identities_to_build(given: torch.Tensor, sampled: torch.Tensor, task: TaskSpec) -> torch.Tensor:
    """(B, L) identities to build atoms with: sampled at the designed residues, given elsewhere.

    A design model without a sequence input also predicts the given (flanking) residues; their
    predictions are reported, but the structure keeps their true identities.
    """
    positions = designed_positions(task, given.shape[-1])
    built = given.clone()
    built[:, positions] = sampled[:, positions]
    return built
