"""Tests added for mutants of the evaluation metric modules that survived `make mutate`
(experiments/tests/README.md): transition selection for paths, the report's relaxation-time text, and
empty histograms.
"""

import numpy as np
import pytest

from mdgen.analysis.bridge import select_transition
from mdgen.evaluation import jsd
from mdgen.evaluation.decorrelation import RelaxationTime


def test_largest_flux_is_found_wherever_it_is():
    """The largest off-diagonal flux is the last candidate here (the old test had it first, so
    `argmax(None)` = 0 passed)."""
    flux = np.array([[0.5, 0.01, 0.02], [0.01, 0.3, 0.03], [0.02, 0.09, 0.1]])
    assert select_transition(flux, rarest=False) == (2, 1)
    assert select_transition(flux, rarest=True) in {(0, 1), (1, 0)}  # 0.01 both ways: first in row order
    assert select_transition(flux, rarest=True) == (0, 1)


def test_min_flux_is_a_strict_threshold_and_one_candidate_is_enough():
    """Catches `>=` for `>` (a flux equal to the threshold is not a transition) and `len == 1` for
    `len == 0` (a single allowed transition raised)."""
    flux = np.array([[0.9, 0.02], [1e-9, 0.8]])
    assert select_transition(flux, rarest=True, min_flux=1e-7) == (0, 1)
    assert select_transition(flux, rarest=False, min_flux=1e-7) == (0, 1)
    with pytest.raises(ValueError, match="no transition with flux above 0.02"):
        select_transition(flux, rarest=True, min_flux=0.02)


def test_relaxation_time_text_in_the_report():
    assert RelaxationTime(123.456, "measured", 1000.0).describe() == "123 ps"
    assert RelaxationTime(float("nan"), "censored", 1000.0).describe() == ">1000 ps"
    assert RelaxationTime(float("nan"), "static", 1000.0).describe() == "static"


def test_an_empty_sample_histogram_is_refused_too():
    """The old test emptied only the reference side; `q.sum() < 0` let an empty sample through (NaN)."""
    with pytest.raises(ValueError, match="cannot compare an empty histogram"):
        jsd.js_distance(np.ones(3), np.zeros(3))
