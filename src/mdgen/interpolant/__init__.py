"""Generative-model maths in pure torch: probability paths, Dirichlet flow for categories, ODE solvers.

Knows nothing about proteins; tensors are (B, ...) with a per-sample time t (B,) in [0, 1].
"""

from mdgen.interpolant.dirichlet import DirichletFlow, dirichlet_c_factor, regularized_incomplete_beta
from mdgen.interpolant.ode_solvers import ODESolution, solve_ode
from mdgen.interpolant.probability_paths import (
    AffinePath,
    GVPPath,
    LinearPath,
    PathSample,
    Schedule,
    masked_mse,
)

__all__ = [
    "AffinePath",
    "DirichletFlow",
    "GVPPath",
    "LinearPath",
    "ODESolution",
    "PathSample",
    "Schedule",
    "dirichlet_c_factor",
    "masked_mse",
    "regularized_incomplete_beta",
    "solve_ode",
]
