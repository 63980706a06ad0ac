"""Batch grid for seeds/resume, rollout chaining without duplicated boundary frames, forward outputs."""

from dataclasses import dataclass

import numpy as np
import torch

from mdgen.sampling.decoding import WindowFrames
from mdgen.sampling.engine import SampledFrames, output_groups
from mdgen.sampling.forward import ForwardOutputs, generate_rollouts, rollout_num_frames
from mdgen.sampling.inputs import StartStructure
from mdgen.tasks import TaskSpec


def test_groups_lie_on_a_fixed_grid_so_resuming_keeps_each_outputs_noise():
    assert output_groups(range(5), 5, 2) == [[0, 1], [2, 3], [4]]
    assert output_groups([3], 5, 2) == [[2, 3]]  # regenerated with its original batch mate
    assert output_groups([], 5, 2) == []
    assert output_groups([1, 4], 5, 1) == [[1], [4]]


@dataclass
class ShiftingSampler:
    """Stands in for WindowSampler: frame t of a window = its frame 0 moved by (t + 1) Å along x."""

    task: TaskSpec
    seen_first_frames: list
    built_frame_counts: list

    def generator(self, seed):
        return seed

    def sample_frames(self, atom14, aatype, generator):
        self.seen_first_frames.append(np.array(atom14[:, 0]))
        batch, num_frames, num_residues = atom14.shape[:3]
        steps = torch.arange(1, num_frames + 1, dtype=torch.float32)[None, :, None]
        trans = torch.zeros(batch, num_frames, num_residues, 3)
        trans[..., 0] = torch.as_tensor(np.array(atom14[:, :1, :, 0, 0])) + steps
        rots = torch.eye(3).expand(batch, num_frames, num_residues, 3, 3)
        frames = WindowFrames(
            rots, trans, torch.zeros(batch, num_frames, num_residues, 7, 2), torch.as_tensor(aatype),
            torch.ones(batch, num_residues),
        )  # fmt: skip
        return SampledFrames(frames, np.array(aatype), None, nfe=1)

    def build(self, frames):
        self.built_frame_counts.append(frames.num_frames)
        atoms = np.zeros((*frames.trans.shape[:3], 14, 3), np.float32)
        atoms[..., 0, 0] = frames.trans[..., 0].numpy()
        return atoms


def test_rollout_chains_chunks_through_the_last_frame_and_drops_the_duplicate():
    task = TaskSpec(name="forward", num_frames=4, frame_interval_ps=10.0, cond_frames=(0,))
    sampler = ShiftingSampler(task, [], [])
    start = StartStructure("X", np.zeros((2, 14, 3), np.float32), np.array([0, 1]), "test")
    rollouts = generate_rollouts(sampler, start, num_rollouts=2, num_chunks=3, seed=0)
    assert rollouts.shape == (2, rollout_num_frames(3, 4), 2, 14, 3) == (2, 10, 2, 14, 3)
    x = rollouts[0, :, 0, 0, 0]
    # frames in order, no repeated frame at the chunk boundaries: x = 0 (start), 2, 3, 4, 6, 7, 8, 10, ...
    np.testing.assert_array_equal(x, [0, 2, 3, 4, 6, 7, 8, 10, 11, 12])
    # chunk 2 starts from the last frame of chunk 1 (x = 4), chunk 3 from the last of chunk 2 (x = 8)
    assert [float(first[0, 0, 0, 0]) for first in sampler.seen_first_frames] == [0.0, 4.0, 8.0]
    # each seed frame is built at once; the 2 inner frames of all 3 windows together at the end
    assert sampler.built_frame_counts == [1, 1, 1, 6]


def test_forward_outputs_track_pending_rollouts(tmp_path):
    combined = ForwardOutputs(tmp_path, "MKWE", num_rollouts=3, per_rollout_files=False)
    assert combined.pending() == [0, 1, 2]
    assert combined.rollout(1).stem == tmp_path / "MKWE.parts" / "MKWE_1"
    per_file = ForwardOutputs(tmp_path, "MKWE", num_rollouts=3, per_rollout_files=True)
    assert per_file.rollout(2).stem == tmp_path / "MKWE_2"
    for path in (per_file.rollout(0).pdb, per_file.rollout(0).xtc):
        path.write_text("x")
    assert per_file.pending() == [1, 2]
