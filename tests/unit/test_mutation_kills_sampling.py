"""Tests added for mutants of src/mdgen/sampling/upsample.py that survived `make mutate`
(experiments/tests/README.md): batching when every window is full, and the refusal's numbers.
"""

import pytest

from mdgen.sampling.modes import IncompatibleTaskError
from mdgen.sampling.upsample import UpsamplingLayout, window_batches
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
    assert "first 3 coarse intervals" in str(refused.value)
