"""The residue-constant tables of `mdgen.constants` as torch tensors, converted once per dtype and device.

Geometry functions run in tight loops (clash removal rebuilds chains dozens of times per window); copying
the numpy tables into fresh tensors on every call was a large part of their cost for small batches.
"""

from __future__ import annotations

import functools

import torch

from mdgen import constants as rc


@functools.cache
def residue_table(
    name: str, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """`mdgen.constants.<name>` as a tensor (numpy's dtype unless `dtype` is given), cached.

    The returned tensor is shared between callers: index or copy it, never modify it in place.
    """
    return torch.as_tensor(getattr(rc, name), dtype=dtype, device=device)
