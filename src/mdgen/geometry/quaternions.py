"""Rotation matrices <-> unit quaternions (w, x, y, z), canonicalised to w >= 0."""

from __future__ import annotations

import torch

_EPS = 1e-12


def rotation_to_quaternion(rots: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 4) unit quaternion (w, x, y, z) with w >= 0.

    Shepperd's method: each row of the symmetric matrix below is 4·q_i·q, so the row with the
    largest diagonal entry (q_i² largest, hence >= 1/4) is divided by a well-conditioned number.
    That choice is exact to float precision everywhere, including 180° rotations where w -> 0.
    """
    r = rots
    r00, r01, r02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    r10, r11, r12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    r20, r21, r22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    rows = torch.stack(
        [
            torch.stack([1 + r00 + r11 + r22, r21 - r12, r02 - r20, r10 - r01], -1),
            torch.stack([r21 - r12, 1 + r00 - r11 - r22, r01 + r10, r02 + r20], -1),
            torch.stack([r02 - r20, r01 + r10, 1 - r00 + r11 - r22, r12 + r21], -1),
            torch.stack([r10 - r01, r02 + r20, r12 + r21, 1 - r00 - r11 + r22], -1),
        ],
        dim=-2,
    )  # (..., 4, 4)
    best = torch.diagonal(rows, dim1=-2, dim2=-1).argmax(-1)  # (...,)
    q = torch.gather(rows, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / torch.sqrt((q * q).sum(-1, keepdim=True) + _EPS)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_rotation(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion (w, x, y, z), normalised first -> (..., 3, 3) rotation."""
    q = q / torch.sqrt((q * q).sum(-1, keepdim=True) + _EPS)
    w, x, y, z = q.unbind(-1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(row, -1) for row in rows], -2)
