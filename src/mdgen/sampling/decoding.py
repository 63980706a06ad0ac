"""Generated tokens -> all-atom frames (METHOD 2.6), including tasks trained without torsions.

Offsets are composed with the window's first key frame (frame 0), taken from the input batch, never
from the model's regeneration of it. Torsions come from the tokens, except for frames-only tasks
(`task.no_torsion`, the inpainting/design recipe), whose torsion channels carry no information; there
  - residues/frames the task was given keep the torsions of the input (they are known), and
  - generated residues get omega, phi, psi from their generated backbone (dihedrals across neighbouring
    residue frames; psi as N-CA-C-N(i+1), which AF2's O-based psi approximates within a few degrees)
    and default side-chain rotamers (chi1 = -60°, the most common one, chi2..4 = 180°), so every atom
    is placed consistently with the designed identity.

Two decoders (`mdgen.tokens.DECODERS`) turn the frames and torsions into atoms (`auto`, the sampling
default, takes chain for chains of up to CHAIN_DECODER_MAX_RESIDUES residues and frames beyond):
  chain   one ideal chain built from omega/phi/psi (NeRF) and fitted to the generated frames by least
          squares (`mdgen.geometry.chain_frames_on_frames`): bonds and angles ideal, no chain break;
          with declash (default) frames with a METHOD 12 clash first get their torsions nudged
          until it is gone (`mdgen.sampling.sterics`);
  frames  each residue placed on its own generated frame (the original's; chain breaks follow the
          frames' independent errors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mdgen.geometry import atom14_from_frames, chain_frames_on_frames, dihedral_sin_cos
from mdgen.geometry.backbone import buildable_torsions
from mdgen.tasks import TaskSpec
from mdgen.tokens import DECODERS, check_decoder, features_from_tokens

__all__ = [
    "AUTO",
    "DECODER_CHOICES",
    "DECODERS",
    "DecoderSettings",
    "DecodedWindows",
    "WindowFrames",
    "build_atoms",
    "decode_windows",
    "decode_windows_counted",
    "window_frames",
]

AUTO = "auto"
DECODER_CHOICES = (AUTO, *DECODERS)
# auto: the chain decoder up to this chain length, frames beyond. The chain's torsion errors add up along
# it: round-trip heavy-atom RMSD 0.25 / 0.39 / 0.70 / 1.22 / 2.50 Å at 4 / 8 / 16 / 32 / 64 residues, against
# 0.15-0.17 Å for frames (experiments/quality/decoder.md); clash removal is quadratic in the atoms too.
CHAIN_DECODER_MAX_RESIDUES = 16

_OMEGA, _PHI, _PSI, _CHI1 = 0, 1, 2, 3
_N, _CA, _C = 0, 1, 2  # atom14 slots
DEFAULT_CHI_DEG = (-60.0, 180.0, 180.0, 180.0)


@dataclass(frozen=True)
class DecoderSettings:
    """How generated tokens become atoms.

    decoder: one of DECODER_CHOICES (auto: chain up to CHAIN_DECODER_MAX_RESIDUES residues, else frames).
    declash: clear METHOD 12 clashes by small torsion changes wherever the chain decoder is used; None (the
        default) and True do so, False does not; True with decoder=frames is an error.
    """

    decoder: str = AUTO
    declash: bool | None = None

    def __post_init__(self) -> None:
        if self.decoder != AUTO:
            check_decoder(self.decoder)
        if self.declash and self.decoder == "frames":
            raise ValueError("declash needs the chain decoder (decoder=frames places each residue alone)")

    def decoder_for(self, num_residues: int) -> str:
        if self.decoder != AUTO:
            return self.decoder
        return "chain" if num_residues <= CHAIN_DECODER_MAX_RESIDUES else "frames"

    @property
    def declashes(self) -> bool:
        return self.declash is not False


@dataclass(frozen=True)
class DecodedWindows:
    atom14: torch.Tensor  # (B, T, L, 14, 3) Å
    decoder: str  # the one used (auto resolved)
    frames_declashed: int = 0  # frames whose torsions were changed to clear a clash
    frames_still_clashing: int = 0  # of those, frames not cleared within the step limit (kept as they are)


def decode_windows(
    tokens: torch.Tensor,
    batch: dict[str, torch.Tensor],
    aatype: torch.Tensor,
    task: TaskSpec,
    decoder: str = AUTO,
    declash: bool | None = None,
) -> torch.Tensor:
    """tokens (B, T, L, C_cont), the window batch the tokens were sampled for, aatype (B, L) to build,
    decoder (one of DECODER_CHOICES), declash (see DecoderSettings) -> atom14 (B, T, L, 14, 3) Å."""
    settings = DecoderSettings(decoder, declash)
    return decode_windows_counted(tokens, batch, aatype, task, settings).atom14


def decode_windows_counted(
    tokens: torch.Tensor,
    batch: dict[str, torch.Tensor],
    aatype: torch.Tensor,
    task: TaskSpec,
    settings: DecoderSettings = DecoderSettings(),
) -> DecodedWindows:
    """`decode_windows` with the clash-removal counts."""
    return build_atoms(window_frames(tokens, batch, aatype, task), settings)


@dataclass(frozen=True)
class WindowFrames:
    """Decoded residue frames and torsions of windows, before atoms are built.

    Frames are independent from here on, so any subset of frames, or frames of several windows
    concatenated along T, can be built together (`build_atoms`): forward rollouts build all their
    windows' frames in one call, which clears clashes in one pass instead of one pass per window.
    """

    rots: torch.Tensor  # (B, T, L, 3, 3) global residue frames
    trans: torch.Tensor  # (B, T, L, 3) Å
    torsions: torch.Tensor  # (B, T, L, 7, 2) (sin, cos)
    aatype: torch.Tensor  # (B, L) identities to build
    residue_mask: torch.Tensor  # (B, L) 1 = real residue

    @property
    def num_frames(self) -> int:
        return self.trans.shape[1]

    def frames(self, selection: slice) -> WindowFrames:
        """The frames `selection` (a slice along T) of every window."""
        return WindowFrames(
            self.rots[:, selection],
            self.trans[:, selection],
            self.torsions[:, selection],
            self.aatype,
            self.residue_mask,
        )

    @staticmethod
    def concatenate(parts: list[WindowFrames]) -> WindowFrames:
        """Frames of windows of the same rollouts (same aatype) joined along T."""
        return WindowFrames(
            torch.cat([p.rots for p in parts], dim=1),
            torch.cat([p.trans for p in parts], dim=1),
            torch.cat([p.torsions for p in parts], dim=1),
            parts[0].aatype,
            parts[0].residue_mask,
        )


def window_frames(
    tokens: torch.Tensor, batch: dict[str, torch.Tensor], aatype: torch.Tensor, task: TaskSpec
) -> WindowFrames:
    """tokens (B, T, L, C_cont) sampled for `batch`, aatype (B, L) to build -> global frames and torsions."""
    num_frames = tokens.shape[1]
    rots, trans, torsions = features_from_tokens(tokens, batch["rots"][:, 0], batch["trans"][:, 0])
    if task.no_torsion:
        given = given_token_mask(task, num_frames, tokens.shape[2], tokens.device)  # (T, L)
        frame_aatype = aatype[:, None].expand(-1, num_frames, -1)  # (B, T, L)
        torsions = frames_only_torsions(rots, trans, batch["torsions"], given, frame_aatype)
    return WindowFrames(rots, trans, torsions, aatype, batch["residue_mask"])


def build_atoms(frames: WindowFrames, settings: DecoderSettings = DecoderSettings()) -> DecodedWindows:
    """All-atom frames (B, T, L, 14, 3) Å from decoded frames and torsions, by `settings.decoder`."""
    rots, trans, torsions = frames.rots, frames.trans, frames.torsions
    num_frames = frames.num_frames
    frame_aatype = frames.aatype[:, None].expand(-1, num_frames, -1)  # (B, T, L)
    declashed = still = 0
    decoder = settings.decoder_for(frames.aatype.shape[-1])
    if decoder == "chain":
        torsions = buildable_torsions(torsions, frame_aatype)
        if settings.declashes:
            torsions, declashed, still = _declash(torsions, frames.aatype)
        residue_mask = frames.residue_mask[:, None].expand(-1, num_frames, -1)  # (B, T, L)
        rots, trans, torsions = chain_frames_on_frames(rots, trans, torsions, frame_aatype, residue_mask)
    atom14 = atom14_from_frames(rots, trans, torsions, frame_aatype)
    return DecodedWindows(atom14, decoder, declashed, still)


def _declash(torsions: torch.Tensor, aatype: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """torsions (B, T, L, 7, 2) buildable, aatype (B, L): clear clashes of each sequence's frames."""
    from mdgen.sampling.sterics import remove_clashes  # mdtraj/scipy: only when declashing

    out = torsions.clone()
    declashed = still = 0
    for sequence in torch.unique(aatype, dim=0):
        rows = (aatype == sequence).all(-1)  # (B,)
        frames = torsions[rows].flatten(0, 1)  # (rows * T, L, 7, 2)
        removal = remove_clashes(frames, sequence)
        out[rows] = removal.torsions.unflatten(0, (int(rows.sum()), torsions.shape[1]))
        declashed += removal.clashing_before
        still += removal.clashing_after
    return out, declashed, still


