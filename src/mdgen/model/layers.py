"""Linear layers initialised the way MDGen initialises them (METHOD 3.7), chosen at the call site."""

from __future__ import annotations

from torch import nn

INITS = ("xavier", "zero", "normal")


def linear(in_dim: int, out_dim: int, init: str = "xavier") -> nn.Linear:
    """nn.Linear with zero bias and weights by `init`:

    xavier: Xavier-uniform, the default for every linear in the model;
    zero: all zeros, so a residual branch or output head starts switched off;
    normal: N(0, 0.02^2), the flow-time MLP (DiT).
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
    layer = nn.Linear(in_dim, out_dim)
    nn.init.zeros_(layer.bias)
    if init == "xavier":
        nn.init.xavier_uniform_(layer.weight)
    elif init == "zero":
        nn.init.zeros_(layer.weight)
    else:
        nn.init.normal_(layer.weight, std=0.02)
    return layer
