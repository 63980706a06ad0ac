"""Dirichlet flow matching on the K-class probability simplex (Stark et al. 2024), used for sequence design.

The conditional path for class k at time t is Dirichlet(1 + e_k * (alpha(t) - 1)) with
alpha(t) = 1 + t * (alpha_max - 1): uniform at t = 0, concentrating on the vertex e_k as alpha grows.
Its marginal on x_k is Beta(alpha, K - 1), so everything reduces to the regularised incomplete beta
I_x(a, n) with the integer n = K - 1, for which closed forms exist. All maths runs in float64 torch on
the input's device (no numpy, no CPU round trip inside the ODE function) with a per-sample t.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mdgen.interpolant.probability_paths import expand_like

# The small-x form of the c-factor divides by (1 - x)^(K-1) and cancels badly near x = 1; the large-x
# series in (1 - x) converges geometrically there. 0.5 keeps both forms accurate to ~1e-12 relative.
_SERIES_SWITCH_X = 0.5
# Terms of the large-x series: its ratio tends to (1 - x) <= 0.5, so 128 terms reach float64
# precision for alpha up to a few tens (MDGen uses alpha <= 8).
_SERIES_TERMS = 128
_BISECTION_STEPS = 60


def regularized_incomplete_beta(x: Tensor, a: Tensor, n: int) -> Tensor:
    """I_x(a, n) for an integer n >= 1, elementwise over broadcast x in [0, 1] and a > 0.

    Finite sum I_x(a, n) = x^a * sum_{j<n} (a)_j / j! * (1 - x)^j; every term is >= 0, so it is stable.
    """
    j = torch.arange(n, dtype=x.dtype, device=x.device)  # (n,)
    x, a = x.unsqueeze(-1), a.unsqueeze(-1)  # (..., 1)
    log_terms = (
        torch.lgamma(a + j)
        - torch.lgamma(a)
        - torch.lgamma(j + 1)
        + torch.xlogy(a, x)
        + torch.xlogy(j, 1 - x)
    )
    return log_terms.exp().sum(-1)


def dirichlet_c_factor(x: Tensor, a: Tensor, n: int) -> Tensor:
    """c(x, a) = -dI_x(a, n)/da * B(a, n) / ((1 - x)^n * x^(a - 1)), elementwise; float64 in, float64 out.

    The speed of the Dirichlet conditional flow along (e_k - x). Finite on the closed interval [0, 1]
    (c(0) = 0, c(1) = (psi(a + n) - psi(a)) / n), so simplex points on or slightly past the boundary
    are clamped rather than producing NaN.
    """
    x = x.clamp(min=torch.finfo(x.dtype).tiny, max=1.0)
    small = _c_factor_finite_sum(x.clamp(max=_SERIES_SWITCH_X), a, n)
    large = _c_factor_series(x.clamp(min=_SERIES_SWITCH_X), a, n)
    return torch.where(x <= _SERIES_SWITCH_X, small, large)


def _c_factor_finite_sum(x: Tensor, a: Tensor, n: int) -> Tensor:
    """Differentiate the finite sum of I_x(a, n) in a, using d/da log (a)_j = psi(a + j) - psi(a):

    c = -x (1 - x)^(-n) * sum_j w_j (1 - x)^j (log x + psi(a + j) - psi(a)),  w_j = B(a, n) (a)_j / j!.
    """
    j = torch.arange(n, dtype=x.dtype, device=x.device)
    a_j = a.unsqueeze(-1)  # (..., 1) against the term axis
    log_w = math.lgamma(n) + torch.lgamma(a_j + j) - torch.lgamma(a_j + n) - torch.lgamma(j + 1)
    weights = log_w.exp()  # (..., n), depends on a only
    shifts = weights * (torch.digamma(a_j + j) - torch.digamma(a_j))
    y = 1 - x
    return -x * y.pow(-n) * (torch.log(x) * _polynomial(weights, y) + _polynomial(shifts, y))


def _c_factor_series(x: Tensor, a: Tensor, n: int) -> Tensor:
    """Use I_x(a, n) = 1 - I_(1-x)(n, a) and the hypergeometric series of the latter (DLMF 8.17.8):

    c = x / n * sum_k r_k (1 - x)^k (log x + psi(a + n + k) - psi(a)),  r_k = (a + n)_k / (n + 1)_k.
    """
    k = torch.arange(_SERIES_TERMS, dtype=x.dtype, device=x.device)
    a_k = a.unsqueeze(-1)
    log_r = torch.lgamma(a_k + n + k) - torch.lgamma(a_k + n) - torch.lgamma(k + n + 1) + math.lgamma(n + 1)
    ratios = log_r.exp()  # (..., terms), depends on a only
    shifts = ratios * (torch.digamma(a_k + n + k) - torch.digamma(a_k))
    y = 1 - x
    return x / n * (torch.log(x) * _polynomial(ratios, y) + _polynomial(shifts, y))


def _polynomial(coefficients: Tensor, y: Tensor) -> Tensor:
    """sum_k coefficients[..., k] * y^k by Horner's rule: no (..., terms) temporaries of y's size."""
    value = torch.zeros_like(y)
    for k in range(coefficients.shape[-1] - 1, -1, -1):
        value = value * y + coefficients[..., k]
    return value


def _inverse_incomplete_beta(u: Tensor, a: Tensor, n: int) -> Tensor:
    """x with I_x(a, n) = u by bisection (I is increasing in x); fixed step count, so no host sync."""
    low, high = torch.zeros_like(u), torch.ones_like(u)
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        below = regularized_incomplete_beta(middle, a, n) < u
        low, high = torch.where(below, middle, low), torch.where(below, high, middle)
    return 0.5 * (low + high)


class DirichletFlow:
    """Conditional Dirichlet flow for a categorical variable with `num_classes` classes.

    alpha_max: concentration of the true class at t = 1. temperature: softmax temperature for probs.
    """

    def __init__(self, alpha_max: float = 8.0, temperature: float = 1.0, num_classes: int = 20):
        if alpha_max <= 1.0:
            raise ValueError(f"alpha_max must exceed 1, got {alpha_max}")
        self.alpha_max = alpha_max
        self.temperature = temperature
        self.num_classes = num_classes

    @property
    def d_alpha(self) -> float:
        return self.alpha_max - 1.0

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 + t * self.d_alpha

    def sample_uniform(self, shape: tuple[int, ...], generator=None, device=None) -> Tensor:
        """Dirichlet(1, ..., 1) points, the t = 0 prior: (*shape, K) float32."""
        exponentials = torch.empty(*shape, self.num_classes, device=device).exponential_(generator=generator)
        return exponentials / exponentials.sum(-1, keepdim=True)

    def sample_simplex(self, classes: Tensor, t: Tensor, generator=None) -> Tensor:
        """Training-time point on the conditional path: Dirichlet(1 + onehot(classes) * (alpha(t) - 1)).

        classes: (B, ...) int, values >= num_classes (unknown) give the uniform Dirichlet; t: (B,).
        Returns (B, ..., K) float32. Sampled as x_true ~ Beta(alpha, K - 1) (inverse CDF) and the rest
        (1 - x_true) * Dirichlet(1, ..., 1), which is exact and honours the generator.
        """
        known = classes < self.num_classes
        alpha = torch.where(known, expand_like(self.alpha(t), classes), 1.0).double()  # (B, ...)
        true_class = torch.where(known, classes, 0)
        uniform = torch.rand(classes.shape, generator=generator, device=classes.device, dtype=torch.float64)
        x_true = _inverse_incomplete_beta(uniform, alpha, self.num_classes - 1)  # (B, ...)

        is_true = torch.nn.functional.one_hot(true_class, self.num_classes).bool()  # (B, ..., K)
        rest = torch.empty(is_true.shape, device=classes.device, dtype=torch.float64)
        rest = rest.exponential_(generator=generator).masked_fill(is_true, 0.0)
        rest = rest / rest.sum(-1, keepdim=True) * (1.0 - x_true).unsqueeze(-1)
        return torch.where(is_true, x_true.unsqueeze(-1), rest).float()

    def probs_from_logits(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits / self.temperature, dim=-1)

    def velocity(self, x_simplex: Tensor, probs: Tensor, t: Tensor) -> Tensor:
        """Marginal velocity sum_k p_k * c(x_k, alpha) * (e_k - x) * d alpha / dt.

        x_simplex, probs: (B, ..., K); t: (B,) (per-sample times allowed). Returns (B, ..., K) in x's dtype.
        """
        x = x_simplex.double()
        alpha = expand_like(self.alpha(t.double()), x)  # (B, 1, ..., 1)
        weights = probs.double() * dirichlet_c_factor(x, alpha, self.num_classes - 1)  # (B, ..., K)
        velocity = self.d_alpha * (weights - weights.sum(-1, keepdim=True) * x)
        return velocity.to(x_simplex.dtype)