def given_token_mask(
    task: TaskSpec, num_frames: int, num_residues: int, device: torch.device
) -> torch.Tensor:
    """(T, L) bool: tokens the task conditions on (their true geometry was in the batch)."""
    frames = task.frame_cond_mask(num_frames).to(device)
    residues = task.residue_cond_mask(num_residues).to(device)
    return frames[:, None] | residues[None, :]


def frames_only_torsions(
    rots: torch.Tensor,
    trans: torch.Tensor,
    given_torsions: torch.Tensor,
    given: torch.Tensor,
    aatype: torch.Tensor,
) -> torch.Tensor:
    """Torsions (B, T, L, 7, 2) for frames-only tokens: given ones kept, generated ones derived.

    rots (B, T, L, 3, 3), trans (B, T, L, 3) Å: decoded residue frames; given_torsions (B, T, L, 7, 2):
    the input's; given (T, L) bool; aatype (B, T, L) of the residues to build.
    """
    derived = torch.zeros_like(given_torsions)
    chi = torch.tensor([[math.sin(math.radians(d)), math.cos(math.radians(d))] for d in DEFAULT_CHI_DEG])
    derived[..., _CHI1:, :] = chi.to(derived)
    derived[..., :_CHI1, :] = _backbone_torsions_from_frames(rots, trans, aatype)
    return torch.where(given[None, :, :, None, None], given_torsions, derived)


