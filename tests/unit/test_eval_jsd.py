"""Jensen-Shannon distances on inputs with known answers."""

import numpy as np
import pytest

from mdgen.evaluation import jsd


def test_identical_samples_have_zero_distance():
    angles = np.random.default_rng(0).uniform(-np.pi, np.pi, (500, 2))
    assert jsd.angle_jsd(angles[:, 0], angles[:, 0], bins=100) == 0.0
    assert jsd.angle_pair_jsd(angles, angles, bins=50) == 0.0
    assert jsd.joint_range_jsd(angles, angles, bins=20) == 0.0


def test_disjoint_samples_reach_the_maximum_distance():
    left = np.full(100, -2.0)
    right = np.full(100, 2.0)
    assert jsd.angle_jsd(left, right, bins=100) == pytest.approx(jsd.MAX_JS_DISTANCE)
    assert jsd.MAX_JS_DISTANCE == pytest.approx(np.sqrt(np.log(2)))


def test_distance_is_the_square_root_of_the_divergence_in_nats():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    m = (p + q) / 2
    kl = lambda a, b: np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / b), 0.0))  # noqa: E731
    divergence = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    assert jsd.js_distance(p * 10, q * 4) == pytest.approx(np.sqrt(divergence))


def test_empty_histogram_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        jsd.js_distance(np.zeros(3), np.ones(3))


def test_joint_range_covers_both_samples():
    # shifted copies of one sample share no bins of the joint range only if the shift exceeds the spread
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 1))
    near = jsd.joint_range_jsd(x, x + 0.1, bins=50)
    far = jsd.joint_range_jsd(x, x + 20.0, bins=50)
    assert 0 < near < 0.2
    assert far == pytest.approx(jsd.MAX_JS_DISTANCE)
