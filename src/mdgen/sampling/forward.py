"""Forward simulation (METHOD 6.1): independent rollouts of K chained chunks from one start frame.

A chunk is one ODE solve over a whole window of T frames, conditioned on its frame 0. The next chunk
is conditioned on the last generated frame of the previous one. That frame is re-featurised from its
decoded atoms (rigids from N/CA/C, torsions from the atoms), like the original: the next chunk then
starts from exactly the structure that was written to disk, and its omega/phi are the dihedrals the
generated backbone really has (as in training data) rather than the model's free omega/phi outputs,
which place no atom. Each chunk's frame 0 is the model's regeneration of that seed frame, a
near-duplicate, so it is dropped: K chunks give K*(T-1)+1 frames, T apart by `task.frame_interval_ps`.
The first frame written is the given start structure itself.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mdgen.sampling.decoding import WindowFrames
from mdgen.sampling.engine import WindowSampler, noise_seed, output_groups
from mdgen.sampling.inputs import StartStructure
from mdgen.sampling.report import OutputReport, indices_split
from mdgen.sampling.writer import TrajectoryOutput, concatenate_outputs


@dataclass(frozen=True)
class ForwardSettings:
    num_rollouts: int = 1  # independent trajectories per start structure
    num_chunks: int = 1  # K chained windows per rollout
    base_seed: int = 0  # rollout i: base_seed + i, or its batch's first index (`engine.noise_seed`)
    batch_size: int = 1  # rollouts sampled together
    per_rollout_files: bool = False  # NAME_{i}.xtc per rollout instead of one NAME.xtc

    def __post_init__(self) -> None:
        for name in ("num_rollouts", "num_chunks", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def rollout_num_frames(num_chunks: int, window_frames: int) -> int:
    """Frames of a rollout of `num_chunks` windows of `window_frames` after dropping the duplicated seeds."""
    return num_chunks * (window_frames - 1) + 1


def generate_rollouts(
    sampler: WindowSampler,
    start: StartStructure,
    num_rollouts: int,
    num_chunks: int,
    seed: int,
    on_chunk: Callable[[], None] = lambda: None,
) -> np.ndarray:
    """`num_rollouts` rollouts sampled as one batch from one generator seeded with `seed`.

    Only each window's last frame is built into atoms at once (it seeds the next window); the frames in
    between are built together after the last window, which gives the same atoms with one clash-removal
    pass instead of one per window. Returns atom14 (num_rollouts, K*(T-1)+1, L, 14, 3) Å.
    """
    window_frames = sampler.task.num_frames
    generator = sampler.generator(seed)
    aatype = np.broadcast_to(start.aatype, (num_rollouts, *start.aatype.shape))  # (B, L)
    seed_frame = np.broadcast_to(start.atom14, (num_rollouts, *start.atom14.shape))  # (B, L, 14, 3)
    start_frames = seed_frame[:, None].astype(np.float32)  # (B, 1, L, 14, 3) Å
    inner_frames, last_frames = [], []
    for _ in range(num_chunks):
        # Only frame 0 is read by a forward task; the other frames are placeholders (copies).
        window = np.broadcast_to(seed_frame[:, None], (num_rollouts, window_frames, *seed_frame.shape[1:]))
        sampled = sampler.sample_frames(window, aatype, generator).frames  # (B, T, ...)
        # Frame 0 regenerates the seed frame, a near-duplicate: never built.
        inner_frames.append(sampled.frames(slice(1, window_frames - 1)))
        last = sampler.build(sampled.frames(slice(window_frames - 1, window_frames)))  # (B, 1, L, 14, 3)
        last_frames.append(last)
        seed_frame = last[:, 0]
        on_chunk()
    inner = sampler.build(WindowFrames.concatenate(inner_frames))  # (B, K * (T - 2), L, 14, 3)
    chunks = np.split(inner, num_chunks, axis=1)
    # The trajectory starts at the given start structure itself, not at the model's regeneration of it.
    return np.concatenate(
        [start_frames, *(part for chunk, last in zip(chunks, last_frames) for part in (chunk, last))], axis=1
    )


@dataclass(frozen=True)
class ForwardOutputs:
    """Where the rollouts of one start structure go."""

    out_dir: Path
    name: str
    num_rollouts: int
    per_rollout_files: bool

    @property
    def combined(self) -> TrajectoryOutput:
        return TrajectoryOutput(self.out_dir / self.name)

    @property
    def parts_dir(self) -> Path:
        """Rollouts waiting to be concatenated (default mode); removed once NAME.xtc is written."""
        return self.out_dir / f"{self.name}.parts"

    def rollout(self, index: int) -> TrajectoryOutput:
        directory = self.out_dir if self.per_rollout_files else self.parts_dir
        return TrajectoryOutput(directory / f"{self.name}_{index}")

    def pending(self) -> list[int]:
        if not self.per_rollout_files and self.combined.is_finished():
            return []
        return [i for i in range(self.num_rollouts) if not self.rollout(i).is_finished()]

    def files(self) -> list[str]:
        if self.per_rollout_files:
            return [str(self.rollout(i).xtc) for i in range(self.num_rollouts)]
        return [str(self.combined.xtc)]


def run_forward(
    sampler: WindowSampler, starts: Sequence[StartStructure], settings: ForwardSettings, out_dir: Path
) -> list[OutputReport]:
    """Generate and write every start's rollouts, skipping finished ones; one report per start."""
    task = sampler.task
    frames_per_rollout = rollout_num_frames(settings.num_chunks, task.num_frames)
    reports = []
    for start in starts:
        outputs = ForwardOutputs(out_dir, start.name, settings.num_rollouts, settings.per_rollout_files)
        pending = outputs.pending()
        groups = output_groups(pending, settings.num_rollouts, settings.batch_size)
        usage_before = sampler.usage
        with tqdm(total=len(groups) * settings.num_chunks, desc=f"forward {start.name}", unit="chunk") as bar:
            for group in groups:
                rollouts = generate_rollouts(
                    sampler, start, len(group), settings.num_chunks, settings.base_seed + group[0], bar.update
                )
                for index, atom14 in zip(group, rollouts):
                    if index in pending:
                        outputs.rollout(index).write(atom14, start.aatype, task.frame_interval_ps)
        if not settings.per_rollout_files and not outputs.combined.is_finished():
            parts = [outputs.rollout(i) for i in range(settings.num_rollouts)]
            concatenate_outputs(parts, outputs.combined, task.frame_interval_ps)
            shutil.rmtree(outputs.parts_dir)  # only temporary leftovers of interrupted writes remain
        usage = sampler.usage - usage_before
        generated, skipped = indices_split(range(settings.num_rollouts), pending)
        reports.append(
            OutputReport(
                name=start.name,
                files=tuple(outputs.files()),
                generated=generated,
                skipped=skipped,
                generated_frames=len(generated) * frames_per_rollout,
                frame_interval_ps=task.frame_interval_ps,
                nfe=usage.nfe,
                wall_s=usage.wall_s,
                details={
                    "sequence": start.sequence,
                    "start": start.source,
                    "frames_per_rollout": frames_per_rollout,
                    "noise_seeds": [
                        noise_seed(settings.base_seed, i, settings.batch_size)
                        for i in range(settings.num_rollouts)
                    ],
                },
            )
        )
    return reports
