"""Upsampling (METHOD 6.3): fill a coarse trajectory in at the fine interval the model was trained on.

A window of the task has T frames `frame_interval_ps` apart with frames 0, k, 2k, ... given
(k = `task.cond_interval`). When T = n*k + 1, the last frame is given too: a window spans n coarse
intervals, conditioned on coarse frames at BOTH ends, and consecutive windows share one coarse frame,
whose duplicate is dropped. (The original used T = n*k and extrapolated the last k-1 frames of every
window past its last coarse frame; we refuse that layout unless `allow_extrapolation`, and then use
only the first n-1 intervals of each window, dropping the extrapolated tail.)

The last window may cover fewer intervals (r < n) so the whole input is used: it is sampled as a
shorter window of r*k + 1 frames, again conditioned at both ends. Output: one trajectory of
(M - 1)*k + 1 fine frames for M coarse frames. Window w draws its noise as described in
`mdgen.sampling.engine` (outputs = windows, seeds base_seed + w).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mdgen.sampling.engine import WindowSampler
from mdgen.sampling.modes import IncompatibleTaskError
from mdgen.sampling.report import OutputReport
from mdgen.sampling.writer import TrajectoryOutput
from mdgen.tasks import TaskSpec
from mdgen.trajectory_files import Trajectory


@dataclass(frozen=True)
class UpsamplingLayout:
    cond_interval: int  # k: fine frames per coarse interval
    window_frames: int  # T: frames of a full window as sampled
    intervals_per_window: int  # coarse intervals of a full window whose both ends are given

    @classmethod
    def from_task(cls, task: TaskSpec, allow_extrapolation: bool = False) -> UpsamplingLayout:
        if task.cond_interval is None:
            raise IncompatibleTaskError(
                f"task {task.name!r} has no cond_interval; it is not an upsampling task"
            )
        k, frames = task.cond_interval, task.num_frames
        intervals, remainder = divmod(frames - 1, k)
        if remainder and not allow_extrapolation:
            raise IncompatibleTaskError(
                f"task {task.name!r}: windows of {frames} frames with every {k}th frame given end on frame "
                f"{frames - 1}, which is not a given frame, so the last {remainder} frames of every window "
                f"would be extrapolated past its last coarse frame. Train the upsampling model with "
                f"task.num_frames={(frames // k) * k + 1} (= n*cond_interval + 1) so each window ends on a coarse "
                f"frame, or pass allow_extrapolation=true to use only the first {intervals} coarse intervals "
                "of each window"
            )
        return cls(cond_interval=k, window_frames=frames, intervals_per_window=intervals)

    def windows(self, num_coarse_frames: int) -> list[tuple[int, int]]:
        """(first coarse frame, number of intervals) of each window, covering every coarse frame."""
        if num_coarse_frames < 2:
            raise ValueError(f"upsampling needs at least 2 coarse frames, got {num_coarse_frames}")
        n, total = self.intervals_per_window, num_coarse_frames - 1
        return [(first, min(n, total - first)) for first in range(0, total, n)]

    def sampled_frames(self, intervals: int) -> int:
        """Frames of the window sampled for `intervals` coarse intervals (full windows keep the task's T)."""
        return (
            self.window_frames
            if intervals == self.intervals_per_window
            else intervals * self.cond_interval + 1
        )

    def num_fine_frames(self, num_coarse_frames: int) -> int:
        return (num_coarse_frames - 1) * self.cond_interval + 1


def coarse_window(
    coarse_atom14: np.ndarray, first: int, intervals: int, layout: UpsamplingLayout
) -> np.ndarray:
    """(T_w, L, 14, 3) Å: coarse frames first..first+intervals at fine positions 0, k, 2k, ...; every
    other frame holds the preceding coarse frame (a placeholder the task never reads)."""
    k = layout.cond_interval
    frames = layout.sampled_frames(intervals)
    positions = np.minimum(np.arange(frames) // k, intervals)  # coarse frame each fine frame copies
    return coarse_atom14[first + positions]


def run_upsampling(
    sampler: WindowSampler,
    coarse: Trajectory,
    name: str,
    layout: UpsamplingLayout,
    out_dir: Path,
    base_seed: int,
    batch_size: int,
) -> OutputReport:
    """Write `NAME.pdb/.xtc` at the task's fine interval; skipped when already finished."""
    task = sampler.task
    output = TrajectoryOutput(out_dir / name)
    windows = layout.windows(coarse.num_frames)
    usage_before = sampler.usage
    if not output.is_finished():
        kept = [None] * len(windows)  # fine frames of each window, duplicated first frames dropped
        for group in tqdm(window_batches(windows, layout, batch_size), desc=f"upsample {name}", unit="batch"):
            atoms = np.stack([coarse_window(coarse.atom14, *windows[w], layout) for w in group])
            aatype = np.broadcast_to(coarse.aatype, (len(group), coarse.num_residues))
            generated = sampler.generate(atoms, aatype, sampler.generator(base_seed + group[0]))
            for w, atom14 in zip(group, generated.atom14):
                keep = windows[w][1] * layout.cond_interval + 1
                kept[w] = atom14[:keep] if w == 0 else atom14[1:keep]
        fine = np.concatenate(kept, axis=0)  # ((M-1)*k + 1, L, 14, 3) Å
        output.write(fine, coarse.aatype, task.frame_interval_ps)
        generated_frames = len(fine)
    else:
        generated_frames = 0
    usage = sampler.usage - usage_before
    return OutputReport(
        name=name,
        files=(str(output.xtc),),
        generated=(0,) if generated_frames else (),
        skipped=() if generated_frames else (0,),
        generated_frames=generated_frames,
        frame_interval_ps=task.frame_interval_ps,
        nfe=usage.nfe,
        wall_s=usage.wall_s,
        details={
            "coarse_source": coarse.source,
            "coarse_frames": coarse.num_frames,
            "coarse_interval_ps": layout.cond_interval * task.frame_interval_ps,
            "windows": len(windows),
            "intervals_per_window": layout.intervals_per_window,
        },
    )


def window_batches(
    windows: list[tuple[int, int]], layout: UpsamplingLayout, batch_size: int
) -> list[list[int]]:
    """Batches of full windows (they come first), then the short tail window, if any, alone."""
    num_full = sum(1 for _, intervals in windows if intervals == layout.intervals_per_window)
    batches = [list(range(s, min(s + batch_size, num_full))) for s in range(0, num_full, batch_size)]
    return batches + ([list(range(num_full, len(windows)))] if num_full < len(windows) else [])
