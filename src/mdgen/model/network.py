"""MDGenNetwork: the velocity network of MDGen (METHOD 3), an SE(3)-invariant space-time transformer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mdgen.constants import NUM_AMINO_ACIDS
from mdgen.model.blocks import (
    FinalLayer,
    IPATrunkLayer,
    SequenceHead,
    SpaceTimeBlock,
    TimeEmbedder,
    run_layer,
)
from mdgen.model.ipa import InvariantPointAttention
from mdgen.model.layers import linear
from mdgen.model.trunk import KeyFrameTrunk

RESIDUE_POS_EMBS = ("rotary", "table")


@dataclass(frozen=True)
class NetworkOutput:
    velocity: Tensor  # (B, T, L, C) predicted velocity; in design the last 20 channels are per-frame logits
    aa_logits: Tensor | None  # (B, L, 20) frame-pooled residue-identity logits (design), else None


class MDGenNetwork(nn.Module):
    """Predicts the flow velocity of a window of trajectory tokens (B, T, L, C).

    Pipeline: embed tokens + known tokens + which-is-known -> add the key-frame trunk (IPA over the key
    rigids and the sequence) to every frame -> space-time blocks (residue attention, frame attention,
    MLP; adaLN from flow time) -> linear read-out. Design adds a simplex input and a logits head.

    Constructor arguments (plain values; `conf/model/*.yaml` sets the sizes, the task sets the rest):
        token_dim: continuous token width C_cont (21 for one key frame, 28 for two).
        num_key_frames: K, 1 (forward, upsampling) or 2 (interpolation, inpainting): trunk streams.
        embed_dim: model width D (base 384).
        num_ipa_blocks: IPA trunk layers (base 5).
        num_blocks: space-time blocks (base 5).
        num_heads: attention heads of the trunk and space-time attention (base 16).
        mlp_ratio: MLP hidden width / D (base 4).
        ipa_heads, ipa_head_dim, ipa_qk_points, ipa_v_points: IPA sizes (base 4, 32, 8, 8).
        dropout: attention-probability dropout (base 0).
        design: append a 20-channel residue-identity simplex to input and output (C = token_dim + 20)
            and add the frame-pooled logits head.
        use_aa_emb: embed aatype in the trunk; the original design recipe turns it off (--no_aa_emb).
        residue_pos_emb: "rotary": residue positions enter through rotary attention only (any length,
            crop-safe); "table": also add the original fixed sinusoidal table of the position within the
            crop (needs max_residues; the original tetrapeptide setting, which also used rotary).
        max_residues: rows of the sinusoidal table; required for residue_pos_emb="table".
        time_multiplier: flow time is scaled by this before the sinusoid (original 100).
        rotary_base: rotary frequency base (10000).
        sink_position: where every attention's learned sink key sits: "start" (unrotated, position 0;
            real outputs do not depend on padding or window length) or "original" (rotated as position
            S, one past the last key, as the original; set by `mdgen.convert` for its published weights).
            See `SinkAttention`.
        grad_checkpointing: recompute each trunk layer / block in backward (saves memory, costs time).

    Parameter count of the base sizes: 34,152,521 for token_dim 21, K 1 (METHOD 3.8).
    """

    def __init__(
        self,
        token_dim: int,
        num_key_frames: int = 1,
        embed_dim: int = 384,
        num_ipa_blocks: int = 5,
        num_blocks: int = 5,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        ipa_heads: int = 4,
        ipa_head_dim: int = 32,
        ipa_qk_points: int = 8,
        ipa_v_points: int = 8,
        dropout: float = 0.0,
        design: bool = False,
        use_aa_emb: bool = True,
        residue_pos_emb: str = "rotary",
        max_residues: int | None = None,
        time_multiplier: float = 100.0,
        rotary_base: float = 10000.0,
        sink_position: str = "start",
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        if residue_pos_emb not in RESIDUE_POS_EMBS:
            raise ValueError(f"residue_pos_emb must be one of {RESIDUE_POS_EMBS}, got {residue_pos_emb!r}")
        if residue_pos_emb == "table" and not max_residues:
            raise ValueError('residue_pos_emb="table" needs max_residues (the table length)')
        self.token_dim, self.design = token_dim, design
        self.grad_checkpointing = grad_checkpointing
        simplex_dim = NUM_AMINO_ACIDS if design else 0
        self.out_dim = token_dim + simplex_dim

        self.token_embed = linear(self.out_dim, embed_dim)
        self.cond_embed = linear(token_dim, embed_dim)
        self.cond_mask_embed = nn.Embedding(2, embed_dim)
        table = sinusoidal_table(max_residues, embed_dim) if residue_pos_emb == "table" else None
        self.register_buffer("residue_table", table, persistent=False)  # (max_residues, D) or None
        self.time_embed = TimeEmbedder(embed_dim, time_multiplier=time_multiplier)

        trunk_layers = [
            IPATrunkLayer(
                embed_dim,
                num_heads,
                mlp_ratio,
                InvariantPointAttention(
                    embed_dim, ipa_heads, ipa_head_dim, ipa_qk_points, ipa_v_points, dropout
                ),
                dropout,
                rotary_base,
                sink_position,
            )
            for _ in range(num_ipa_blocks)
        ]
        self.trunk = KeyFrameTrunk(
            embed_dim, num_key_frames, trunk_layers, use_aa_emb, simplex_dim, grad_checkpointing
        )
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(embed_dim, num_heads, mlp_ratio, dropout, rotary_base, sink_position)
            for _ in range(num_blocks)
        )
        self.final_layer = FinalLayer(embed_dim, self.out_dim)
        self.sequence_head = SequenceHead(embed_dim, NUM_AMINO_ACIDS) if design else None

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        *,
        x_cond: Tensor,
        cond_mask: Tensor,
        residue_mask: Tensor,
        key_rots: Tensor,
        key_trans: Tensor,
        aatype: Tensor,
        residue_index: Tensor,
    ) -> NetworkOutput:
        """x_t (B, T, L, C) noisy tokens [+ simplex]; t (B,) flow time; x_cond (B, T, L, C_cont) known tokens
        (0 elsewhere); cond_mask (B, T, L) 0/1; residue_mask (B, L) 0/1 or bool; key_rots (B, K, L, 3, 3);
        key_trans (B, K, L, 3) Å; aatype (B, L) int, 20 = unknown; residue_index (B, L) int chain positions."""
        if x_t.shape[-1] != self.out_dim:
            raise ValueError(f"x_t has {x_t.shape[-1]} channels, the network expects {self.out_dim}")
        residue_mask = residue_mask.bool()
        residue_positions = _positions_from_first_real(residue_index, residue_mask)  # (B, L)
        # Noisy tokens, known tokens and which tokens are known, all embedded additively: (B, T, L, D).
        h = self.token_embed(x_t) + self.cond_embed(x_cond) + self.cond_mask_embed(cond_mask.long())
        if self.residue_table is not None:
            # Padded residues may carry any index; real ones past the table end fail loudly here.
            h = (
                h + self.residue_table[torch.where(residue_mask, residue_positions, 0)][:, None]
            )  # (B, 1, L, D)
        c = self.time_embed(t)  # (B, D)

        simplex_mean = x_t[..., -NUM_AMINO_ACIDS:].mean(dim=1) if self.design else None  # (B, L, 20)
        trunk = self.trunk(c, key_rots, key_trans, aatype, residue_mask, residue_positions, simplex_mean)
        h = h + trunk[:, None]  # (B, L, D) key-frame encoding, the same for every frame
        # Unpadded batches (every peptide batch of one sequence) skip the attention masks.
        block_mask = None if bool(residue_mask.all()) else residue_mask
        for block in self.blocks:
            h = run_layer(
                block, h, c, block_mask, residue_positions, grad_checkpointing=self.grad_checkpointing
            )

        velocity = self.final_layer(h, c)  # (B, T, L, C)
        if self.sequence_head is None:
            return NetworkOutput(velocity=velocity, aa_logits=None)
        aa_logits = self.sequence_head(h)  # (B, L, 20)
        per_frame_logits = velocity[..., -NUM_AMINO_ACIDS:] + aa_logits[:, None]
        return NetworkOutput(
            torch.cat([velocity[..., :-NUM_AMINO_ACIDS], per_frame_logits], dim=-1), aa_logits
        )


def _positions_from_first_real(residue_index: Tensor, residue_mask: Tensor) -> Tensor:
    """Chain positions counted from the first real residue of each sample: (B, L) int, (B, L) bool -> (B, L).

    Attention only sees position differences, except against the unrotated sink (position 0), so
    starting every sequence at 0 makes the output independent of where a crop starts in its chain,
    and the table option indexes crop positions 0..L-1 as the original did.
    """
    first_real = torch.where(residue_mask, residue_index, residue_index.amax()).amin(
        1, keepdim=True
    )  # (B, 1)
    return residue_index - first_real


def sinusoidal_table(length: int, dim: int) -> Tensor:
    """Fixed (length, dim) position table: sin half then cos half, frequencies 10000^(-2i/dim)."""
    positions = torch.arange(length, dtype=torch.float32)[:, None]
    frequencies = 10000.0 ** (-torch.arange(dim // 2, dtype=torch.float32) / (dim // 2))
    angles = positions * frequencies  # (length, dim / 2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
