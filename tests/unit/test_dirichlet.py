"""Dirichlet flow matching: incomplete beta, c-factor against a high-precision reference, sampling, velocity."""

import pytest
import torch

from mdgen.interpolant import DirichletFlow, dirichlet_c_factor, regularized_incomplete_beta, solve_ode

scipy_special = pytest.importorskip("scipy.special")
scipy_stats = pytest.importorskip("scipy.stats")
mpmath = pytest.importorskip("mpmath")

NUM_CLASSES = 20
N = NUM_CLASSES - 1  # second Beta parameter of the true-class marginal


def reference_c_factor(x: float, a: float, n: int = N) -> float:
    """c = -dI_x(a, n)/da * B(a, n) / ((1 - x)^n x^(a - 1)) by quadrature at 30 digits.

    Uses dI_x(a, n)/da * B(a, n) = int_0^x (log t - E[log T]) t^(a-1) (1-t)^(n-1) dt (E over Beta(a, n)),
    rescaled to [0, 1] on the short side of x so the integrand stays smooth and well scaled.
    """
    with mpmath.workdps(30):
        x, a = mpmath.mpf(x), mpmath.mpf(a)
        mean_log = mpmath.digamma(a) - mpmath.digamma(a + n)
        if x < 0.5:  # t = x u on [0, x]
            integrand = lambda u: (mpmath.log(x * u) - mean_log) * u ** (a - 1) * (1 - x * u) ** (n - 1)  # noqa: E731
            return float(-x * mpmath.quad(integrand, [0, 1]) / (1 - x) ** n)
        y = 1 - x  # t = 1 - y u on [x, 1], where the integral equals minus the one on [0, x]
        integrand = lambda u: (mpmath.log(1 - y * u) - mean_log) * (1 - y * u) ** (a - 1) * u ** (n - 1)  # noqa: E731
        return float(mpmath.quad(integrand, [0, 1]) / x ** (a - 1))


def test_incomplete_beta_matches_scipy():
    x = torch.tensor([0.0, 1e-4, 0.05, 0.3, 0.5, 0.77, 0.999, 1.0], dtype=torch.float64)
    for a in (1.0, 2.5, 8.0):
        ours = regularized_incomplete_beta(x, torch.full_like(x, a), N)
        expected = torch.from_numpy(scipy_special.betainc(a, N, x.numpy()))
        torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alpha", [1.0, 2.7, 5.5, 8.0])
def test_c_factor_matches_high_precision_reference(alpha):
    xs = [1e-6, 0.01, 0.2, 0.45, 0.5, 0.55, 0.8, 0.95, 0.99, 0.999999]
    ours = dirichlet_c_factor(
        torch.tensor(xs, dtype=torch.float64), torch.tensor(alpha, dtype=torch.float64), N
    )
    expected = torch.tensor([reference_c_factor(x, alpha) for x in xs], dtype=torch.float64)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=0)


def test_c_factor_is_finite_on_and_past_the_simplex_boundary():
    x = torch.tensor([-1e-3, 0.0, 1.0, 1.0 + 1e-3], dtype=torch.float64)
    a = torch.tensor([[1.0], [8.0]], dtype=torch.float64)
    c = dirichlet_c_factor(x, a, N)  # (2, 4)
    assert torch.isfinite(c).all()
    torch.testing.assert_close(c[:, 1], torch.zeros(2, dtype=torch.float64))
    at_vertex = (torch.digamma(a + N) - torch.digamma(a)).squeeze(1) / N  # limit x -> 1
    torch.testing.assert_close(c[:, 2], at_vertex)


