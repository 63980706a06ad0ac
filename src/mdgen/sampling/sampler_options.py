"""ODE solver options for sampling: the Hydra `sampler` group's fields over the checkpoint task's default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from mdgen.interpolant.ode_solvers import ODE_METHODS
from mdgen.tasks import TaskSpec


@dataclass(frozen=True)
class SolverOptions:
    """How the flow ODE is integrated from noise (s = 0) to data (s = 1).

    ``num_steps`` is the number of flow-time points: fixed-step methods take ``num_steps - 1`` steps (the
    original's grid of 50 points, 49 Euler steps), spaced by ``grid_power`` (1: uniform, the original's;
    above 1: shorter steps towards the data end, `mdgen.interpolant.ode_solvers.time_grid`); dopri5 is
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

    @classmethod
    def of_task(cls, task: TaskSpec, given: Mapping[str, Any] | None = None) -> SolverOptions:
        """The task's default sampler (`task.ode_method`, `ode_num_steps`, `ode_grid_power`), with every
        field of `given` that is not None in its place (`sampler=heun` gives all of them; the default
        `sampler=task` none, or the ones overridden as `sampler.num_steps=20`)."""
        unknown = sorted(set(given or {}) - {field.name for field in fields(cls)})
        if unknown:
            raise ValueError(
                f"sampler has no option {unknown[0]!r} (options: {[f.name for f in fields(cls)]})"
            )
        values: dict[str, Any] = {
            "method": task.ode_method,
            "num_steps": task.ode_num_steps,
            "grid_power": task.ode_grid_power,
        }
        values.update({key: value for key, value in (given or {}).items() if value is not None})
        return cls(**values)

    def as_kwargs(self) -> dict[str, object]:
        """Keyword arguments of ``MDGenModule.sample`` / ``solve_ode``."""
        return asdict(self)
