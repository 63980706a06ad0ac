"""Run a trained module on windows of atoms: atoms -> batch -> ODE sample -> atoms, with bookkeeping.

`WindowSampler` is the one place that touches the model. Task drivers (forward, transition paths, upsampling,
inpainting) hand it windows of atom14 coordinates whose known frames/residues hold real geometry and get
generated atom14 windows back, decoded relative to the window's first frame (its first key frame),
so consecutive windows share one global coordinate frame.

Randomness: `MDGenModule.sample` draws the initial noise of a whole batch from one `torch.Generator`.
A batch of outputs i0, i0+1, ... therefore uses the generator seeded with `base_seed + i0` (its first
output); with batch_size 1 output i uses exactly `base_seed + i`. Drivers group outputs on a fixed grid
(`output_groups`), so a re-run with the same batch_size regenerates a missing output bit-for-bit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from mdgen.sampling.decoding import (
    DecoderSettings,
    WindowFrames,
    build_atoms,
    identities_to_build,
    window_frames,
)
from mdgen.sampling.sampler_options import SolverOptions
from mdgen.tasks import TaskSpec
from mdgen.tokens import frame_features

if TYPE_CHECKING:  # the module pulls in Lightning; drivers only need its `task` and `sample`
    from mdgen.module import MDGenModule
    from mdgen.sampling.relax import FrameRelaxer  # OpenMM: imported only when relaxing

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("32", "bf16")


def resolve_device(requested: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is an error."""
    requested = str(requested)
    if requested not in DEVICES and not requested.startswith("cuda:"):
        raise ValueError(f"device={requested!r} is not one of {DEVICES} (or cuda:N)")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={requested} was requested, but torch sees no CUDA device")
    return torch.device(requested)


def check_precision(precision: str | int) -> str:
    precision = str(precision)
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {PRECISIONS}")
    return precision


def output_groups(todo: Sequence[int], num_outputs: int, batch_size: int) -> list[list[int]]:
    """Fixed groups [jB, (j+1)B) of output indices that contain at least one index still to do.

    The whole group is generated (same noise as in the first run) and only its unfinished outputs are
    written, so resuming never changes an output's coordinates.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending = set(todo)
    groups = [
        list(range(start, min(start + batch_size, num_outputs)))
        for start in range(0, num_outputs, batch_size)
    ]
    return [group for group in groups if pending & set(group)]


def noise_seed(base_seed: int, index: int, batch_size: int) -> int:
    """Seed of the generator that draws output `index`'s noise: that of the first output of its group."""
    return base_seed + (index // batch_size) * batch_size


@dataclass(frozen=True)
class GeneratedWindows:
    atom14: np.ndarray  # (B, T, L, 14, 3) float32 Å, all-atom frames rebuilt with ideal geometry
    aatype: np.ndarray  # (B, L) int64 identities the atoms were built with (designed residues replaced)
    sampled_aatype: np.ndarray  # (B, L) int64 the model's identities (design: argmax at every generated one)
    aa_probs: np.ndarray | None  # (B, L, 20) final simplex (design only)
    nfe: int  # network evaluations of this ODE solve (shared by the batch)


@dataclass(frozen=True)
class SampledFrames:
    frames: WindowFrames  # decoded frames and torsions of the B windows, atoms not yet built
    sampled_aatype: np.ndarray  # (B, L) int64 the model's identities
    aa_probs: np.ndarray | None  # (B, L, 20) final simplex (design only)
    nfe: int


@dataclass(frozen=True)
class Usage:
    """Running totals of a sampler: ODE function evaluations and sampling wall time (model + decoding)."""

    nfe: int = 0
    wall_s: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.nfe + other.nfe, self.wall_s + other.wall_s)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.nfe - other.nfe, self.wall_s - other.wall_s)


@dataclass(frozen=True)
class DecodingTotals:
    """Frames decoded by a sampler, and how many of them the chain decoder's clash removal changed."""

    frames: int = 0
    chain_frames: int = 0  # decoded by the chain decoder (the rest by frames)
    frames_declashed: int = 0
    frames_still_clashing: int = 0  # declashed frames not cleared within the step limit (kept)

    def __add__(self, other: DecodingTotals) -> DecodingTotals:
        return DecodingTotals(
            self.frames + other.frames,
            self.chain_frames + other.chain_frames,
            self.frames_declashed + other.frames_declashed,
            self.frames_still_clashing + other.frames_still_clashing,
        )


