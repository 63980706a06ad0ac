"""Autocovariance normalisation and relaxation times against analytic answers."""

import numpy as np
import pytest

from mdgen.evaluation.decorrelation import (
    DecorrelationCurves,
    adjusted_autocovariance,
    decorrelation_curves,
    dynamical_content,
    log_relaxation_correlation,
    log_spaced_lags,
    relaxation_time,
    relaxation_times,
)


def test_autocovariance_matches_the_direct_adjusted_sum():
    x = np.random.default_rng(0).normal(size=(50, 2)) + 1.0
    direct = np.array([[np.mean(x[: 50 - k, f] * x[k:, f]) for f in range(2)] for k in range(11)])
    np.testing.assert_allclose(adjusted_autocovariance([x], 10), direct, rtol=1e-10)


def test_autocovariance_pools_trajectories_by_pair_counts():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 1)), rng.normal(size=(12, 1))
    lag = 5
    pooled = adjusted_autocovariance([a, b], 20)
    expected = (np.sum(a[:-lag] * a[lag:]) + np.sum(b[:-lag] * b[lag:])) / (25 + 7)
    assert pooled[lag, 0] == pytest.approx(expected)
    assert np.isfinite(pooled[15, 0])  # only `a` reaches lag 15
    assert pooled[15, 0] == pytest.approx(np.mean(a[:-15] * a[15:]))


def test_rotational_diffusion_relaxes_at_the_analytic_time():
    # theta_t = theta_{t-1} + N(0, s^2): <u> = 0 and C(tau) = exp(-tau s^2 / 2), so C = 1/e at tau = 2 / s^2
    s, step_ps = 0.2, 10.0
    rng = np.random.default_rng(2)
    angles = np.cumsum(s * rng.standard_normal((40_000, 1)), axis=0)
    angles = (angles + np.pi) % (2 * np.pi) - np.pi
    curves = decorrelation_curves([angles], step_ps, max_lag_ps=3000.0)
    expected_ps = 2 / s**2 * step_ps  # 500 ps
    time = relaxation_time(curves.curves[:, 0], curves.lags_ps)
    assert time.status == "measured"
    assert time.time_ps == pytest.approx(expected_ps, rel=0.1)
    assert curves.curves[0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(curves.at(200.0), np.exp(-20 * s**2 / 2), atol=0.05)


def test_static_and_slow_torsions_are_not_given_a_number():
    lags = np.arange(5) * 1.0
    slow = relaxation_time(np.array([1.0, 0.9, 0.8, 0.7, 0.6]), lags)
    static = relaxation_time(np.full(5, np.nan), lags)
    assert (slow.status, slow.describe()) == ("censored", ">4 ps")
    assert static.status == "static" and np.isnan(static.time_ps)
    frozen = decorrelation_curves([np.zeros((20, 1))], 1.0, 5.0)
    assert np.all(np.isnan(frozen.curves))


def test_relaxation_time_interpolates_linearly_between_lags():
    curve = np.array([1.0, 0.6, 0.2])
    time = relaxation_time(curve, np.array([0.0, 2.0, 4.0]))
    assert time.time_ps == pytest.approx(2.0 + 2.0 * (0.6 - np.exp(-1)) / 0.4)


def test_log_relaxation_correlation_uses_only_pairs_measured_in_both():
    lags = np.arange(101) * 1.0
    curves = np.exp(-lags[:, None] / np.array([2.0, 5.0, 10.0, 20.0, 1000.0])[None])
    times = relaxation_times(DecorrelationCurves(lags, curves))
    scaled = relaxation_times(DecorrelationCurves(lags * 3, curves))
    r, n = log_relaxation_correlation(times, scaled)
    assert n == 4  # the 1000 ps torsion is censored at 100 ps
    assert r == pytest.approx(1.0)


def test_dynamical_content_of_an_exponential_peaks_near_its_time_constant():
    lags = np.arange(10_001) * 0.1
    curves = DecorrelationCurves(lags, np.exp(-lags / 10.0)[:, None])
    points = log_spaced_lags(0.1, 1000.0, 0.1, 40)
    midpoints, content = dynamical_content(curves, points)
    peak = midpoints[np.argmax(content[:, 0])]
    assert 5.0 < peak < 20.0
    # integrating D over log10(tau) recovers the decorrelation between the first and last lag
    total = np.exp(-points[0] / 10.0) - np.exp(-points[-1] / 10.0)
    assert np.sum(content[:, 0] * np.diff(np.log10(points))) == pytest.approx(total)
