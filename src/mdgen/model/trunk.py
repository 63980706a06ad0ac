"""Key-frame trunk: encodes the key-frame backbone geometry and the sequence per residue (METHOD 3.4)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mdgen.constants import NUM_AATYPES  # 20 amino acids + unknown/masked
from mdgen.geometry import relative_rigid, rotation_to_quaternion
from mdgen.model.blocks import IPATrunkLayer, run_layer
from mdgen.model.layers import linear

OFFSET_DIM = 7  # quaternion (w, x, y, z) + translation (Å)


class KeyFrameTrunk(nn.Module):
    """Per-residue state (B, L, D) that is later added to every frame of the window.

    One key frame: the state starts from the aatype embedding and runs the IPA layers in the key rigids.
    Two key frames (start, end): two streams through the same layers, summed at the end.
      forward stream: seeded with the 7-vector of start^-1 o end, attends in the end rigids;
      reverse stream: seeded with end^-1 o start, attends in the start rigids.

    Args:
        embed_dim: D.
        num_key_frames: 1 or 2.
        layers: the IPATrunkLayers (built by the caller; the two streams share them).
        use_aa_emb: add an embedding of aatype (21 entries, 20 = unknown); False reproduces --no_aa_emb.
        simplex_dim: width of the time-averaged residue-identity simplex added to the seed (20 in design), or 0.
        grad_checkpointing: recompute each layer's activations in backward.
    """

    def __init__(
        self,
        embed_dim: int,
        num_key_frames: int,
        layers: list[IPATrunkLayer],
        use_aa_emb: bool = True,
        simplex_dim: int = 0,
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        if num_key_frames not in (1, 2):
            raise ValueError(f"num_key_frames must be 1 or 2, got {num_key_frames}")
        self.embed_dim, self.num_key_frames = embed_dim, num_key_frames
        self.layers = nn.ModuleList(layers)
        self.aatype_embed = nn.Embedding(NUM_AATYPES, embed_dim) if use_aa_emb else None
        self.simplex_embed = linear(simplex_dim, embed_dim) if simplex_dim else None
        if num_key_frames == 2:
            self.forward_offset_embed = linear(OFFSET_DIM, embed_dim)
            self.reverse_offset_embed = linear(OFFSET_DIM, embed_dim)
        self.grad_checkpointing = grad_checkpointing

    def forward(
        self,
        c: Tensor,
        key_rots: Tensor,
        key_trans: Tensor,
        aatype: Tensor,
        residue_mask: Tensor,
        residue_positions: Tensor,
        simplex_mean: Tensor | None = None,
    ) -> Tensor:
        """c (B, D); key_rots (B, K, L, 3, 3); key_trans (B, K, L, 3) Å; aatype (B, L) int;
        residue_mask (B, L) bool; residue_positions (B, L); simplex_mean (B, L, S) or None. -> (B, L, D)."""
        batch, _, num_residues = key_trans.shape[:3]
        seed = c.new_zeros(batch, num_residues, self.embed_dim)
        if self.aatype_embed is not None:
            seed = seed + self.aatype_embed(aatype)
        if self.simplex_embed is not None:
            seed = seed + self.simplex_embed(simplex_mean)
        if self.num_key_frames == 1:
            return self._run_layers(seed, c, key_rots[:, 0], key_trans[:, 0], residue_mask, residue_positions)

        start, end = (key_rots[:, 0], key_trans[:, 0]), (key_rots[:, 1], key_trans[:, 1])
        forward_seed = seed + self.forward_offset_embed(_offset_vector(*start, *end))
        reverse_seed = seed + self.reverse_offset_embed(_offset_vector(*end, *start))
        # The streams share weights, so they run as one batch of 2B.
        both = self._run_layers(
            torch.cat([forward_seed, reverse_seed]),
            c.repeat(2, 1),
            torch.cat([end[0], start[0]]),
            torch.cat([end[1], start[1]]),
            residue_mask.repeat(2, 1),
            residue_positions.repeat(2, 1),
        )
        return both[:batch] + both[batch:]

    def _run_layers(
        self,
        h: Tensor,
        c: Tensor,
        rots: Tensor,
        trans: Tensor,
        residue_mask: Tensor,
        residue_positions: Tensor,
    ) -> Tensor:
        for layer in self.layers:
            h = run_layer(
                layer,
                h,
                c,
                rots,
                trans,
                residue_mask,
                residue_positions,
                grad_checkpointing=self.grad_checkpointing,
            )
        return h


def _offset_vector(key_rots: Tensor, key_trans: Tensor, rots: Tensor, trans: Tensor) -> Tensor:
    """key^-1 o rigid as a 7-vector (quaternion w >= 0, translation Å): (B, L, 7)."""
    relative_rots, relative_trans = relative_rigid(key_rots, key_trans, rots, trans)
    return torch.cat([rotation_to_quaternion(relative_rots), relative_trans], dim=-1)
