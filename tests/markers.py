"""Test-selection helpers shared by test modules."""

import pytest


def slow_beyond_first(cases: list) -> list:
    """Parametrize cases with all but the first marked slow: each CLI case starts a Python process
    (~9 s of imports on 2 cores), so `make test` keeps one per behaviour and `make test-full` runs all."""
    return [cases[0], *(pytest.param(*case, marks=pytest.mark.slow) for case in cases[1:])]
