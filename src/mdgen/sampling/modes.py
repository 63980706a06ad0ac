"""Which sampling driver a checkpoint's task supports, read from what the task conditions on.

The task's *structure* decides, not its name (a user may name a task anything):
  residue identities generated (inpainting)              -> "inpaint"
  every cond_interval-th frame given                     -> "upsample"
  first and last frame given, nothing else               -> "interp"
  first frame given, nothing else                        -> "forward"
"""

from __future__ import annotations

from mdgen.errors import UserError, warn_deprecated
from mdgen.tasks import TaskSpec

FORWARD, INTERP, UPSAMPLE, INPAINT = "forward", "interp", "upsample", "inpaint"
SAMPLING_MODES = (FORWARD, INTERP, UPSAMPLE, INPAINT)
# Old names still accepted (one warning line): the inpaint task's sampling mode was called "design".
DEPRECATED_MODES = {"design": INPAINT}


class IncompatibleTaskError(UserError):
    """The checkpoint's task cannot do what the sampling options ask for."""


def mode_of_task(task: TaskSpec) -> str:
    """The sampling mode a task was trained for; raises for conditioning patterns no driver handles."""
    cond_frames = set(_frames(task))
    last = task.num_frames - 1
    if task.design:
        if not task.cond_residues:
            raise IncompatibleTaskError(f"task {task.name!r} designs residues but conditions on no residue")
        return INPAINT
    if task.cond_residues:
        raise IncompatibleTaskError(
            f"task {task.name!r} conditions on residues {list(task.cond_residues)} without designing; "
            "no sampling driver handles inpainting without design"
        )
    if task.cond_interval is not None:
        return UPSAMPLE
    if cond_frames == {0, last}:
        return INTERP
    if cond_frames == {0}:
        return FORWARD
    raise IncompatibleTaskError(
        f"task {task.name!r} conditions on frames {list(task.cond_frames)}; the sampling drivers handle "
        "frame 0 (forward), frames 0 and -1 (interp), every k-th frame (upsample) or residues (inpaint)"
    )


def current_mode(mode: str | None) -> str | None:
    """`mode` under its current name: a deprecated one (`design`) is renamed, with one warning line."""
    if mode in DEPRECATED_MODES:
        warn_deprecated("mdgen.sample", f"mode={mode}", f"mode={DEPRECATED_MODES[mode]}")
        return DEPRECATED_MODES[mode]
    return mode


def _frames(task: TaskSpec) -> list[int]:
    return [f + task.num_frames if f < 0 else f for f in task.cond_frames]


def check_mode(task: TaskSpec, requested: str | None, checkpoint: str) -> str:
    """The checkpoint's mode; `requested` (None = whatever the checkpoint does) must agree with it."""
    trained = mode_of_task(task)
    if requested is not None and requested not in SAMPLING_MODES:
        raise ValueError(f"mode={requested!r} is not one of {SAMPLING_MODES}")
    if requested is not None and requested != trained:
        raise IncompatibleTaskError(
            f"mode={requested} was requested, but checkpoint {checkpoint} was trained for task "
            f"{task.name!r} ({trained}: {describe_task(task)}); use a {requested} checkpoint or drop mode="
        )
    return trained


def describe_task(task: TaskSpec) -> str:
    parts = [f"{task.num_frames} frames x {task.frame_interval_ps:g} ps"]
    if task.cond_frames:
        parts.append(f"given frames {list(task.cond_frames)}")
    if task.cond_interval is not None:
        parts.append(f"every {task.cond_interval}th frame given")
    if task.cond_residues:
        parts.append(f"given residues {list(task.cond_residues)}")
    if task.design:
        parts.append(f"designed residues {list(task.design_residues) or 'all'}")
    return ", ".join(parts)
