"""relax=true: restrained amber14/OBC2 minimisation of decoded frames (mdgen.sampling.relax), and its
wiring into WindowSampler. One or two frames per test: OpenMM minimisation costs ~0.05-0.2 s a frame."""

import math
import tempfile
from pathlib import Path
from types import SimpleNamespace

import mdtraj as md
import numpy as np
import pytest
import torch

from mdgen import constants as rc
from mdgen import tokens
from mdgen.analysis.validity import frame_failures
from mdgen.geometry import atom14_from_frames
from mdgen.sampling.decoding import DecoderSettings
from mdgen.sampling.engine import WindowSampler
from mdgen.sampling.relax import FrameRelaxer, RelaxSettings
from mdgen.sampling.sampler_options import SolverOptions
from mdgen.tasks import TaskSpec
from mdgen.tokens import frame_features
from mdgen.trajectory_files import read_trajectory, write_trajectory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trajectories"


def _fixture(name: str):
    traj = read_trajectory(FIXTURES / f"{name}.pdb", FIXTURES / f"{name}.xtc")
    return traj.atom14, traj.aatype


def _failures(atom14: np.ndarray, aatype: np.ndarray) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        pdb, xtc = write_trajectory(Path(tmp) / "t", atom14, aatype, timestep_ps=1.0)
        return frame_failures(md.load(str(xtc), top=str(pdb)))


def _heavy_rmsd(a: np.ndarray, b: np.ndarray, aatype: np.ndarray) -> float:
    mask = rc.ATOM14_MASK[aatype]
    return float(np.sqrt(((a - b)[..., mask, :] ** 2).sum(-1).mean()))


@pytest.fixture(scope="module")
def relaxer() -> FrameRelaxer:
    return FrameRelaxer(RelaxSettings())


def test_relax_moves_an_md_frame_little_and_keeps_the_layout(relaxer):
    atom14, aatype = _fixture("FLRH")
    frame = atom14[:1]  # (1, L, 14, 3)
    relaxed = relaxer.relax(frame, aatype)
    assert relaxed.shape == frame.shape and relaxed.dtype == np.float32
    assert np.all(relaxed[..., ~rc.ATOM14_MASK[aatype], :] == 0.0)  # empty atom14 slots stay empty
    moved = _heavy_rmsd(relaxed, frame, aatype)
    assert 0.01 < moved < 0.35, moved  # measured 0.19 Å on MD frames (restraint 10 kJ/mol/Å²)
    assert relaxer.usage.frames >= 1 and relaxer.usage.failed == 0


def _planted_clash(atom14: np.ndarray, aatype: np.ndarray) -> np.ndarray:
    """Frame 0 rebuilt with the first chi1/chi2 (30°/60° grid, residue order) that makes a clash."""
    features = frame_features(torch.as_tensor(atom14[:1], dtype=torch.float64), torch.as_tensor(aatype))
    candidates = []
    for residue in np.nonzero(rc.CHI_ANGLES_MASK[aatype, 1])[0]:
        for chi1 in range(0, 360, 30):
            for chi2 in range(0, 360, 60):
                torsions = features.torsions.clone()
                for index, degrees in ((3, chi1), (4, chi2)):
                    radians = math.radians(degrees)
                    torsions[0, residue, index] = torch.tensor([math.sin(radians), math.cos(radians)])
                candidates.append(torsions[0])
    torsions = torch.stack(candidates)  # (N, L, 7, 2)
    frames = (
        atom14_from_frames(
            features.rots.expand(len(torsions), -1, -1, -1),
            features.trans.expand(len(torsions), -1, -1),
            torsions,
            torch.as_tensor(aatype)[None],
        )
        .float()
        .numpy()
    )
    clashing = np.nonzero(_failures(frames, aatype)["clash"])[0]
    assert len(clashing), "no chi1/chi2 on the grid makes a clash"
    return frames[clashing[:1]]


def test_relax_removes_a_planted_clash_without_breaking_the_chain(relaxer):
    atom14, aatype = _fixture("RTVD")
    clashing = _planted_clash(atom14, aatype)
    before = _failures(clashing, aatype)
    assert before["clash"][0] and not before["ca_break"][0] and not before["cn_break"][0]
    relaxed = relaxer.relax(clashing, aatype)
    after = _failures(relaxed, aatype)
    assert not (after["clash"][0] or after["ca_break"][0] or after["cn_break"][0])
    assert _heavy_rmsd(relaxed, clashing, aatype) < 0.6  # fixed locally, not rebuilt


class _CleanTokensModule(torch.nn.Module):
    """Stands in for MDGenModule: 'samples' the exact tokens of the window it is given."""

    def __init__(self, task: TaskSpec):
        super().__init__()
        self.task = task

    def sample(self, batch, generator=None, **_):
        result = self.task.build_inputs(batch)
        return SimpleNamespace(tokens=result.tokens, aatype=batch["aatype"], nfe=1, aa_probs=None)


def test_relaxed_chain_decoded_md_is_valid_at_least_at_the_md_rate(relaxer):
    valid_md, valid_relaxed = [], []
    for name in ("FLRH", "IPGD", "RTVD"):
        atom14, aatype = _fixture(name)
        frames = atom14[::10]  # 5 frames per peptide
        decoded = tokens.decode(
            tokens.encode(torch.as_tensor(frames), torch.as_tensor(aatype)), frames[0], aatype, "chain"
        )
        for flags, candidate in ((valid_md, frames), (valid_relaxed, relaxer.relax(decoded.numpy(), aatype))):
            failures = _failures(candidate, aatype)
            flags.append(~(failures["ca_break"] | failures["cn_break"] | failures["clash"]))
    assert np.concatenate(valid_relaxed).mean() >= np.concatenate(valid_md).mean()


def test_window_sampler_decodes_with_the_chosen_decoder_and_relaxes_every_frame():
    atom14, aatype = _fixture("IPGD")
    task = TaskSpec(name="forward", num_frames=2, frame_interval_ps=10.0, cond_frames=(0,))
    relaxer = FrameRelaxer()
    sampler = WindowSampler(
        _CleanTokensModule(task),
        SolverOptions("euler", 2),
        torch.device("cpu"),
        decoding=DecoderSettings("chain", declash=False),
        relaxer=relaxer,
    )
    generated = sampler.generate(atom14[None, :2], aatype[None], sampler.generator(0))
    assert relaxer.usage.frames == 2  # (B = 1) x (T = 2), none dropped
    chain = tokens.decode(
        tokens.encode(torch.as_tensor(atom14[:2]), torch.as_tensor(aatype)), atom14[0], aatype, "chain"
    )
    moved = _heavy_rmsd(generated.atom14[0], chain.numpy(), aatype)
    assert 0.01 < moved < 0.5  # relaxed from the chain decoder's frames, not from the input atoms
    summary = relaxer.usage.summary()
    assert summary["frames"] == 2 and summary["s_per_frame"] > 0
