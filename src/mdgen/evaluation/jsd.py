"""Jensen-Shannon distances between histograms of two samples.

Convention (as in MDGen's tables): scipy's `jensenshannon` with natural log, which is the JS
*distance* = sqrt(JS divergence). It lies in [0, sqrt(ln 2)] ~ [0, 0.833]; 0 means identical histograms.
Square it to get the divergence in nats.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon

MAX_JS_DISTANCE = float(np.sqrt(np.log(2.0)))  # two histograms with disjoint support
ANGLE_RANGE = (-np.pi, np.pi)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """JS distance (natural log) between two histograms of the same shape; counts are normalised here."""
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in size: {p.shape} vs {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("cannot compare an empty histogram")
    return float(jensenshannon(p, q, base=None))


def angle_jsd(reference: np.ndarray, sample: np.ndarray, bins: int) -> float:
    """JS distance of two torsion samples (T,) rad, `bins` bins on [-pi, pi]."""
    p, _ = np.histogram(reference, bins=bins, range=ANGLE_RANGE)
    q, _ = np.histogram(sample, bins=bins, range=ANGLE_RANGE)
    return js_distance(p, q)


def angle_pair_jsd(reference: np.ndarray, sample: np.ndarray, bins: int) -> float:
    """JS distance of two samples of angle pairs (T, 2) rad on a bins x bins grid over [-pi, pi]^2."""
    grid = (ANGLE_RANGE, ANGLE_RANGE)
    p, _, _ = np.histogram2d(reference[:, 0], reference[:, 1], bins=bins, range=grid)
    q, _, _ = np.histogram2d(sample[:, 0], sample[:, 1], bins=bins, range=grid)
    return js_distance(p, q)


def joint_range_jsd(reference: np.ndarray, sample: np.ndarray, bins: int) -> float:
    """JS distance of two samples of unbounded coordinates (T, D), D = 1 or 2, binned over their joint range."""
    reference = np.asarray(reference).reshape(len(reference), -1)
    sample = np.asarray(sample).reshape(len(sample), -1)
    both = np.concatenate([reference, sample])
    edges = [np.linspace(both[:, d].min(), both[:, d].max() + 1e-12, bins + 1) for d in range(both.shape[1])]
    p, _ = np.histogramdd(reference, bins=edges)
    q, _ = np.histogramdd(sample, bins=edges)
    return js_distance(p, q)