def _backbone_torsions_from_frames(
    rots: torch.Tensor, trans: torch.Tensor, aatype: torch.Tensor
) -> torch.Tensor:
    """(sin, cos) (B, T, L, 3, 2) of omega, phi and psi (N-CA-C-N(i+1)) across the ideal backbones of
    neighbouring frames; residue 0's omega and phi are 0° and the last residue's psi is 180°."""
    placeholder = torch.zeros(*trans.shape[:-1], 7, 2, dtype=trans.dtype, device=trans.device)
    placeholder[..., 1] = 1.0
    backbone = atom14_from_frames(rots, trans, placeholder, aatype)  # N, CA, C do not depend on torsions
    n, ca, c = backbone[..., _N, :], backbone[..., _CA, :], backbone[..., _C, :]
    angles = placeholder[..., :_CHI1, :].clone()  # (B, T, L, 3, 2), all 0°
    prev_ca, prev_c = ca[..., :-1, :], c[..., :-1, :]
    angles[..., 1:, _OMEGA, :] = dihedral_sin_cos(prev_ca, prev_c, n[..., 1:, :], ca[..., 1:, :])
    angles[..., 1:, _PHI, :] = dihedral_sin_cos(prev_c, n[..., 1:, :], ca[..., 1:, :], c[..., 1:, :])
    angles[..., :-1, _PSI, :] = dihedral_sin_cos(n[..., :-1, :], ca[..., :-1, :], prev_c, n[..., 1:, :])
    angles[..., -1, _PSI, :] = torch.tensor([0.0, -1.0], dtype=trans.dtype, device=trans.device)
    return angles


def designed_positions(task: TaskSpec, num_residues: int) -> list[int]:
    """Residues whose identity the task designs (sorted, non-negative): its design_residues, or every
    residue whose identity is generated when none are named."""
    if not task.design:
        return []
    if task.design_residues:
        return sorted({r + num_residues if r < 0 else r for r in task.design_residues})
    return torch.nonzero(task.design_residue_mask(num_residues)).flatten().tolist()


def identities_to_build(given: torch.Tensor, sampled: torch.Tensor, task: TaskSpec) -> torch.Tensor:
    """(B, L) identities to build atoms with: sampled at the designed residues, given elsewhere.

    A design model without a sequence input also predicts the given (flanking) residues; their
    predictions are reported, but the structure keeps their true identities.
    """
    positions = designed_positions(task, given.shape[-1])
    built = given.clone()
    built[:, positions] = sampled[:, positions]
    return built
