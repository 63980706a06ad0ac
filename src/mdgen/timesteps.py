"""The time axis of trajectories, one rule each (numpy only, so every layer may import it):

- `timestep_from_stamps`: the frame spacing in ps of a file, from its time stamps (XTC stores them as
  float32: 0.1 ps reads back as 0.1000061 at t ~ 500 ps). The mean spacing rounded to 6 significant
  digits; every step must lie within `STAMP_TOLERANCE` of it (plus the float32 jitter of the stamps).
- `frames_per_interval`: an interval in ps (a stride, a lag, a window spacing, a duration) as a whole
  number n >= 1 of frames of a given spacing; |interval / spacing - n| <= `MULTIPLE_TOLERANCE` * n,
  never silently rounded.
- `same_timestep`: two spacings are the same under the same rule (n = 1).

Errors are `TimeStepError` (a `UserError`) and name the file or entry they concern.
"""

from __future__ import annotations

import math
from os import PathLike

import numpy as np

from mdgen.errors import UserError

STAMP_TOLERANCE = 1e-3  # relative: how far one step may stray from the mean step
# Relative: intervals are config values and spacings are read to ~1e-6 (float32 stamps far from t = 0
# are coarser), so 1e-4 accepts every real multiple and still tells n from n +- 1/2 up to n = 5000.
MULTIPLE_TOLERANCE = 1e-4
_FLOAT32_EPS = float(np.finfo(np.float32).eps)


class TimeStepError(UserError):
    """Time stamps that are not uniform, or an interval that is not a whole number of frames."""


def timestep_from_stamps(time_ps, source: str | PathLike) -> float:
    """Frame spacing in ps (6 significant digits) of time stamps (T,) in ps, T >= 2.

    Raises `TimeStepError` naming `source` for fewer than 2 stamps, or stamps that do not increase by
    one step (within STAMP_TOLERANCE of the mean step, plus the float32 resolution of the stamps)."""
    time = np.asarray(time_ps, dtype=np.float64).reshape(-1)
    if len(time) < 2:
        raise TimeStepError(f"{source}: needs at least 2 frames to define a time step")
    step = float(f"{(time[-1] - time[0]) / (len(time) - 1):.6g}")
    steps = np.diff(time)
    float32_jitter = 4 * _FLOAT32_EPS * float(np.abs(time).max())
    if not step > 0 or float(np.max(np.abs(steps - step))) > STAMP_TOLERANCE * step + float32_jitter:
        raise TimeStepError(
            f"{source}: time stamps are not uniformly increasing (steps from {steps.min():g} to "
            f"{steps.max():g} ps); write the trajectory with its time step"
        )
    return step


def frames_per_interval(interval_ps: float, timestep_ps: float, source: str | PathLike, what: str) -> int:
    """`interval_ps` as a whole number n >= 1 of frames spaced `timestep_ps` (e.g. a stride).

    `what` names the interval (an option such as "interval_ps"), `source` the file or entry whose
    spacing it is; a nan spacing (a file without time stamps) is an error too."""
    if not (math.isfinite(interval_ps) and interval_ps > 0):
        raise TimeStepError(f"{source}: {what}={interval_ps} ps must be a positive number of ps")
    if not (math.isfinite(timestep_ps) and timestep_ps > 0):
        raise TimeStepError(
            f"{source}: has no time stamps (a PDB, a DCD or a single frame), so {what}={interval_ps} ps "
            "cannot be counted in its frames; give a trajectory with time stamps (XTC)"
        )
    ratio = interval_ps / timestep_ps
    frames = round(ratio)
    if frames < 1 or abs(ratio - frames) > MULTIPLE_TOLERANCE * frames:
        raise TimeStepError(
            f"{source}: {what}={interval_ps} ps is not a whole multiple of the frame spacing {timestep_ps:g} ps"
        )
    return int(frames)


def same_timestep(a_ps: float, b_ps: float) -> bool:
    """True when two frame spacings agree within MULTIPLE_TOLERANCE (relative)."""
    return abs(a_ps - b_ps) <= MULTIPLE_TOLERANCE * max(abs(a_ps), abs(b_ps))
