"""SE(3)-invariant trajectory tokens (METHOD 2.3-2.6) and their inverse.

Per (frame, residue) the token is, for each key frame k, the 7-vector of key⁻¹ ∘ frame for the
same residue (w-positive unit quaternion, then translation in Å, unscaled), followed by the 7
torsions as 14 channels (sin ω, cos ω, sin φ, cos φ, ...), zero where masked:

    width = 7 · num_key_frames + 14          (21 for one key frame, 28 for two)

Everything is batched over leading dimensions (..., T, L, ...) without Python loops over frames
or residues, because the model tokenises every batch on the fly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mdgen.constants import NUM_TORSIONS
from mdgen.geometry import (
    atom14_from_frames,
    chain_frames_on_frames,
    compose_rigids,
    frames_from_backbone,
    quaternion_to_rotation,
    relative_rigid,
    rotation_to_quaternion,
    torsion_angles,
    torsion_mask_from_aatype,
)

OFFSET_WIDTH = 7  # quaternion (4) + translation (3) per key frame
# How residue frames become atoms: "chain" fits one ideal chain built from ω/φ/ψ to the frames (no
# chain breaks, geometry/backbone.py); "frames" places each residue on its own frame (the original's).
DECODERS = ("chain", "frames")
TORSION_WIDTH = 2 * NUM_TORSIONS  # 14
_EPS = 1e-8
_N, _CA, _C = 0, 1, 2  # atom14 slots


def token_width(num_key_frames: int) -> int:
    return OFFSET_WIDTH * num_key_frames + TORSION_WIDTH


def offset_slice(key_index: int) -> slice:
    """Channels of the offset relative to the key_index-th key frame (quaternion then translation)."""
    return slice(OFFSET_WIDTH * key_index, OFFSET_WIDTH * (key_index + 1))


def quaternion_slice(key_index: int) -> slice:
    return slice(OFFSET_WIDTH * key_index, OFFSET_WIDTH * key_index + 4)


def translation_slice(key_index: int) -> slice:
    return slice(OFFSET_WIDTH * key_index + 4, OFFSET_WIDTH * (key_index + 1))


def torsion_slice(num_key_frames: int) -> slice:
    return slice(OFFSET_WIDTH * num_key_frames, token_width(num_key_frames))


def num_key_frames_of(tokens: torch.Tensor) -> int:
    """Infer the number of key frames (1 or 2) from the channel count; fail on anything else."""
    for num_key_frames in (1, 2):
        if tokens.shape[-1] == token_width(num_key_frames):
            return num_key_frames
    raise ValueError(
        f"tokens have {tokens.shape[-1]} channels; expected {token_width(1)} or {token_width(2)} "
        "(strip any appended simplex channels first)"
    )


@dataclass(frozen=True)
class FrameFeatures:
    rots: torch.Tensor  # (..., T, L, 3, 3) residue frames, local -> global
    trans: torch.Tensor  # (..., T, L, 3) Å, CA positions
    torsions: torch.Tensor  # (..., T, L, 7, 2) (sin, cos), (0, 0) where masked
    torsion_mask: torch.Tensor  # (..., L, 7) bool, from the sequence (same for every frame)


def frame_features(atom14: torch.Tensor, aatype: torch.Tensor) -> FrameFeatures:
    """atom14 (..., T, L, 14, 3) Å, aatype (..., L) -> per-frame rigids and torsions (no tokens yet)."""
    atom14, aatype = torch.as_tensor(atom14), torch.as_tensor(aatype).long()
    rots, trans = frames_from_backbone(atom14[..., _N, :], atom14[..., _CA, :], atom14[..., _C, :])
    torsions, _ = torsion_angles(atom14, aatype.unsqueeze(-2))
    return FrameFeatures(rots, trans, torsions, torsion_mask_from_aatype(aatype))


def _normalize_key_frames(key_frames: Sequence[int], num_frames: int) -> list[int]:
    if len(key_frames) not in (1, 2):
        raise ValueError(f"key_frames must hold 1 or 2 frame indices, got {tuple(key_frames)}")
    if any(not -num_frames <= k < num_frames for k in key_frames):
        raise ValueError(f"key_frames {tuple(key_frames)} out of range for {num_frames} frames")
    return [k % num_frames for k in key_frames]


def tokens_from_features(
    rots: torch.Tensor,
    trans: torch.Tensor,
    torsions: torch.Tensor,
    torsion_mask: torch.Tensor,
    key_frames: Sequence[int] = (0,),
) -> torch.Tensor:
    """rots (..., T, L, 3, 3), trans (..., T, L, 3) Å, torsions (..., T, L, 7, 2), torsion_mask (..., L, 7)
    -> tokens (..., T, L, 7·K + 14). key_frames index dim T; negative indices count from the end."""
    num_frames = rots.shape[-4]
    blocks = []
    for k in _normalize_key_frames(key_frames, num_frames):
        key_rots, key_trans = (
            rots[..., k : k + 1, :, :, :],
            trans[..., k : k + 1, :, :],
        )  # keep T for broadcast
        offset_rots, offset_trans = relative_rigid(key_rots, key_trans, rots, trans)
        blocks += [rotation_to_quaternion(offset_rots), offset_trans]
    mask = torsion_mask.unsqueeze(-3)[..., None].to(torsions.dtype)  # (..., 1, L, 7, 1)
    blocks.append((torsions * mask).flatten(-2))
    return torch.cat(blocks, dim=-1)


def features_from_tokens(
    tokens: torch.Tensor, key_rots: torch.Tensor, key_trans: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """tokens (..., T, L, C), first key frame's rigids key_rots (..., L, 3, 3), key_trans (..., L, 3) Å
    -> rots (..., T, L, 3, 3), trans (..., T, L, 3) Å, torsions (..., T, L, 7, 2) with unit (sin, cos).

    Only the first offset block is used (the second key frame's block is redundant at decode time).
    The quaternion is normalised inside quaternion_to_rotation; all-zero (masked) torsion pairs
    stay zero.
    """
    num_key_frames = num_key_frames_of(tokens)
    offset_rots = quaternion_to_rotation(tokens[..., quaternion_slice(0)])
    offset_trans = tokens[..., translation_slice(0)]
    rots, trans = compose_rigids(key_rots.unsqueeze(-4), key_trans.unsqueeze(-3), offset_rots, offset_trans)
    torsions = tokens[..., torsion_slice(num_key_frames)].unflatten(-1, (NUM_TORSIONS, 2))
    torsions = torsions / torch.sqrt((torsions * torsions).sum(-1, keepdim=True) + _EPS)
    return rots, trans, torsions


def encode(atom14: torch.Tensor, aatype: torch.Tensor, key_frames: Sequence[int] = (0,)) -> torch.Tensor:
    """atom14 (..., T, L, 14, 3) Å, aatype (..., L) -> tokens (..., T, L, 7·K + 14)."""
    features = frame_features(atom14, aatype)
    return tokens_from_features(
        features.rots, features.trans, features.torsions, features.torsion_mask, key_frames=key_frames
    )


def check_decoder(decoder: str) -> str:
    if decoder not in DECODERS:
        raise ValueError(f"decoder={decoder!r} is not one of {DECODERS}")
    return decoder


def decode(
    tokens: torch.Tensor, key_atom14: torch.Tensor, aatype: torch.Tensor, decoder: str = "frames"
) -> torch.Tensor:
    """tokens (..., T, L, C), key_atom14 (..., L, 14, 3) Å (first key frame), aatype (..., L)
    -> atom14 (..., T, L, 14, 3) Å rebuilt with ideal geometry (zero where the residue has no atom).

    decoder: one of DECODERS; "frames" (default here) keeps each decoded residue frame as it is."""
    key_atom14, aatype = torch.as_tensor(key_atom14), torch.as_tensor(aatype).long()
    key_rots, key_trans = frames_from_backbone(
        key_atom14[..., _N, :], key_atom14[..., _CA, :], key_atom14[..., _C, :]
    )
    rots, trans, torsions = features_from_tokens(tokens, key_rots, key_trans)
    if check_decoder(decoder) == "chain":
        rots, trans, torsions = chain_frames_on_frames(rots, trans, torsions, aatype.unsqueeze(-2))
    return atom14_from_frames(rots, trans, torsions, aatype.unsqueeze(-2))
