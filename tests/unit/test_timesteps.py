"""The one time-axis rule (mdgen.timesteps): frame spacing from time stamps, intervals as whole frames.

Expected values are the spacings the stamps were built with, and hand arithmetic on the ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mdgen.errors import UserError
from mdgen.timesteps import (
    MULTIPLE_TOLERANCE,
    TimeStepError,
    frames_per_interval,
    same_timestep,
    timestep_from_stamps,
)


def test_float32_stamps_far_from_zero_give_the_spacing_they_were_written_with():
    """Catches a step taken from one diff (0.1000061 at t ~ 500 ps) or from float32 arithmetic."""
    stamps = (500.0 + 0.1 * np.arange(200)).astype(np.float32)
    assert timestep_from_stamps(stamps, "a.xtc") == 0.1
    coarse = (1.0e5 + 10.0 * np.arange(50)).astype(np.float32)  # float32 resolution here: 0.0078 ps
    assert timestep_from_stamps(coarse, "b.xtc") == 10.0


@pytest.mark.parametrize(
    "stamps, why",
    [
        ([0.0, 1.0, 2.0, 3.5], "one step 50 % long"),
        ([0.0, 1.0, 2.005, 3.0], "one stamp 0.5 % of a step off (the tolerance is 0.1 %)"),
        ([3.0, 2.0, 1.0, 0.0], "decreasing"),
        ([0.0, 0.0, 0.0], "a frozen clock"),
    ],
)
def test_uneven_or_non_increasing_stamps_raise_a_user_error_naming_the_file(stamps, why):
    with pytest.raises(TimeStepError, match=r"^bad\.xtc: time stamps are not uniformly increasing"):
        timestep_from_stamps(np.array(stamps), "bad.xtc")


def test_jitter_below_the_tolerance_is_accepted_and_one_stamp_is_an_error():
    """Catches a tolerance tightened to exact equality (float32 files would all fail)."""
    assert timestep_from_stamps(np.array([0.0, 1.0, 2.0005, 3.0]), "x.xtc") == 1.0
    with pytest.raises(TimeStepError, match="one.xtc: needs at least 2 frames"):
        timestep_from_stamps(np.array([7.0]), "one.xtc")
    assert issubclass(TimeStepError, UserError)  # the commands print one line and exit 2


@pytest.mark.parametrize(
    "interval, step, frames",
    [(20.0, 10.0, 2), (1.0, 0.1, 10), (10.0, 10.0, 1), (100.0, 0.1, 1000), (10.0005, 10.0, 1)],
)
def test_whole_multiples_become_frame_counts(interval, step, frames):
    """1.0 / 0.1 is 9.999999999999998 in floats: a floor (int()) instead of a rounding gives 9."""
    assert frames_per_interval(interval, step, "x.xtc", "interval_ps") == frames


@pytest.mark.parametrize("interval, step", [(15.0, 10.0), (5.0, 10.0), (10.01, 10.0), (0.25, 0.1)])
def test_intervals_that_are_not_whole_multiples_are_refused(interval, step):
    """(5, 10) catches a stride of 0 passed on; (10.01, 10) catches a tolerance as loose as 1e-3."""
    with pytest.raises(
        TimeStepError, match=rf"^entry AAAA: interval_ps={interval} ps is not a whole multiple"
    ):
        frames_per_interval(interval, step, "entry AAAA", "interval_ps")


def test_a_file_without_time_stamps_or_a_bad_interval_is_named():
    with pytest.raises(TimeStepError, match=r"x\.pdb: has no time stamps"):
        frames_per_interval(10.0, math.nan, "x.pdb", "interval_ps")
    with pytest.raises(TimeStepError, match=r"x\.xtc: lag_ps=-1.0 ps must be a positive"):
        frames_per_interval(-1.0, 1.0, "x.xtc", "lag_ps")


def test_same_timestep_uses_the_multiple_tolerance():
    assert same_timestep(0.1, 0.1 * (1 + 0.5 * MULTIPLE_TOLERANCE))
    assert not same_timestep(0.1, 0.1 * (1 + 2 * MULTIPLE_TOLERANCE))
    assert not same_timestep(10.0, 20.0)
