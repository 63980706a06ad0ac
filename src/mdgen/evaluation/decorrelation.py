"""Torsion decorrelation curves, relaxation times and dynamical content (METHOD 7.2 and 12).

For a torsion theta with unit vector u(t) = (cos theta, sin theta):

    C(tau) = (<u(t) . u(t + tau)> - |<u>|^2) / (1 - |<u>|^2)

where <u(t) . u(t + tau)> is the non-demeaned lagged mean product divided by the number of pairs
(n - tau), i.e. statsmodels' `acovf(demean=False, adjusted=True)`, here by FFT and pooled over several
trajectories (sums of products over all trajectories / total pairs). C(0) = 1 and C -> 0 once the
torsion has forgotten its start. A torsion that never moves has 1 - |<u>|^2 = 0: its curve is NaN and
its relaxation time is reported as `static`, never as a number.

Relaxation time (METHOD 12): the first lag where C < 1/e, linearly interpolated between sampled lags;
`censored` when C stays above 1/e up to the longest lag computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mdgen.analysis.loading import EvaluationInputError

RELAXATION_LEVEL = float(np.exp(-1.0))
_STATIC_VARIANCE = 1e-8  # 1 - |<u>|^2 below this: the torsion does not fluctuate


def lagged_product_sums(series: np.ndarray, max_lag: int) -> np.ndarray:
    """sum_t x_t x_{t+tau} for tau = 0..max_lag, per column of x (T, F); FFT, zero-padded (no wrap-around)."""
    n = series.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(series, n=size, axis=0)
    sums = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=0)[: max_lag + 1]
    if max_lag >= n:  # lags the trajectory does not reach contribute nothing
        sums[n:] = 0.0
    return sums


def adjusted_autocovariance(series: Sequence[np.ndarray], max_lag: int) -> np.ndarray:
    """Non-demeaned, bias-adjusted autocovariance (max_lag + 1, F) pooled over trajectories (T_i, F).

    For one trajectory this equals statsmodels `acovf(x, demean=False, adjusted=True, fft=True)`.
    Lags no trajectory reaches are NaN.
    """
    sums = sum(lagged_product_sums(np.asarray(x, dtype=np.float64), max_lag) for x in series)
    lags = np.arange(max_lag + 1)
    pairs = sum(np.clip(len(x) - lags, 0, None) for x in series).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / np.where(pairs > 0, pairs, np.nan)[:, None]


def torsion_decorrelation(angles: Sequence[np.ndarray], max_lag: int) -> np.ndarray:
    """C(tau) (max_lag + 1, F) for torsions given as trajectories of angles (T_i, F) rad."""
    angles = [np.asarray(a, dtype=np.float64) for a in angles]
    products = adjusted_autocovariance([np.cos(a) for a in angles], max_lag)
    products += adjusted_autocovariance([np.sin(a) for a in angles], max_lag)
    pooled = np.concatenate(angles, axis=0)
    mean_length_sq = np.cos(pooled).mean(0) ** 2 + np.sin(pooled).mean(0) ** 2  # (F,)
    variance = 1.0 - mean_length_sq
    static = variance < _STATIC_VARIANCE
    curves = (products - mean_length_sq) / np.where(static, np.nan, variance)
    curves[:, static] = np.nan
    return curves


@dataclass(frozen=True)
class DecorrelationCurves:
    """C(tau) of every torsion of one trajectory group, on lags that are whole frames of its timestep."""

    lags_ps: np.ndarray  # (L,) ps, lags_ps[0] = 0
    curves: np.ndarray  # (L, F)

    def at(self, lag_ps: float) -> np.ndarray:
        """C at one lag (F,), which must be a sampled lag."""
        index = np.flatnonzero(np.isclose(self.lags_ps, lag_ps, rtol=1e-6, atol=1e-9))
        if len(index) == 0:
            raise ValueError(f"lag {lag_ps} ps is not a sampled lag (timestep {self.lags_ps[1]} ps)")
        return self.curves[index[0]]


def decorrelation_curves(
    angles: Sequence[np.ndarray], timestep_ps: float, max_lag_ps: float
) -> DecorrelationCurves:
    """Curves up to `max_lag_ps`, limited to half the longest trajectory (longer lags have too few pairs)."""
    longest = max(len(a) for a in angles)
    max_lag = int(min(np.floor(max_lag_ps / timestep_ps + 1e-9), longest // 2))
    if max_lag < 1:
        raise EvaluationInputError(
            f"trajectories of {longest} frames are too short for a decorrelation curve"
        )
    return DecorrelationCurves(np.arange(max_lag + 1) * timestep_ps, torsion_decorrelation(angles, max_lag))


@dataclass(frozen=True)
class RelaxationTime:
    time_ps: float  # NaN unless status == "measured"
    status: str  # "measured" | "censored" (> max_lag_ps) | "static" (the torsion never moves)
    max_lag_ps: float

    def describe(self) -> str:
        if self.status == "measured":
            return f"{self.time_ps:.3g} ps"
        return f">{self.max_lag_ps:g} ps" if self.status == "censored" else "static"


def relaxation_time(curve: np.ndarray, lags_ps: np.ndarray) -> RelaxationTime:
    """First crossing of C below 1/e, linearly interpolated; censored if it never crosses."""
    max_lag_ps = float(lags_ps[-1])
    if np.isnan(curve[0]):
        return RelaxationTime(float("nan"), "static", max_lag_ps)
    below = np.flatnonzero(curve < RELAXATION_LEVEL)
    if len(below) == 0:
        return RelaxationTime(float("nan"), "censored", max_lag_ps)
    k = below[0]  # k >= 1 because C(0) = 1
    fraction = (curve[k - 1] - RELAXATION_LEVEL) / (curve[k - 1] - curve[k])
    return RelaxationTime(
        float(lags_ps[k - 1] + fraction * (lags_ps[k] - lags_ps[k - 1])), "measured", max_lag_ps
    )


def relaxation_times(curves: DecorrelationCurves) -> list[RelaxationTime]:
    return [relaxation_time(curves.curves[:, f], curves.lags_ps) for f in range(curves.curves.shape[1])]


def log_relaxation_correlation(
    reference: Sequence[RelaxationTime], sample: Sequence[RelaxationTime]
) -> tuple[float, int]:
    """Pearson r of log10 relaxation times over torsions measured in both (censored/static excluded), and n."""
    pairs = [
        (np.log10(r.time_ps), np.log10(s.time_ps))
        for r, s in zip(reference, sample, strict=True)
        if r.status == "measured" and s.status == "measured"
    ]
    if len(pairs) < 3:
        return float("nan"), len(pairs)
    x, y = np.asarray(pairs).T
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan"), len(pairs)
    return float(np.corrcoef(x, y)[0, 1]), len(pairs)


def log_spaced_lags(min_lag_ps: float, max_lag_ps: float, timestep_ps: float, count: int) -> np.ndarray:
    """Up to `count` distinct whole-frame lags (ps), log-spaced in [min_lag_ps, max_lag_ps]."""
    frames = np.unique(np.round(np.geomspace(min_lag_ps, max_lag_ps, count) / timestep_ps).astype(np.int64))
    return frames[frames >= 1] * timestep_ps


def dynamical_content(curves: DecorrelationCurves, lags_ps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """D = -dC/dlog10(tau) between consecutive log-spaced lags: (midpoints (K-1,) ps, D (K-1, F))."""
    values = np.stack([curves.at(lag) for lag in lags_ps])  # (K, F)
    log_lags = np.log10(lags_ps)
    content = -np.diff(values, axis=0) / np.diff(log_lags)[:, None]
    return 10 ** (0.5 * (log_lags[1:] + log_lags[:-1])), content
