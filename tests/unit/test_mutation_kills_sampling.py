"""Tests added for mutants of src/mdgen/sampling/upsampling.py that survived `make mutate`
(experiments/tests/README.md), and of src/mdgen/sampling/modes.py: batching when every window is full,
the refusals' texts, and what `describe_task` says is given.
"""

import re

import pytest

from mdgen.sampling.modes import IncompatibleTaskError, describe_task, mode_of_task
from mdgen.sampling.upsampling import UpsamplingLayout, window_batches
from mdgen.tasks import TaskSpec


def test_full_windows_only_give_no_empty_tail_batch():
    """Catches an always-appended tail batch: with no short window it would be an empty batch ([])."""
    layout = UpsamplingLayout(cond_interval=5, window_frames=11, intervals_per_window=2)
    windows = layout.windows(num_coarse_frames=7)  # 6 intervals = 3 full windows
    assert windows == [(0, 2), (2, 2), (4, 2)]
    assert window_batches(windows, layout, batch_size=2) == [[0, 1], [2]]


def test_refusal_names_the_last_frame_of_the_window():
    task = TaskSpec(name="up", num_frames=11, frame_interval_ps=1.0, cond_interval=3)  # 10 = 3 * 3 + 1
    with pytest.raises(IncompatibleTaskError, match="end on frame 10, which is not a given frame") as refused:
        UpsamplingLayout.from_task(task)
    assert "task.num_frames=10 (= n*cond_interval + 1)" in str(refused.value)
    assert str(refused.value).endswith("use only the first 3 coarse intervals of each window")


def _task(**fields) -> TaskSpec:
    return TaskSpec(name="t", num_frames=11, frame_interval_ps=0.1, **fields)


def test_describe_task_says_what_is_given():
    """The text of the refusal when mode= disagrees with the checkpoint (upsample/forward/design)."""
    assert (
        describe_task(_task(cond_frames=(), cond_interval=5)) == "11 frames x 0.1 ps, every 5th frame given"
    )
    assert describe_task(_task(cond_frames=(0,))) == "11 frames x 0.1 ps, given frames [0]"
    design = _task(cond_frames=(), cond_residues=(0, 3), design=True)
    assert describe_task(design).endswith("given residues [0, 3], designed residues all")


def test_unsupported_conditioning_patterns_are_refused_with_their_reason():
    """Each refusal is an IncompatibleTaskError naming the pattern (a TypeError or an empty message
    while building it would reach the user as a traceback or as nothing)."""
    cases = [
        (_task(cond_frames=(), cond_residues=(0, 3)), "conditions on residues [0, 3] without designing"),
        (_task(cond_frames=(1,)), "conditions on frames [1]; the sampling drivers handle frame 0"),
        (_task(cond_frames=(0,), design=True), "designs residues but conditions on no residue"),
    ]
    for task, message in cases:
        with pytest.raises(IncompatibleTaskError, match=re.escape(message)):
            mode_of_task(task)


def test_layout_from_task_keeps_the_conditioning_interval():
    """Catches a layout built without k (cond_interval=None): window lengths and output sizes need it."""
    layout = UpsamplingLayout.from_task(_task(cond_frames=(), cond_interval=5))  # 11 frames = 2 x 5 + 1
    assert (layout.cond_interval, layout.window_frames, layout.intervals_per_window) == (5, 11, 2)
    assert layout.sampled_frames(1) == 6 and layout.num_fine_frames(4) == 16
