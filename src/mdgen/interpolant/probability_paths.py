"""Affine probability paths x_t = alpha(t) * x1 + sigma(t) * x0 and their velocity targets.

Convention (SiT): t = 0 is noise (x0 ~ N(0, I)), t = 1 is data (x1). Pure torch; any trailing shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PathSample:
    x_t: Tensor  # (B, ...) point on the path at time t
    velocity: Tensor  # (B, ...) d x_t / dt, the regression target of a velocity model


@dataclass(frozen=True)
class Schedule:
    alpha: Tensor  # (B,) weight of the data x1
    sigma: Tensor  # (B,) weight of the noise x0
    d_alpha: Tensor  # (B,) d alpha / dt
    d_sigma: Tensor  # (B,) d sigma / dt


def expand_like(per_sample: Tensor, x: Tensor) -> Tensor:
    """(B,) -> (B, 1, ..., 1) so that it broadcasts against x (B, ...)."""
    return per_sample.reshape(per_sample.shape + (1,) * (x.dim() - per_sample.dim()))


class AffinePath:
    """A path given by its schedule; subclasses define alpha(t) and sigma(t)."""

    def schedule(self, t: Tensor) -> Schedule:  # t: (B,)
        raise NotImplementedError

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> PathSample:
        """x0 noise, x1 data: (B, ...); t: (B,) in [0, 1]."""
        s = self.schedule(t)
        alpha, sigma = expand_like(s.alpha, x1), expand_like(s.sigma, x1)
        d_alpha, d_sigma = expand_like(s.d_alpha, x1), expand_like(s.d_sigma, x1)
        return PathSample(x_t=alpha * x1 + sigma * x0, velocity=d_alpha * x1 + d_sigma * x0)


class GVPPath(AffinePath):
    """Variance-preserving trigonometric path: alpha = sin(pi t / 2), sigma = cos(pi t / 2) (MDGen default)."""

    def schedule(self, t: Tensor) -> Schedule:
        angle = 0.5 * math.pi * t
        return Schedule(
            alpha=torch.sin(angle),
            sigma=torch.cos(angle),
            d_alpha=0.5 * math.pi * torch.cos(angle),
            d_sigma=-0.5 * math.pi * torch.sin(angle),
        )


class LinearPath(AffinePath):
    """Straight line: alpha = t, sigma = 1 - t; the velocity target is x1 - x0."""

    def schedule(self, t: Tensor) -> Schedule:
        return Schedule(alpha=t, sigma=1.0 - t, d_alpha=torch.ones_like(t), d_sigma=-torch.ones_like(t))


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Per-sample mean squared error over the positions where mask > 0.

    pred, target: (B, ...); mask: broadcastable to pred (e.g. (B, T, L, C) or (B, T, L, 1)), 0/1 or weights.
    Returns (B,). A sample with an empty mask contributes 0 instead of NaN.
    """
    mask = mask.to(pred.dtype).expand_as(pred)
    reduce_dims = tuple(range(1, pred.dim()))
    squared_error = (pred - target).square() * mask
    return squared_error.sum(reduce_dims) / mask.sum(reduce_dims).clamp_min(1e-8)