def test_sample_simplex_has_the_beta_marginal_and_honours_the_generator():
    flow = DirichletFlow(alpha_max=8.0)
    classes = torch.randint(0, NUM_CLASSES, (1, 3000), generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.5])  # alpha = 4.5
    x = flow.sample_simplex(classes, t, generator=torch.Generator().manual_seed(1))  # (1, 3000, 20)
    again = flow.sample_simplex(classes, t, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x, again, rtol=0, atol=0)
    assert x.shape == (1, 3000, NUM_CLASSES) and (x >= 0).all()
    torch.testing.assert_close(x.sum(-1), torch.ones(1, 3000))

    true_class_value = x.gather(-1, classes.unsqueeze(-1)).flatten().numpy()
    assert scipy_stats.kstest(true_class_value, scipy_stats.beta(4.5, N).cdf).pvalue > 1e-3
    # Any other class is marginally Beta(1, alpha + K - 2).
    other = x[0, torch.arange(3000), (classes[0] + 1) % NUM_CLASSES].numpy()
    assert scipy_stats.kstest(other, scipy_stats.beta(1.0, 4.5 + N - 1).cdf).pvalue > 1e-3


def test_unknown_class_and_time_zero_give_the_uniform_dirichlet():
    flow = DirichletFlow()
    generator = torch.Generator().manual_seed(2)
    unknown = flow.sample_simplex(
        torch.full((1, 4000), NUM_CLASSES), torch.tensor([1.0]), generator=generator
    )
    at_zero = flow.sample_simplex(
        torch.zeros(1, 4000, dtype=torch.long), torch.tensor([0.0]), generator=generator
    )
    for x in (unknown, at_zero):
        first = x[0, :, 0].numpy()
        assert scipy_stats.kstest(first, scipy_stats.beta(1.0, N).cdf).pvalue > 1e-3


def test_velocity_is_tangent_to_the_simplex_and_per_sample_in_time():
    flow = DirichletFlow()
    generator = torch.Generator().manual_seed(3)
    x = flow.sample_uniform((3, 5, 4), generator=generator)  # (B, T, L, K)
    probs = flow.probs_from_logits(torch.randn(3, 5, 4, NUM_CLASSES, generator=generator))
    t = torch.tensor([0.1, 0.5, 0.97])
    velocity = flow.velocity(x, probs, t)
    assert velocity.shape == x.shape and velocity.dtype == x.dtype
    torch.testing.assert_close(velocity.sum(-1), torch.zeros(3, 5, 4), atol=1e-6, rtol=0)
    for b in range(3):
        torch.testing.assert_close(
            velocity[b : b + 1], flow.velocity(x[b : b + 1], probs[b : b + 1], t[b : b + 1])
        )


def test_velocity_is_finite_at_a_vertex():
    flow = DirichletFlow()
    vertex = torch.nn.functional.one_hot(torch.tensor([[3, 7]]), NUM_CLASSES).float()  # (1, 2, K)
    probs = torch.full_like(vertex, 1.0 / NUM_CLASSES)
    assert torch.isfinite(flow.velocity(vertex, probs, torch.tensor([1.0]))).all()


def test_flowing_with_a_known_class_transports_uniform_to_the_target_beta():
    """Integrating the conditional velocity (probs = one-hot) from t = 0 to 1 must turn Dirichlet(1, ..., 1)
    into Dirichlet(1 + e_k (alpha_max - 1)): x_k becomes Beta(alpha_max, K - 1). Checks the c-factor's
    normalisation end to end."""
    flow = DirichletFlow(alpha_max=8.0)
    x0 = flow.sample_uniform((1000,), generator=torch.Generator().manual_seed(4)).double()  # (N, K)
    probs = torch.nn.functional.one_hot(torch.full((1000,), 5), NUM_CLASSES).double()
    solution = solve_ode(lambda t, x: flow.velocity(x, probs, t), x0, method="dopri5", atol=1e-7, rtol=1e-5)
    assert scipy_stats.kstest(solution.x1[:, 5].numpy(), scipy_stats.beta(8.0, N).cdf).pvalue > 1e-3
    # Deterministic transport: each sample's CDF value (its quantile) is preserved along the flow.
    start_quantile = scipy_stats.beta(1.0, N).cdf(x0[:, 5].numpy())
    end_quantile = scipy_stats.beta(8.0, N).cdf(solution.x1[:, 5].numpy())
    torch.testing.assert_close(
        torch.from_numpy(end_quantile), torch.from_numpy(start_quantile), atol=1e-4, rtol=0
    )
