"""What each task conditions on, as data: a frozen `TaskSpec` and the `TaskInputs` it builds from a batch.

The four MDGen tasks differ only in (METHOD 4.3):
  (a) which tokens are known (frames, every `cond_interval`-th frame, or whole residues),
  (b) the key frames the offsets are taken relative to (frame 0, or frames 0 and T-1),
  (c) whether residue identities are generated (`design`, a Dirichlet simplex next to the tokens),
  (d) the spacing and length of the window (`frame_interval_ps`, `num_frames`).

Everything here is a config value; no residue or frame index is hard-coded. Frame and residue indices
may be negative (Python style: -1 is the last frame / residue of the window).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mdgen.constants import UNKNOWN_AATYPE
from mdgen.interpolant.ode_solvers import ODE_METHODS
from mdgen.tokens import token_width, tokens_from_features, torsion_slice, translation_slice


def _int_tuple(values: Iterable[Any] | None, field: str) -> tuple[int, ...]:
    if values is None:
        return ()
    if isinstance(values, (str, bytes)):
        raise TypeError(f"TaskSpec.{field} must be a list of integers, got the string {values!r}")
    return tuple(int(v) for v in values)


def _normalise_indices(indices: tuple[int, ...], size: int, what: str, task: str) -> list[int]:
    """Python-style indices (negative from the end) -> sorted unique non-negative indices < size."""
    out = set()
    for i in indices:
        j = i + size if i < 0 else i
        if not 0 <= j < size:
            raise ValueError(
                f"task {task!r}: {what} index {i} is out of range for a window of {size} {what}s"
            )
        out.add(j)
    return sorted(out)


@dataclass(frozen=True)
class TaskInputs:
    """Everything the network and the loss need for one batch, built by `TaskSpec.build_inputs`.

    C_cont = 7 * K + 14 continuous channels (K key frames); padding residues have residue_mask 0.
    """

    tokens: Tensor  # (B, T, L, C_cont) clean tokens x1 in model units (quaternion w>=0, translation in
    # units of TaskSpec.translation_scale_A Å, torsions (sin, cos))
    x_cond: Tensor  # (B, T, L, C_cont) tokens where cond_mask == 1, else 0
    cond_mask: Tensor  # (B, T, L) float 0/1: token given to the model
    loss_mask: Tensor  # (B, T, L, C_cont) float 0/1: channels supervised by the velocity loss
    key_rots: Tensor  # (B, K, L, 3, 3) rigids of the key frames (local -> global)
    key_trans: Tensor  # (B, K, L, 3) Å
    aatype: Tensor  # (B, L) int64 model input: 20 where the identity is hidden
    target_aatype: Tensor  # (B, L) int64 true identities (cross-entropy target when designing)
    design_mask: Tensor  # (B, L) bool: residues whose identity the model must generate
    residue_mask: Tensor  # (B, L) float 0/1, 0 = padding
    residue_index: Tensor  # (B, L) int64 position in the chain

    def network_kwargs(self) -> dict[str, Tensor]:
        """Keyword arguments of `MDGenNetwork.forward` besides (x_t, t)."""
        return {
            "x_cond": self.x_cond,
            "cond_mask": self.cond_mask,
            "residue_mask": self.residue_mask,
            "key_rots": self.key_rots,
            "key_trans": self.key_trans,
            "aatype": self.aatype,
            "residue_index": self.residue_index,
        }


@dataclass(frozen=True)
class TaskSpec:
    """One MDGen task. Built by Hydra from `conf/task/*.yaml`; saved inside every checkpoint's config.

    Args:
        name: task name ("forward", "interp", "upsample", "inpaint", or your own).
        num_frames: T, frames per training window.
        frame_interval_ps: trajectory time between consecutive frames of a window, in ps.
        key_frames: frames the offsets are relative to; (0,) or (0, -1). Their rigids go to the IPA trunk.
        cond_frames: frames whose tokens are given, for every residue (forward: (0,); interp: (0, -1)).
        cond_interval: every `cond_interval`-th frame (0, k, 2k, ...) is given as well (upsampling), or None.
        cond_residues: residues whose tokens are given at every frame (inpainting flanks).
        design_residues: residues whose identity is generated (set to 20 in the model input).
        design: append a Dirichlet simplex for residue identities and train a cross-entropy head.
        no_torsion: zero the 14 torsion channels of the tokens (frames-only token; inpainting recipe).
        use_aa_emb: give the network the residue identities; False hides all of them (aatype all 20).
        exclude_conditioned_from_loss: drop given tokens from the velocity loss (the original keeps them).
        clamp_conditioned: at sampling, keep given tokens on their exact interpolant path (the original
            lets the model regenerate them).
        ode_method, ode_num_steps, ode_grid_power: the default sampler of this task (`mdgen.sample` uses it
            unless a `sampler=` is given; `mdgen.sampling.sampler_options.SolverOptions` explains the fields). The
            original samples with dopri5, and its design model with Euler on 50 grid points.
        token_dim: continuous token width 7*K + 14; derived when omitted, checked when given (the model
            config interpolates `${task.token_dim}`).
        num_key_frames: K = len(key_frames); derived when omitted, checked when given.
        translation_scale_A: the model sees offset translations in units of this many Å (METHOD 8.2:
            the original feeds raw Å against unit-variance noise, i.e. 1.0). Tokens returned by
            `MDGenModule.sample` are always in Å.
    """

    name: str
    num_frames: int
    frame_interval_ps: float
    key_frames: tuple[int, ...] = (0,)
    cond_frames: tuple[int, ...] = ()
    cond_interval: int | None = None
    cond_residues: tuple[int, ...] = ()
    design_residues: tuple[int, ...] = ()
    design: bool = False
    no_torsion: bool = False
    use_aa_emb: bool = True
    exclude_conditioned_from_loss: bool = False
    clamp_conditioned: bool = False
    ode_method: str = "dopri5"
    ode_num_steps: int = 50
    ode_grid_power: float = 1.0
    token_dim: int | None = None
    num_key_frames: int | None = None
    translation_scale_A: float = 1.0

    def __post_init__(self) -> None:
        # Hydra hands over ListConfig; keep the spec hashable and free of omegaconf types.
        for field in ("key_frames", "cond_frames", "cond_residues", "design_residues"):
            object.__setattr__(self, field, _int_tuple(getattr(self, field), field))
        object.__setattr__(self, "num_frames", int(self.num_frames))
        object.__setattr__(self, "frame_interval_ps", float(self.frame_interval_ps))
        where = f"task {self.name!r}"
        if self.num_frames < 2:
            raise ValueError(f"{where}: num_frames must be >= 2, got {self.num_frames}")
        if self.frame_interval_ps <= 0:
            raise ValueError(f"{where}: frame_interval_ps must be > 0, got {self.frame_interval_ps}")
        if not self.key_frames:
            raise ValueError(f"{where}: key_frames must name at least one frame")
        if self.cond_interval is not None:
            object.__setattr__(self, "cond_interval", int(self.cond_interval))
            if not 1 <= self.cond_interval < self.num_frames:
                raise ValueError(
                    f"{where}: cond_interval must be in [1, num_frames), got {self.cond_interval} "
                    f"with num_frames {self.num_frames}"
                )
        if not (self.cond_frames or self.cond_interval or self.cond_residues):
            raise ValueError(
                f"{where}: nothing is conditioned; set cond_frames, cond_interval or cond_residues"
            )
        overlap = set(self.cond_residues) & set(self.design_residues)
        if overlap:
            raise ValueError(f"{where}: residues {sorted(overlap)} are both conditioned and designed")
        if self.design_residues and not self.design:
            raise ValueError(f"{where}: design_residues are set but design is false")
        object.__setattr__(self, "translation_scale_A", float(self.translation_scale_A))
        if not self.translation_scale_A > 0:
            raise ValueError(f"{where}: translation_scale_A must be > 0, got {self.translation_scale_A}")
        if self.ode_method not in ODE_METHODS:
            raise ValueError(f"{where}: ode_method must be one of {ODE_METHODS}, got {self.ode_method!r}")
        object.__setattr__(self, "ode_num_steps", int(self.ode_num_steps))
        object.__setattr__(self, "ode_grid_power", float(self.ode_grid_power))
        if self.ode_num_steps < 2:
            raise ValueError(f"{where}: ode_num_steps must be >= 2 (grid points), got {self.ode_num_steps}")
        if not self.ode_grid_power > 0:
            raise ValueError(f"{where}: ode_grid_power must be > 0, got {self.ode_grid_power}")
        self._check_or_derive("num_key_frames", len(self.key_frames))
        self._check_or_derive("token_dim", token_width(len(self.key_frames)))

    def _check_or_derive(self, field: str, expected: int) -> None:
        given = getattr(self, field)
        if given is None:
            object.__setattr__(self, field, expected)
        elif int(given) != expected:
            raise ValueError(
                f"task {self.name!r}: {field}={given} does not match key_frames={list(self.key_frames)} "
                f"(expected {expected})"
            )

    # ---- masks as functions of the window size --------------------------------------------------------

    def key_frame_indices(self, num_frames: int) -> list[int]:
        """Key frames as non-negative indices into a window of `num_frames` frames (order kept)."""
        _normalise_indices(self.key_frames, num_frames, "frame", self.name)  # range check
        order = [k + num_frames if k < 0 else k for k in self.key_frames]
        if len(set(order)) != len(order):
            raise ValueError(f"task {self.name!r}: key_frames {list(self.key_frames)} repeat a frame")
        return order

    def frame_cond_mask(self, num_frames: int) -> Tensor:
        """(T,) bool: frames given for every residue (cond_frames and every cond_interval-th frame)."""
        mask = torch.zeros(num_frames, dtype=torch.bool)
        mask[_normalise_indices(self.cond_frames, num_frames, "frame", self.name)] = True
        if self.cond_interval is not None:
            mask[:: self.cond_interval] = True
        return mask

    def residue_cond_mask(self, num_residues: int) -> Tensor:
        """(L,) bool: residues given at every frame."""
        mask = torch.zeros(num_residues, dtype=torch.bool)
        mask[_normalise_indices(self.cond_residues, num_residues, "residue", self.name)] = True
        return mask

    def design_residue_mask(self, num_residues: int) -> Tensor:
        """(L,) bool: residues whose identity the model generates (all of them without an aa embedding)."""
        if self.design and not self.use_aa_emb:
            return torch.ones(num_residues, dtype=torch.bool)
        mask = torch.zeros(num_residues, dtype=torch.bool)
        mask[_normalise_indices(self.design_residues, num_residues, "residue", self.name)] = True
        return mask

    def hidden_aatype_mask(self, num_residues: int) -> Tensor:
        """(L,) bool: residues whose identity is replaced by 20 in the network input."""
        if not self.use_aa_emb:
            return torch.ones(num_residues, dtype=torch.bool)
        return self.design_residue_mask(num_residues)

    # ---- units of the model's token space -----------------------------------------------------------

    def _scale_translations(self, tokens: Tensor, factor: float) -> Tensor:
        if factor == 1.0:
            return tokens
        scale = torch.ones(tokens.shape[-1], dtype=tokens.dtype, device=tokens.device)
        for key_index in range(len(self.key_frames)):
            scale[translation_slice(key_index)] = factor
        return tokens * scale

    def tokens_in_angstrom(self, model_tokens: Tensor) -> Tensor:
        """(..., C_cont) tokens of the model's space (translations / translation_scale_A) -> translations in Å."""
        return self._scale_translations(model_tokens, self.translation_scale_A)

    def tokens_in_model_units(self, tokens: Tensor) -> Tensor:
        """(..., C_cont) tokens with translations in Å -> the model's space (translations / translation_scale_A)."""
        return self._scale_translations(tokens, 1.0 / self.translation_scale_A)

    # ---- batch -> network inputs ----------------------------------------------------------------------

    def build_inputs(self, batch: Mapping[str, Any]) -> TaskInputs:
        """Tokens, masks and key rigids for a batch (keys of docs/interfaces.md, "Batches").

        Frames that are not given (see `frame_cond_mask`) may hold any placeholder geometry: they only
        reach the clean tokens, which the loss (training) or nothing (sampling) uses. Key frames must
        hold real geometry, since the offsets and the IPA trunk use them.
        """
        rots = batch["rots"]  # (B, T, L, 3, 3)
        trans = batch["trans"]  # (B, T, L, 3) Å
        torsions = batch["torsions"]  # (B, T, L, 7, 2)
        torsion_mask = batch["torsion_mask"].float()  # (B, L, 7)
        residue_mask = batch["residue_mask"].float()  # (B, L)
        aatype = batch["aatype"].long()  # (B, L)
        _, num_frames, num_residues = trans.shape[:3]
        device = trans.device

        key_frames = self.key_frame_indices(num_frames)
        tokens = tokens_from_features(rots, trans, torsions, torsion_mask, key_frames=tuple(key_frames))
        if tokens.shape[-1] != self.token_dim:
            raise RuntimeError(
                f"task {self.name!r}: tokens have {tokens.shape[-1]} channels, expected {self.token_dim}"
            )
        torsion_channels = torsion_slice(len(key_frames))
        offset_width = torsion_channels.start  # 7 per key frame
        if self.no_torsion:
            tokens = torch.cat(
                [tokens[..., :offset_width], torch.zeros_like(tokens[..., torsion_channels])], -1
            )
        tokens = self.tokens_in_model_units(tokens)

        frame_given = self.frame_cond_mask(num_frames).to(device)  # (T,)
        residue_given = self.residue_cond_mask(num_residues).to(device)  # (L,)
        cond_mask = (frame_given[:, None] | residue_given[None, :]).float()  # (T, L)
        cond_mask = cond_mask[None] * residue_mask[:, None, :]  # (B, T, L)

        # METHOD 2.5: offsets supervised at every real residue, torsions where the residue type has them.
        offset_mask = residue_mask[:, None, :, None].expand(-1, num_frames, -1, offset_width)
        torsion_channels = torsion_mask.repeat_interleave(2, dim=-1) * residue_mask[..., None]  # (B, L, 14)
        torsion_loss_mask = torsion_channels[:, None].expand(-1, num_frames, -1, -1)
        loss_mask = torch.cat([offset_mask, torsion_loss_mask], dim=-1)  # (B, T, L, C_cont)
        if self.exclude_conditioned_from_loss:
            loss_mask = loss_mask * (1.0 - cond_mask[..., None])

        hidden = self.hidden_aatype_mask(num_residues).to(device)  # (L,)
        design_mask = self.design_residue_mask(num_residues).to(device)[None].expand_as(aatype)
        return TaskInputs(
            tokens=tokens,
            x_cond=tokens * cond_mask[..., None],
            cond_mask=cond_mask,
            loss_mask=loss_mask.contiguous(),
            key_rots=rots[:, key_frames],
            key_trans=trans[:, key_frames],
            aatype=torch.where(hidden[None], torch.full_like(aatype, UNKNOWN_AATYPE), aatype),
            target_aatype=aatype,
            design_mask=design_mask & (residue_mask > 0),
            residue_mask=residue_mask,
            residue_index=batch["residue_index"].long(),
        )
