"""Rotary position embedding (half-split / GPT-NeoX layout, as in ESM and the original MDGen)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """Rotates channel pairs (i, i + d/2) of queries and keys by position * base^(-2i/d).

    The dot product of a rotated query and key then depends on their positions only through the
    difference, so attention sees relative residue or frame offsets.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head dimension, got {head_dim}")
        inverse_frequency = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inverse_frequency", inverse_frequency, persistent=False)  # (d/2,)

    def tables(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos and sin of the rotation angles for positions (S,) or (N, S): (S, d) or (N, 1, S, d)."""
        angles = positions.float()[..., None] * self.inverse_frequency  # (..., S, d/2)
        angles = torch.cat([angles, angles], dim=-1)  # (..., S, d)
        if angles.dim() == 3:
            angles = angles.unsqueeze(1)  # (N, 1, S, d): broadcast over heads
        return angles.cos().to(dtype), angles.sin().to(dtype)

    @staticmethod
    def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """x (N, H, S, d) rotated by the angles whose `tables` are cos, sin."""
        first, second = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-second, first], dim=-1) * sin

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """x: (N, H, S, d); positions: (S,) shared or (N, S) per sequence. Returns x rotated, same shape."""
        return self.rotate(x, *self.tables(positions, x.dtype))
