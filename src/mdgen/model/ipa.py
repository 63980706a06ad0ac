"""Invariant point attention (AlphaFold 2, Suppl. Alg. 22) without the pair representation.

Each residue carries a rigid (local -> global). Queries, keys and values include 3-D points predicted
in the residue's local frame and moved to the global frame, so attention depends on the geometry only
through rigid-invariant quantities (distances, and outputs mapped back to local frames).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from mdgen.geometry import apply_rigid, invert_rigid
from mdgen.model.layers import linear

_MASKED_LOGIT = 1e5  # soft mask as in AlphaFold: padded rows stay finite (uniform), real rows ignore padding
_NORM_EPS = 1e-8


class InvariantPointAttention(nn.Module):
    """IPA over residues. Sizes are the original defaults: 4 heads x 32 channels, 8 query/key and 8 value
    points. The output linear is zero-initialised, so a residual IPA branch starts as the identity."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 4,
        head_dim: int = 32,
        num_qk_points: int = 8,
        num_v_points: int = 8,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.num_qk_points, self.num_v_points = num_qk_points, num_v_points
        self.dropout = nn.Dropout(dropout)
        self.q_proj = linear(embed_dim, num_heads * head_dim)
        self.kv_proj = linear(embed_dim, 2 * num_heads * head_dim)
        self.q_points_proj = linear(embed_dim, num_heads * num_qk_points * 3)
        self.kv_points_proj = linear(embed_dim, num_heads * (num_qk_points + num_v_points) * 3)
        # softplus(w_h) = 1 at init: every head starts with the same point-distance weight.
        self.head_weights = nn.Parameter(torch.full((num_heads,), math.log(math.e - 1.0)))
        out_features = num_heads * (head_dim + 4 * num_v_points)  # scalars, local points (3), point norms
        self.out_proj = linear(out_features, embed_dim, init="zero")
        # AlphaFold's variance normalisation, with its three logit terms kept although there is no pair term.
        self.scalar_scale = math.sqrt(1.0 / (3 * head_dim))
        self.point_scale = math.sqrt(1.0 / (3 * num_qk_points * 9.0 / 2))

    def forward(self, s: Tensor, rots: Tensor, trans: Tensor, residue_mask: Tensor) -> Tensor:
        """s: (B, L, D); rots (B, L, 3, 3), trans (B, L, 3) Å; residue_mask (B, L) bool. -> (B, L, D)."""
        # Everything below is invariant to a global translation; centring keeps point coordinates small,
        # which keeps the expanded squared distances accurate in float32.
        trans = trans - _masked_mean(trans, residue_mask)
        q = rearrange(self.q_proj(s), "b l (h c) -> b h l c", h=self.num_heads)
        k, v = rearrange(self.kv_proj(s), "b l (h c) -> b h l c", h=self.num_heads).chunk(2, dim=-1)
        q_points = self._global_points(self.q_points_proj(s), rots, trans)  # (B, H, L, Pqk, 3)
        kv_points = self._global_points(self.kv_points_proj(s), rots, trans)
        k_points, v_points = kv_points.split([self.num_qk_points, self.num_v_points], dim=-2)

        # Logits in float32 even under autocast: squared distances in Å² lose too much in bf16.
        with torch.autocast(device_type=s.device.type, enabled=False):
            weights = self._attention_weights(
                q.float(), k.float(), q_points.float(), k_points.float(), residue_mask
            )
            weights = self.dropout(weights)  # (B, H, L, L)
            out_scalar = weights @ v.float()  # (B, H, L, C)
            out_points = torch.einsum(
                "bhij,bhjpx->bhipx", weights, v_points.float()
            )  # (B, H, L, Pv, 3) global
            rots_inv, trans_inv = invert_rigid(rots.float(), trans.float())
            out_points = apply_rigid(
                rots_inv[:, None, :, None], trans_inv[:, None, :, None], out_points
            )  # local
        out_norms = torch.sqrt(out_points.square().sum(-1) + _NORM_EPS)  # (B, H, L, Pv)
        features = torch.cat(
            [
                rearrange(out_scalar, "b h l c -> b l (h c)"),
                rearrange(out_points, "b h l p x -> b l (h p x)"),
                rearrange(out_norms, "b h l p -> b l (h p)"),
            ],
            dim=-1,
        )
        return self.out_proj(features.to(s.dtype))

    def _global_points(self, flat_points: Tensor, rots: Tensor, trans: Tensor) -> Tensor:
        """(B, L, H * P * 3) local points -> (B, H, L, P, 3) in the global frame."""
        points = rearrange(flat_points, "b l (h p x) -> b h l p x", h=self.num_heads, x=3)
        return apply_rigid(rots[:, None, :, None], trans[:, None, :, None], points)

    def _attention_weights(
        self, q: Tensor, k: Tensor, q_points: Tensor, k_points: Tensor, residue_mask: Tensor
    ) -> Tensor:
        """Softmax over keys of scalar affinity minus weighted point distance. -> (B, H, L, L)."""
        scalar_logits = self.scalar_scale * q @ k.transpose(-1, -2)
        q_flat, k_flat = q_points.flatten(-2), k_points.flatten(-2)  # (B, H, L, Pqk * 3)
        # sum_p |q_ip - k_jp|^2 = |q_i|^2 + |k_j|^2 - 2 q_i . k_j : one matmul instead of an (L, L, P, 3) tensor.
        squared_distance = (
            q_flat.square().sum(-1)[..., :, None]
            + k_flat.square().sum(-1)[..., None, :]
            - 2 * q_flat @ k_flat.transpose(-1, -2)
        )
        point_weight = 0.5 * self.point_scale * F.softplus(self.head_weights.float())[None, :, None, None]
        pair_mask = (residue_mask[:, :, None] & residue_mask[:, None, :]).float()[:, None]  # (B, 1, L, L)
        logits = scalar_logits - point_weight * squared_distance + _MASKED_LOGIT * (pair_mask - 1)
        return torch.softmax(logits, dim=-1)


def _masked_mean(trans: Tensor, residue_mask: Tensor) -> Tensor:
    """(B, L, 3), (B, L) bool -> (B, 1, 3) mean position of the real residues."""
    weights = residue_mask.to(trans.dtype)[..., None]
    return (trans * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1.0)
