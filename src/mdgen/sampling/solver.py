"""ODE solver options for sampling, as a plain record that the Hydra `sampler` group instantiates."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mdgen.interpolant.solvers import ODE_METHODS


@dataclass(frozen=True)
class SolverOptions:
    """How the flow ODE is integrated from noise (s = 0) to data (s = 1).

    ``num_steps`` is the number of flow-time points: fixed-step methods take ``num_steps - 1`` steps (the
    original's grid of 50 points, 49 Euler steps), spaced by ``grid_power`` (1: uniform, the original's;
    above 1: shorter steps towards the data end, `mdgen.interpolant.solvers.time_grid`); dopri5 is
    adaptive and uses only ``atol``/``rtol``.
    """

    method: str = "dopri5"
    num_steps: int = 50
    atol: float = 1e-6
    rtol: float = 1e-3
    grid_power: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ODE_METHODS:
            raise ValueError(f"sampler method {self.method!r} is not one of {ODE_METHODS}")
        if self.num_steps < 2:
            raise ValueError(
                f"sampler num_steps must be >= 2 (grid points in flow time), got {self.num_steps}"
            )
        if not self.grid_power > 0:
            raise ValueError(f"sampler grid_power must be > 0, got {self.grid_power}")
        if self.atol <= 0 or self.rtol <= 0:
            raise ValueError(f"sampler tolerances must be positive, got atol={self.atol}, rtol={self.rtol}")

    def as_kwargs(self) -> dict[str, object]:
        """Keyword arguments of ``MDGenModule.sample`` / ``solve_ode``."""
        return asdict(self)
