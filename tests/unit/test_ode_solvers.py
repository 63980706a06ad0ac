"""ODE solvers on problems with known answers, and their function-evaluation counts."""

import math

import pytest
import torch

from mdgen.interpolant import solve_ode
from mdgen.interpolant.ode_solvers import adams_bashforth2, time_grid


@pytest.mark.parametrize("method", ["dopri5", "euler", "heun", "ab2"])
def test_linear_ode_reaches_the_exponential(method):
    rate = torch.tensor([-1.5, 0.3, 2.0], dtype=torch.float64)  # one rate per sample
    x0 = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]], dtype=torch.float64)
    solution = solve_ode(
        lambda t, x: rate[:, None] * x, x0, method=method, num_steps=400, atol=1e-10, rtol=1e-10
    )
    tolerance = {"dopri5": 1e-8, "heun": 1e-4, "ab2": 3e-4, "euler": 2e-2}[method]
    torch.testing.assert_close(solution.x1, x0 * rate.exp()[:, None], rtol=tolerance, atol=tolerance)


def test_velocity_fn_receives_one_time_per_sample():
    seen_shapes = set()

    def velocity(t, x):
        seen_shapes.add(tuple(t.shape))
        return t[:, None].expand_as(x)  # dx/dt = t  ->  x(1) = x(0) + 1/2

    x0 = torch.zeros(5, 2, dtype=torch.float64)
    solution = solve_ode(velocity, x0, method="heun", num_steps=11)
    assert seen_shapes == {(5,)}
    torch.testing.assert_close(solution.x1, torch.full((5, 2), 0.5, dtype=torch.float64))


def test_euler_is_the_left_riemann_sum_on_the_grid():
    num_steps = 50  # grid points: 49 steps, as in the original sampler
    solution = solve_ode(
        lambda t, x: t[:, None].expand_as(x), torch.zeros(1, 1), method="euler", num_steps=num_steps
    )
    step = 1.0 / (num_steps - 1)
    expected = step * sum(i * step for i in range(num_steps - 1))
    assert math.isclose(solution.x1.item(), expected, rel_tol=1e-5)
    assert solution.nfe == num_steps - 1


def test_function_evaluation_counts():
    x0 = torch.ones(2, 3)
    assert solve_ode(lambda t, x: -x, x0, method="heun", num_steps=11).nfe == 20
    assert solve_ode(lambda t, x: -x, x0, method="ab2", num_steps=11).nfe == 10
    adaptive = solve_ode(lambda t, x: -x, x0, method="dopri5")
    assert 6 <= adaptive.nfe < 200


def test_integrates_between_custom_times():
    x0 = torch.ones(1, 1, dtype=torch.float64)
    solution = solve_ode(lambda t, x: x, x0, method="dopri5", t0=0.5, t1=2.0, atol=1e-10, rtol=1e-10)
    assert math.isclose(solution.x1.item(), math.exp(1.5), rel_tol=1e-8)


def test_unknown_method_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="dopri5"):
        solve_ode(lambda t, x: x, torch.zeros(1, 1), method="leapfrog")


def _ab2_error(grid: torch.Tensor) -> float:
    """|x(1) - exact| of Adams-Bashforth 2 for dx/dt = cos(3t) + x/2 from x(0) = 1 on `grid`."""

    def velocity(t, x):
        return torch.cos(3 * t) + x / 2

    x1 = adams_bashforth2(velocity, torch.ones(1, dtype=torch.float64), grid)
    # x(t) = e^{t/2} + (12 sin 3t - 2 cos 3t + 2 e^{t/2}) / 37 solves it with x(0) = 1.
    exact = math.exp(0.5) + (12 * math.sin(3) - 2 * math.cos(3) + 2 * math.exp(0.5)) / 37
    return abs(x1.item() - exact)


@pytest.mark.parametrize("warp", [1.0, 1.6])  # uniform grid, and one dense near t = 1
def test_ab2_is_second_order_on_uniform_and_non_uniform_grids(warp):
    """Halving every step must cut the error ~4x; a wrong extrapolation weight (e.g. r instead of r / 2,
    or ignoring the step ratio on a non-uniform grid) drops it to first order (~2x) or diverges."""
    errors = []
    for num_steps in (21, 41, 81):
        errors.append(_ab2_error(time_grid(num_steps, warp)))
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(3.5 < r < 4.6 for r in ratios), (errors, ratios)


def test_ab2_first_step_is_euler_and_later_steps_extrapolate():
    """Two steps of size 1/2 by hand: x1 = x0 + h f0; x2 = x1 + h (3/2 f1 - 1/2 f0)."""
    calls = []

    def velocity(t, x):
        calls.append(float(t))
        return x + t  # f(0, 1) = 1; f(1/2, 3/2) = 2

    x = adams_bashforth2(velocity, torch.ones(1, dtype=torch.float64), torch.tensor([0.0, 0.5, 1.0]))
    assert calls == [0.0, 0.5]
    assert x.item() == pytest.approx(1.5 + 0.5 * (1.5 * 2.0 - 0.5 * 1.0))


def test_time_grid_power_one_is_uniform_and_higher_powers_shorten_the_last_steps():
    """u = (0, 1/2, 1) with power 2 gives t = 1 - (1 - u)^2 = (0, 3/4, 1) (by hand); an inverted warp
    (denser at t = 0) or a power applied to t instead of 1 - t breaks the middle value."""
    torch.testing.assert_close(time_grid(5, 1.0), torch.linspace(0, 1, 5, dtype=torch.float64))
    torch.testing.assert_close(time_grid(3, 2.0), torch.tensor([0.0, 0.75, 1.0], dtype=torch.float64))
    steps = time_grid(11, 1.25).diff()
    assert (steps > 0).all() and (steps.diff() < 0).all()  # strictly shrinking towards t = 1
    torch.testing.assert_close(time_grid(4, 1.5, t0=0.2, t1=0.8)[[0, -1]], torch.tensor([0.2, 0.8]).double())
    with pytest.raises(ValueError, match="grid_power"):
        time_grid(5, 0.0)


def test_solve_ode_steps_on_the_warped_grid():
    """dx/dt = 2t from x = 1 with ab2 and 3 points. Power 2, grid (0, 3/4, 1) by hand: Euler step adds
    3/4 f(0) = 0, then h = 1/4, r = 1/3: 1/4 ((1 + 1/6) 3/2 - (1/6) 0) = 7/16. The uniform grid gives
    1/2 (3/2 * 1) = 3/4 instead, so a solver that ignores grid_power fails."""

    def velocity(t, x):
        return (2 * t)[:, None].expand_as(x)

    x0 = torch.ones(2, 1, dtype=torch.float64)
    warped = solve_ode(velocity, x0, method="ab2", num_steps=3, grid_power=2.0)
    uniform = solve_ode(velocity, x0, method="ab2", num_steps=3)
    torch.testing.assert_close(warped.x1, torch.full((2, 1), 1 + 7 / 16, dtype=torch.float64))
    torch.testing.assert_close(uniform.x1, torch.full((2, 1), 1.75, dtype=torch.float64))
