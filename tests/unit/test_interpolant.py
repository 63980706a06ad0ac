"""Probability paths: endpoints, velocity = d x_t / dt, masked loss, and the analytic Gaussian flow."""

import math

import pytest
import torch

from mdgen.interpolant import GVPPath, LinearPath, masked_mse, solve_ode

PATHS = [GVPPath(), LinearPath()]


@pytest.mark.parametrize("path", PATHS, ids=type)
def test_path_endpoints_are_noise_then_data(path):
    x0, x1 = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    at_noise = path.sample(x0, x1, torch.zeros(3)).x_t
    at_data = path.sample(x0, x1, torch.ones(3)).x_t
    torch.testing.assert_close(at_noise, x0)
    torch.testing.assert_close(at_data, x1)


@pytest.mark.parametrize("path", PATHS, ids=type)
def test_velocity_matches_finite_difference_of_x_t(path):
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 2, 3, dtype=torch.float64, generator=generator)
    x1 = torch.randn(4, 2, 3, dtype=torch.float64, generator=generator)
    t = torch.tensor([0.1, 0.35, 0.6, 0.9], dtype=torch.float64)  # one time per sample
    h = 1e-6
    finite_difference = (path.sample(x0, x1, t + h).x_t - path.sample(x0, x1, t - h).x_t) / (2 * h)
    torch.testing.assert_close(path.sample(x0, x1, t).velocity, finite_difference, rtol=1e-7, atol=1e-8)


def test_gvp_path_is_variance_preserving():
    t = torch.linspace(0, 1, 11)
    schedule = GVPPath().schedule(t)
    torch.testing.assert_close(schedule.alpha**2 + schedule.sigma**2, torch.ones(11))


def test_masked_mse_averages_only_masked_entries_per_sample():
    pred = torch.zeros(2, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]], [[3.0, 3.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).unsqueeze(-1)  # (B, L, 1) broadcast over channels
    loss = masked_mse(pred, target, mask)
    torch.testing.assert_close(loss, torch.tensor([(1 + 1 + 4 + 4) / 4, 0.0]))


def gaussian_optimal_velocity(path, data_mean, data_std):
    """E[d x_t / dt | x_t] when x1 ~ N(mean, std^2) and x0 ~ N(0, 1) independently (per dimension)."""

    def velocity(t, x):
        s = path.schedule(t)
        alpha, sigma, d_alpha, d_sigma = (v[:, None] for v in (s.alpha, s.sigma, s.d_alpha, s.d_sigma))
        variance = alpha**2 * data_std**2 + sigma**2
        gain = (alpha * d_alpha * data_std**2 + sigma * d_sigma) / variance
        return d_alpha * data_mean + gain * (x - alpha * data_mean)

    return velocity


@pytest.mark.parametrize("path", PATHS, ids=type)
@pytest.mark.parametrize("method", ["dopri5", "heun"])
def test_sampling_the_optimal_gaussian_flow_gives_the_data_distribution(path, method):
    data_mean = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    data_std = torch.tensor([0.5, 3.0, 1.0], dtype=torch.float64)
    noise = torch.randn(4000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    solution = solve_ode(
        gaussian_optimal_velocity(path, data_mean, data_std),
        noise,
        method=method,
        num_steps=200,
        atol=1e-9,
        rtol=1e-9,
    )
    # The Gaussian-to-Gaussian flow is the affine map z -> mean + std * z, sample by sample.
    torch.testing.assert_close(solution.x1, data_mean + data_std * noise, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(solution.x1.mean(0), data_mean, rtol=0, atol=4 * 3.0 / math.sqrt(4000))
    torch.testing.assert_close(solution.x1.std(0), data_std, rtol=0.05, atol=0)
