"""Multi-head self-attention with rotary positions and a learned key/value sink, on fused SDPA kernels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mdgen.model.layers import linear
from mdgen.model.rotary import RotaryEmbedding

SINK_POSITIONS = ("start", "original")


class SinkAttention(nn.Module):
    """Self-attention over a sequence (residues or frames) with one extra learned key/value slot.

    The sink slot (fairseq's add_bias_kv in the original) is appended to every key/value sequence and
    is never masked. It gives each query a learnable "attend to nothing" option and keeps rows whose
    real keys are all masked finite (padded residues in frame attention see only the sink).

    Where the sink key sits (`sink_position`; the parameters are the same either way):
      "start": not rotated, i.e. at position 0. Callers number positions from 0 at the first real
          element (MDGenNetwork does), so its scores depend only on a query's offset from the start
          of the sequence, and padding a batch leaves the outputs of real elements unchanged.
      "original": rotated as position S = the sequence length of `x` (one past the last key), as the
          original appends its bias key before applying rotary. Every sink score then depends on S:
          padding residues, or another window length, changes the outputs of real elements. Needed to
          reproduce the original's published weights exactly (`python -m mdgen.convert`).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        rotary_base: float = 10000.0,
        sink_position: str = "start",
    ):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if sink_position not in SINK_POSITIONS:
            raise ValueError(f"sink_position must be one of {SINK_POSITIONS}, got {sink_position!r}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.sink_position = sink_position
        head_dim = embed_dim // num_heads
        self.q_proj = linear(embed_dim, embed_dim)
        self.k_proj = linear(embed_dim, embed_dim)
        self.v_proj = linear(embed_dim, embed_dim)
        self.out_proj = linear(embed_dim, embed_dim)
        # Xavier-normal of the original (1, 1, D) bias_kv tensors has std sqrt(2 / (D + D)).
        self.sink_key = nn.Parameter(torch.randn(embed_dim) * embed_dim**-0.5)
        self.sink_value = nn.Parameter(torch.randn(embed_dim) * embed_dim**-0.5)
        self.rotary = RotaryEmbedding(head_dim, rotary_base)

    def forward(self, x: Tensor, positions: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x: (N, S, D); positions: (S,) or (N, S); key_mask: (N, S) bool, True = real key. -> (N, S, D)."""
        num_sequences, length, embed_dim = x.shape
        head_dim = embed_dim // self.num_heads
        # Plain views instead of einops here: this runs six times per network evaluation.
        q, k, v = (
            proj(x).view(num_sequences, length, self.num_heads, head_dim).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )  # (N, H, S, d)
        cos, sin = self.rotary.tables(positions, x.dtype)  # one table for queries and keys
        q, k = self.rotary.rotate(q, cos, sin), self.rotary.rotate(k, cos, sin)
        sink_key = self._sink(self.sink_key, num_sequences, k.dtype)  # (N, H, 1, d)
        if self.sink_position == "original":
            sink_key = self.rotary(sink_key, torch.tensor([length], device=x.device))  # position S
        sink_value = self._sink(self.sink_value, num_sequences, v.dtype)
        k, v = torch.cat([k, sink_key], dim=2), torch.cat([v, sink_value], dim=2)  # (N, H, S + 1, d)

        attn_mask = None
        if key_mask is not None:
            sink_visible = key_mask.new_ones(num_sequences, 1)
            attn_mask = torch.cat([key_mask, sink_visible], dim=1)[:, None, None, :]  # (N, 1, 1, S + 1)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (N, H, S, d)
        return self.out_proj(out.transpose(1, 2).reshape(num_sequences, length, embed_dim))

    def _sink(self, vector: Tensor, num_sequences: int, dtype: torch.dtype) -> Tensor:
        sink = vector.view(1, self.num_heads, 1, -1)
        return sink.to(dtype).expand(num_sequences, -1, -1, -1)
