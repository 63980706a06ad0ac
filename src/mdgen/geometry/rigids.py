"""Rigid transforms as (rots (..., 3, 3), trans (..., 3) Å) pairs; rots map local to global.

All functions broadcast over leading dimensions, so a key-frame rigid (..., 1, L) composes with a
whole window (..., T, L) without copies.
"""

from __future__ import annotations

import torch

_EPS = 1e-8


def _normalize(v: torch.Tensor) -> torch.Tensor:
    # eps inside the square root keeps gradients finite for degenerate (zero) inputs.
    return v / torch.sqrt((v * v).sum(-1, keepdim=True) + _EPS)


def rigid_from_three_points(
    origin: torch.Tensor, x_direction: torch.Tensor, xy_direction: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame at `origin` with x along `x_direction` and `xy_direction` in the xy-plane (y > 0).

    Inputs (..., 3); the axes come from Gram-Schmidt, e_z = e_x x e_y (right-handed).
    """
    e_x = _normalize(x_direction)
    e_y = _normalize(xy_direction - (xy_direction * e_x).sum(-1, keepdim=True) * e_x)
    e_z = torch.cross(e_x, e_y, dim=-1)
    return torch.stack([e_x, e_y, e_z], dim=-1), origin


def frames_from_backbone(
    n: torch.Tensor, ca: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """AlphaFold residue frames (METHOD 2.1): origin CA, x toward C, N in the xy-plane.

    n, ca, c: (..., 3) Å -> rots (..., 3, 3), trans (..., 3) Å.
    """
    return rigid_from_three_points(ca, c - ca, n - ca)


def compose_rigids(
    r1: torch.Tensor, t1: torch.Tensor, r2: torch.Tensor, t2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(r1, t1) ∘ (r2, t2): apply the second transform first."""
    return r1 @ r2, (r1 @ t2.unsqueeze(-1)).squeeze(-1) + t1


def invert_rigid(r: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r_inv = r.transpose(-1, -2)
    return r_inv, -(r_inv @ t.unsqueeze(-1)).squeeze(-1)


def apply_rigid(r: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x (..., 3) local -> global: r x + t."""
    return (r @ x.unsqueeze(-1)).squeeze(-1) + t


def relative_rigid(
    r_key: torch.Tensor, t_key: torch.Tensor, r: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """key⁻¹ ∘ x: the rigid (r, t) expressed in the key rigid's local frame."""
    r_key_inv = r_key.transpose(-1, -2)
    return r_key_inv @ r, (r_key_inv @ (t - t_key).unsqueeze(-1)).squeeze(-1)


def rigid_from_4x4(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Homogeneous (..., 4, 4) -> (rots (..., 3, 3), trans (..., 3))."""
    return m[..., :3, :3], m[..., :3, 3]