def window_batch(atom14: torch.Tensor, aatype: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch dict of docs/interfaces.md for windows of atoms.

    atom14 (B, T, L, 14, 3) Å with every atom of the residue types present, aatype (B, L). Frames whose
    geometry the task does not read may hold any placeholder.
    """
    batch_size, _, num_residues = atom14.shape[:3]
    features = frame_features(atom14, aatype)
    return {
        "rots": features.rots,  # (B, T, L, 3, 3)
        "trans": features.trans,  # (B, T, L, 3) Å
        "torsions": features.torsions,  # (B, T, L, 7, 2) (sin, cos)
        "torsion_mask": features.torsion_mask.float(),  # (B, L, 7)
        "aatype": aatype.long(),  # (B, L)
        "residue_mask": torch.ones(batch_size, num_residues, device=atom14.device),
        "residue_index": torch.arange(num_residues, device=atom14.device).expand(batch_size, -1),
    }


class WindowSampler:
    """Sample windows with a trained `MDGenModule` on one device at one precision.

    Args:
        module: a trained `MDGenModule` (e.g. from `mdgen.config.load_module`), moved to `device` here.
        solver: ODE integration options.
        device: torch device to run on.
        precision: "32" (float32) or "bf16" (network under bfloat16 autocast; ODE state stays float32).
        decoding: how tokens become atoms (default: auto, i.e. the chain decoder with clash removal for
            peptides, frames for longer chains); see `mdgen.sampling.decoding`.
        relaxer: when given, every decoded frame is minimised with it (its own usage totals; not in
            `usage.wall_s`).
    """

    def __init__(
        self,
        module: MDGenModule,
        solver: SolverOptions,
        device: torch.device,
        precision: str = "32",
        decoding: DecoderSettings | None = None,
        relaxer: FrameRelaxer | None = None,
    ):
        self.module = module.to(device).eval()
        self.solver = solver
        self.device = device
        self.precision = check_precision(precision)
        self.decoding = decoding or DecoderSettings()
        self.decoding_totals = DecodingTotals()
        self.relaxer = relaxer
        self.usage = Usage()  # totals since construction (network + decoding; relaxation apart)

    @property
    def task(self) -> TaskSpec:
        return self.module.task

    def use_task(self, task: TaskSpec) -> None:
        """Sample with `task` instead of the checkpoint's, e.g. with other designed residues.

        Only the masks may differ: the token layout and the design head must be the trained ones.
        """
        trained = self.module.task
        if (task.token_dim, task.design, task.no_torsion) != (
            trained.token_dim,
            trained.design,
            trained.no_torsion,
        ):
            raise ValueError(f"task {task.name!r} has another token layout than the checkpoint's task")
        self.module.task = task

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def generate(
        self,
        atom14: np.ndarray | torch.Tensor,
        aatype: np.ndarray | torch.Tensor,
        generator: torch.Generator,
    ) -> GeneratedWindows:
        """Sample B windows. atom14 (B, T, L, 14, 3) Å with real geometry where the task conditions,
        aatype (B, L). Returns atoms decoded relative to each window's frame 0 (which must be real)."""
        sampled = self.sample_frames(atom14, aatype, generator)
        return GeneratedWindows(
            atom14=self.build(sampled.frames),
            aatype=sampled.frames.aatype.cpu().numpy(),
            sampled_aatype=sampled.sampled_aatype,
            aa_probs=sampled.aa_probs,
            nfe=sampled.nfe,
        )

    @torch.no_grad()
    def sample_frames(
        self,
        atom14: np.ndarray | torch.Tensor,
        aatype: np.ndarray | torch.Tensor,
        generator: torch.Generator,
    ) -> SampledFrames:
        """`generate` up to the decoded frames and torsions; `build` turns (any frames of) them into atoms."""
        # np.array copies: inputs are often read-only broadcast views
        atom14 = torch.as_tensor(np.array(atom14, dtype=np.float32), device=self.device)
        aatype = torch.as_tensor(np.array(aatype, dtype=np.int64), device=self.device)
        batch = window_batch(atom14, aatype)
        start = time.perf_counter()
        with self._autocast():
            result = self.module.sample(batch, generator=generator, **self.solver.as_kwargs())
        built_aatype = identities_to_build(aatype, result.aatype.long(), self.task)  # (B, L)
        frames = window_frames(result.tokens.float(), batch, built_aatype, self.task)
        self._count_time(start, int(result.nfe))
        return SampledFrames(
            frames=frames,
            sampled_aatype=result.aatype.long().cpu().numpy(),
            aa_probs=None if result.aa_probs is None else result.aa_probs.float().cpu().numpy(),
            nfe=int(result.nfe),
        )

    @torch.no_grad()
    def build(self, frames: WindowFrames) -> np.ndarray:
        """Atoms (B, T, L, 14, 3) float32 Å of decoded frames, by this sampler's decoder (then relaxed,
        when relaxing). Frames are independent: build frames of several windows in one call to share
        the clash-removal passes."""
        start = time.perf_counter()
        decoded = build_atoms(frames, self.decoding)
        atom14 = decoded.atom14.cpu().numpy().astype(np.float32)  # (B, T, L, 14, 3) Å
        self._count_time(start, 0)
        num_frames = atom14.shape[0] * atom14.shape[1]
        self.decoding_totals = self.decoding_totals + DecodingTotals(
            num_frames,
            num_frames if decoded.decoder == "chain" else 0,
            decoded.frames_declashed,
            decoded.frames_still_clashing,
        )
        if self.relaxer is not None:
            for row, identities in enumerate(frames.aatype.cpu().numpy()):
                atom14[row] = self.relaxer.relax(atom14[row], identities)
        return atom14

    def _count_time(self, start: float, nfe: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.usage = self.usage + Usage(nfe, time.perf_counter() - start)
