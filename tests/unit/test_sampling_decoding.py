"""Decoding generated tokens: key-frame composition, frames-only torsions, designed identities."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mdgen.geometry import torsion_angles
from mdgen.sampling.decoding import decode_windows, frames_only_torsions, identities_to_build
from mdgen.sampling.engine import window_batch
from mdgen.tasks import TaskSpec
from mdgen.trajectory_files import read_trajectory

DEMO_MD = Path(__file__).resolve().parents[2] / "data" / "demo" / "md"


def demo_window(num_frames: int = 4):
    for directory in sorted(DEMO_MD.glob("*")):
        if (directory / "info.json").is_file():
            traj = read_trajectory(directory / f"{directory.name}.pdb", directory / f"{directory.name}.xtc")
            return torch.as_tensor(traj.atom14[:num_frames]), torch.as_tensor(traj.aatype)
    pytest.skip("data/demo/md holds no finished peptide")


def test_decoding_clean_tokens_puts_backbone_back_in_place():
    atom14, aatype = demo_window()
    task = TaskSpec(
        name="interp", num_frames=4, frame_interval_ps=10.0, key_frames=(0, -1), cond_frames=(0, -1)
    )
    batch = window_batch(atom14[None], aatype[None])
    tokens = task.build_inputs(batch).tokens
    decoded = decode_windows(tokens, batch, aatype[None], task, decoder="frames")[0]  # (T, L, 14, 3)
    # CA is the frame origin: exact; N and C come from ideal geometry in the right frame: close.
    torch.testing.assert_close(decoded[:, :, 1], atom14[:, :, 1], atol=1e-3, rtol=0)
    assert (decoded[:, :, [0, 2]] - atom14[:, :, [0, 2]]).norm(dim=-1).max() < 0.3  # MD bond angles vary


def test_frames_only_torsions_keep_given_and_derive_psi_of_generated():
    atom14, aatype = demo_window()
    batch = window_batch(atom14[None], aatype[None])
    num_frames, num_residues = atom14.shape[:2]
    given = torch.zeros(num_frames, num_residues, dtype=torch.bool)
    given[:, 0] = given[:, -1] = True
    frame_aatype = aatype[None, None].expand(1, num_frames, -1)
    torsions = frames_only_torsions(batch["rots"], batch["trans"], batch["torsions"], given, frame_aatype)[0]
    torch.testing.assert_close(torsions[given], batch["torsions"][0][given])
    true_psi, _ = torsion_angles(atom14, aatype[None].expand(num_frames, -1))
    psi_error = torch.atan2(torsions[:, 1:-1, 2, 0], torsions[:, 1:-1, 2, 1]) - torch.atan2(
        true_psi[:, 1:-1, 2, 0], true_psi[:, 1:-1, 2, 1]
    )
    wrapped = torch.remainder(psi_error + math.pi, 2 * math.pi) - math.pi
    # N(i+1) from ideal geometry vs AF2's O-based psi of real MD frames: a few degrees, at most ~20
    assert wrapped.abs().mean() < math.radians(10) and wrapped.abs().max() < math.radians(25)
    norms = torsions[:, 1:-1].norm(dim=-1)  # generated residues: every pair is a valid rotation
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_structures_are_built_with_designed_identities_only_at_designed_residues():
    task = TaskSpec(
        name="inpaint",
        num_frames=4,
        frame_interval_ps=1.0,
        key_frames=(0, -1),
        cond_residues=(0, 3),
        design_residues=(1, 2),
        design=True,
        use_aa_emb=False,
        no_torsion=True,
    )
    given = torch.tensor([[0, 1, 2, 3]])
    sampled = torch.tensor([[9, 8, 7, 6]])  # the model also predicts the flanks (no sequence input)
    assert identities_to_build(given, sampled, task).tolist() == [[0, 8, 7, 3]]
    assert np.array_equal(given.numpy(), [[0, 1, 2, 3]])  # not modified in place
