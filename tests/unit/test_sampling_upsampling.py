"""Upsampling layout: windows conditioned at both ends, overlap by one coarse frame, full coverage."""

import numpy as np
import pytest

from mdgen.sampling.modes import IncompatibleTaskError
from mdgen.sampling.upsampling import UpsamplingLayout, coarse_window, window_batches
from mdgen.tasks import TaskSpec


def upsample_task(num_frames: int, cond_interval: int) -> TaskSpec:
    return TaskSpec(
        name="upsample",
        num_frames=num_frames,
        frame_interval_ps=0.1,
        cond_frames=(0,),
        cond_interval=cond_interval,
    )


def test_window_ending_on_a_coarse_frame_spans_n_intervals():
    layout = UpsamplingLayout.from_task(upsample_task(num_frames=2 * 3 + 1, cond_interval=3))
    assert layout.intervals_per_window == 2
    assert layout.window_frames == 7


def test_window_not_ending_on_a_coarse_frame_is_refused_with_the_fix():
    with pytest.raises(IncompatibleTaskError, match=r"task.num_frames=10 .*allow_extrapolation=true"):
        UpsamplingLayout.from_task(upsample_task(num_frames=9, cond_interval=3))


def test_allow_extrapolation_uses_the_given_intervals_only():
    layout = UpsamplingLayout.from_task(
        upsample_task(num_frames=9, cond_interval=3), allow_extrapolation=True
    )
    assert layout.intervals_per_window == 2  # frames 0, 3, 6 given; 7, 8 extrapolated and dropped
    assert layout.sampled_frames(2) == 9  # full windows keep the trained length


@pytest.mark.parametrize("num_coarse", [2, 3, 5, 6, 9])
def test_windows_cover_every_coarse_interval_once(num_coarse):
    layout = UpsamplingLayout(cond_interval=3, window_frames=7, intervals_per_window=2)
    windows = layout.windows(num_coarse)
    firsts = [first for first, _ in windows]
    assert firsts == list(range(0, num_coarse - 1, 2))
    assert sum(intervals for _, intervals in windows) == num_coarse - 1
    kept = sum(intervals * 3 + 1 for _, intervals in windows) - (len(windows) - 1)  # shared frames dropped
    assert kept == layout.num_fine_frames(num_coarse) == (num_coarse - 1) * 3 + 1


def test_coarse_frames_sit_at_every_kth_position_including_both_ends():
    layout = UpsamplingLayout(cond_interval=3, window_frames=7, intervals_per_window=2)
    coarse = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones((5, 2, 14, 3), np.float32)
    window = coarse_window(coarse, first=2, intervals=2, layout=layout)
    assert window.shape == (7, 2, 14, 3)
    assert [window[p, 0, 0, 0] for p in (0, 3, 6)] == [2.0, 3.0, 4.0]
    tail = coarse_window(coarse, first=3, intervals=1, layout=layout)  # a short window: 1*3 + 1 frames
    assert tail.shape[0] == 4 and tail[0, 0, 0, 0] == 3.0 and tail[-1, 0, 0, 0] == 4.0


def test_short_tail_window_is_batched_alone():
    layout = UpsamplingLayout(cond_interval=3, window_frames=7, intervals_per_window=2)
    windows = layout.windows(8)  # 7 intervals: 2, 2, 2, 1
    assert window_batches(windows, layout, batch_size=2) == [[0, 1], [2], [3]]
