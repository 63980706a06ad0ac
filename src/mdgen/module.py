"""The LightningModule: training/validation loop, loss, logging, optimizers and ODE sampling.

It owns no maths of its own: tokens and masks come from the task (`mdgen.tasks.TaskSpec`), the
probability path and the Dirichlet flow from `mdgen.interpolant`, the velocity from the network
(`mdgen.model.MDGenNetwork`). EMA and throughput logging are callbacks (`mdgen.callbacks`).

Randomness is explicit: training noise (flow time s, x0 ~ N(0, I), Dirichlet simplex) comes from a
module-owned generator seeded with `seed + global_rank` whose state is saved in the checkpoint, so a
resumed run continues the same noise stream. Validation noise is drawn per window from a generator
seeded by (seed, entry name, start frame, first residue), the same every epoch and whichever batch or
rank the window lands in: the validation loss of two epochs differs only through the weights, and it
does not depend on the number of devices (when the validation windows divide evenly over them: a
DistributedSampler pads the last shard with repeated windows).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mdgen.constants import NUM_AMINO_ACIDS
from mdgen.errors import UserError
from mdgen.interpolant import masked_mse, solve_ode
from mdgen.tasks import TaskInputs, TaskSpec

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1
CHECKPOINT_KEY = "mdgen"  # checkpoint[CHECKPOINT_KEY] = {"format_version", "config", "task"}
_NOISE_STATE_KEY = "mdgen_train_noise_state"
_VALIDATION_SEED_OFFSET = 7919  # keeps the validation noise stream apart from the training one


@dataclass(frozen=True)
class SampleResult:
    """Output of `MDGenModule.sample`."""

    tokens: Tensor  # (B, T, L, C_cont) generated tokens (offsets quaternion + Å, torsions (sin, cos))
    aatype: Tensor  # (B, L) int64: designed identities (argmax of the final simplex) or the given ones
    nfe: int  # network evaluations used by the ODE solver
    aa_probs: Tensor | None = None  # (B, L, 20) final simplex averaged over frames, when designing


@dataclass(frozen=True)
class LossTerms:
    loss: Tensor  # () total loss that is back-propagated
    velocity_mse: Tensor  # () masked MSE of the continuous velocity, mean over samples
    sequence_ce: Tensor | None  # () cross-entropy of residue identities (design only)
    design_recovery: Tensor | None  # () argmax accuracy on the designed residues (design only)
    num_frames: int  # B * T trajectory frames in the batch (throughput)


def validation_item_seed(seed: int, name: str, frame_start: int, first_residue: int) -> int:
    """Seed of one validation window's noise: a well-mixed function of the run seed and the window."""
    keys = [seed % 2**32, _VALIDATION_SEED_OFFSET, zlib.crc32(name.encode()), frame_start, first_residue]
    return int(np.random.SeedSequence(keys).generate_state(1, dtype=np.uint64)[0] >> 1)


class WarmupThenDecay:
    """LR multiplier: linear warm-up over `warmup_steps`, then constant or cosine decay to `min_lr_ratio`.

    A picklable callable for `torch.optim.lr_scheduler.LambdaLR` (called with the optimizer step).
    """

    def __init__(
        self,
        warmup_steps: int = 0,
        total_steps: int | None = None,
        decay: str = "constant",
        min_lr_ratio: float = 0.0,
    ):
        if decay not in ("constant", "cosine"):
            raise UserError(f"scheduler.decay must be 'constant' or 'cosine', got {decay!r}")
        if decay == "cosine" and (total_steps is None or total_steps < 1):
            raise UserError(
                f"a cosine learning-rate schedule needs trainer.max_steps > 0 (its total_steps), got {total_steps}"
            )
        if decay == "cosine" and total_steps <= warmup_steps:
            # A short run (trainer.max_steps=5 of a demo experiment) should just work: shrink the warm-up.
            shortened = total_steps // 10
            log.warning(
                "scheduler.warmup_steps=%d does not fit in total_steps=%d (trainer.max_steps): warm-up "
                "shortened to %d steps",
                warmup_steps,
                total_steps,
                shortened,
            )
            warmup_steps = shortened
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.decay, self.min_lr_ratio = decay, min_lr_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.decay == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_schedule(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int = 0,
    total_steps: int | None = None,
    decay: str = "constant",
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up + constant/cosine schedule, stepped once per optimizer step (`conf/scheduler/*.yaml`)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupThenDecay(warmup_steps, total_steps, decay, min_lr_ratio)
    )


class MDGenModule(pl.LightningModule):
    """Trains `network` to predict the interpolant velocity of task tokens, and samples with an ODE.

    Args:
        network: `MDGenNetwork` (built), width matching `task.token_dim` (+20 simplex channels if design).
        interpolant_path: `GVPPath` or `LinearPath`: `.sample(x0, x1, t) -> PathSample(x_t, velocity)`.
        task: `TaskSpec` deciding tokens, masks and key frames.
        optimizer: partial of a torch optimizer, called with the parameters.
        scheduler: partial of an LR scheduler, called with the optimizer and stepped every optimizer step;
            None for a constant learning rate.
        dirichlet: `DirichletFlow` for the residue-identity simplex; required iff `task.design`.
        discrete_loss_weight: w in loss = (1 - w) * MSE + w * CE when designing (0.5 in the original).
        compile_network: `torch.compile` the network in place (state-dict keys unchanged).
        seed: base seed of the training noise generator (rank r uses seed + r).
        run_config: the resolved run configuration as a plain dict; saved inside every checkpoint so
            that `mdgen.config.load_module` can rebuild the module from the checkpoint alone.
    """

    def __init__(
        self,
        network: nn.Module,
        interpolant_path: Any,
        task: TaskSpec,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        dirichlet: Any | None = None,
        discrete_loss_weight: float = 0.5,
        compile_network: bool = False,
        seed: int = 0,
        run_config: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        if task.design and dirichlet is None:
            raise ValueError(f"task {task.name!r} designs residue identities and needs a DirichletFlow")
        if not 0.0 <= discrete_loss_weight <= 1.0:
            raise ValueError(f"discrete_loss_weight must be in [0, 1], got {discrete_loss_weight}")
        self.network = network
        self.path = interpolant_path
        self.task = task
        self.dirichlet = dirichlet if task.design else None
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.discrete_loss_weight = discrete_loss_weight
        self.seed = int(seed)
        self.run_config = dict(run_config) if run_config is not None else None
        self._train_noise: torch.Generator | None = None
        self._pending_noise_state: Tensor | None = None
        self.last_saved_step: int | None = None  # global step of the latest checkpoint written
        if compile_network:
            self.network.compile()

    # ---- loss ----------------------------------------------------------------------------------------

    def network_input(self, x_cont: Tensor, simplex: Tensor | None) -> Tensor:
        """(B, T, L, C_cont) [+ simplex (B, T, L, 20)] -> the network's (B, T, L, C) input."""
        return x_cont if simplex is None else torch.cat([x_cont, simplex], dim=-1)

    def compute_loss(
        self,
        batch: Mapping[str, Any],
        generator: torch.Generator | Sequence[torch.Generator] | None,
    ) -> LossTerms:
        """Flow-matching loss of one batch (METHOD 4.2, 4.4): per-sample masked MSE, then the batch mean.

        `generator`: one for the whole batch (training), or one per sample (validation,
        `validation_generators`), which then draws that sample's noise alone, at its own length.
        """
        inputs = self.task.build_inputs(batch)
        x1 = inputs.tokens  # (B, T, L, C_cont)
        batch_size, num_frames = x1.shape[:2]
        t, x0, simplex = self._draw_noise(inputs, generator)  # (B,), (B, T, L, C_cont), (B, L, 20) | None
        path_sample = self.path.sample(x0, x1, t)
        if simplex is not None:
            # One simplex point per residue, shared by every frame (METHOD 4.4).
            simplex = simplex[:, None].expand(-1, num_frames, -1, -1)
        output = self.network(self.network_input(path_sample.x_t, simplex), t, **inputs.network_kwargs())
        velocity = output.velocity[..., : x1.shape[-1]]
        velocity_mse = masked_mse(velocity, path_sample.velocity, inputs.loss_mask).mean()

        if self.dirichlet is None:
            return LossTerms(velocity_mse, velocity_mse, None, None, batch_size * num_frames)
        # The network's last 20 output channels are per-frame identity logits (METHOD 3.6).
        sequence_ce, recovery = self._sequence_terms(output.velocity[..., x1.shape[-1] :], inputs)
        w = self.discrete_loss_weight
        return LossTerms(
            (1 - w) * velocity_mse + w * sequence_ce,
            velocity_mse,
            sequence_ce,
            recovery,
            batch_size * num_frames,
        )

    def _draw_noise(
        self, inputs: TaskInputs, generator: torch.Generator | Sequence[torch.Generator] | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Flow time t (B,), x0 (B, T, L, C_cont) and the Dirichlet simplex (B, L, 20) (None unless
        designing), drawn in this order from one generator, or sample by sample from one each."""
        x1 = inputs.tokens
        device = x1.device
        if generator is None or isinstance(generator, torch.Generator):
            t = torch.rand(x1.shape[0], generator=generator, device=device)
            x0 = torch.randn(x1.shape, generator=generator, device=device)
            simplex = None
            if self.dirichlet is not None:
                simplex = self.dirichlet.sample_simplex(inputs.target_aatype, t, generator=generator)
            return t, x0, simplex
        if len(generator) != x1.shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {x1.shape[0]}")
        t = torch.empty(x1.shape[0], device=device)
        x0 = torch.zeros_like(x1)  # padded residues keep 0: they are masked everywhere
        simplex = None
        if self.dirichlet is not None:
            simplex = torch.full(
                (*x1.shape[:1], x1.shape[2], NUM_AMINO_ACIDS), 1.0 / NUM_AMINO_ACIDS, device=device
            )
        lengths = inputs.residue_mask.sum(-1).long().tolist()  # real residues; padding comes last
        for index, (item_generator, length) in enumerate(zip(generator, lengths, strict=True)):
            t[index] = torch.rand(1, generator=item_generator, device=device)[0]
            x0[index, :, :length] = torch.randn(
                (x1.shape[1], length, x1.shape[3]), generator=item_generator, device=device
            )
            if simplex is not None:
                simplex[index, :length] = self.dirichlet.sample_simplex(
                    inputs.target_aatype[index : index + 1, :length],
                    t[index : index + 1],
                    generator=item_generator,
                )[0]
        return t, x0, simplex

    @staticmethod
    def _sequence_terms(frame_logits: Tensor, inputs: TaskInputs) -> tuple[Tensor, Tensor]:
        """Cross-entropy over every frame of every real residue (METHOD 4.4), and argmax recovery of the
        frame-averaged logits on the designed residues. frame_logits: (B, T, L, 20)."""
        num_frames = frame_logits.shape[1]
        target = inputs.target_aatype.clamp(max=NUM_AMINO_ACIDS - 1)  # (B, L); unknown residues get weight 0
        weights = inputs.residue_mask * (inputs.target_aatype < NUM_AMINO_ACIDS)  # (B, L)
        ce = F.cross_entropy(
            frame_logits.float().flatten(0, 2),
            target[:, None].expand(-1, num_frames, -1).flatten(),
            reduction="none",
        )  # (B * T * L,)
        weights = weights[:, None].expand(-1, num_frames, -1).flatten()
        ce = (ce * weights).sum() / weights.sum().clamp_min(1.0)
        correct = (frame_logits.mean(dim=1).argmax(-1) == inputs.target_aatype) & inputs.design_mask
        recovery = correct.sum() / inputs.design_mask.sum().clamp_min(1)
        return ce, recovery.float()

    # ---- Lightning hooks -----------------------------------------------------------------------------

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        terms = self.compute_loss(batch, self._training_generator())
        self._log_terms("train", terms, batch_size=len(batch["aatype"]))
        return terms.loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        terms = self.compute_loss(batch, self.validation_generators(batch))
        self._log_terms("val", terms, batch_size=len(batch["aatype"]))

    def validation_generators(self, batch: Mapping[str, Any]) -> list[torch.Generator]:
        """One generator per window, seeded by the window itself (entry name, start frame, first residue),
        so its noise is the same in any batch, on any rank, in every epoch."""
        names, starts = batch["name"], batch["frame_start"].tolist()
        first_residues = batch["residue_index"][:, 0].tolist()
        return [
            torch.Generator(device=self.device).manual_seed(
                validation_item_seed(self.seed, name, int(start), int(first))
            )
            for name, start, first in zip(names, starts, first_residues, strict=True)
        ]

    def _log_terms(self, stage: str, terms: LossTerms, batch_size: int) -> None:
        on_step = stage == "train"
        sync = stage == "val"
        self.log(
            f"{stage}/loss",
            terms.loss,
            batch_size=batch_size,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            sync_dist=sync,
        )
        if terms.sequence_ce is not None:
            self.log(
                f"{stage}/velocity_mse",
                terms.velocity_mse,
                batch_size=batch_size,
                on_step=on_step,
                on_epoch=True,
                sync_dist=sync,
            )
            self.log(
                f"{stage}/sequence_ce",
                terms.sequence_ce,
                batch_size=batch_size,
                on_step=on_step,
                on_epoch=True,
                sync_dist=sync,
            )
            self.log(
                f"{stage}/design_recovery",
                terms.design_recovery,
                batch_size=batch_size,
                on_step=on_step,
                on_epoch=True,
                sync_dist=sync,
            )

    def _training_generator(self) -> torch.Generator:
        if self._train_noise is None or self._train_noise.device != self.device:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(self.seed + self.global_rank)
            if self._pending_noise_state is not None:
                generator.set_state(self._pending_noise_state)
                self._pending_noise_state = None
            self._train_noise = generator
        return self._train_noise

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.last_saved_step = self.global_step
        checkpoint[CHECKPOINT_KEY] = {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "config": self.run_config,
            "task": asdict(self.task),
        }
        if self._train_noise is not None:
            checkpoint[_NOISE_STATE_KEY] = self._train_noise.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_noise_state = checkpoint.get(_NOISE_STATE_KEY)
        self._train_noise = None

    # ---- sampling ------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        batch: Mapping[str, Any],
        *,
        generator: torch.Generator | None = None,
        method: str | None = None,
        num_steps: int | None = None,
        atol: float = 1e-6,
        rtol: float = 1e-3,
        grid_power: float | None = None,
        clamp_conditioned: bool | None = None,
    ) -> SampleResult:
        """Generate the unknown tokens (and, for design, residue identities) of a batch with the ODE.

        Args:
            batch: a batch dict with the keys of docs/interfaces.md ("Batches"), on this module's device:
                `rots (B,T,L,3,3)`, `trans (B,T,L,3) Å`, `torsions (B,T,L,7,2)`, `torsion_mask (B,L,7)`,
                `aatype (B,L)`, `residue_mask (B,L)`, `residue_index (B,L)`. The window length T may differ
                from `task.num_frames`. What must be real geometry depends on the task:
                  forward: frame 0; interp: frames 0 and T-1; upsample: frames 0, k, 2k, ... (k =
                  `task.cond_interval`); inpaint: residues `task.cond_residues` at every frame plus every
                  residue at the key frames (0 and T-1), as in the original.
                Every other frame may hold any placeholder (e.g. copies of frame 0): it is never read.
                For design tasks `aatype` of the designed residues is ignored (only used if you compare).
            generator: torch.Generator on the module's device for the initial noise (seed it for
                reproducible samples: `torch.Generator(device).manual_seed(base_seed + index)`).
            method: one of `mdgen.interpolant.ode_solvers.ODE_METHODS`; None: the task's (`task.ode_method`).
            num_steps: output grid points from t=0 to 1 (fixed-step solvers take num_steps - 1 steps);
                None: the task's (`task.ode_num_steps`).
            grid_power: spacing of that grid (1 uniform; `mdgen.interpolant.ode_solvers.time_grid`); None: the
                task's (`task.ode_grid_power`).
            atol, rtol: tolerances of the adaptive solver.
            clamp_conditioned: keep the given tokens on their exact interpolant path and return them
                unchanged; None uses `task.clamp_conditioned` (False, as in the original, where the
                model regenerates given tokens).

        Returns:
            SampleResult(tokens (B,T,L,C_cont), aatype (B,L), nfe, aa_probs (B,L,20) | None); aatype is
            the argmax of the final simplex at the designed residues (`TaskInputs.design_mask`: all
            residues when the task hides identities) and the given identity elsewhere.
            Decode with `mdgen.tokens.decode(tokens, key_atom14, aatype)` using the key frame's atoms
            (frame 0), or `features_from_tokens(tokens, key_rots, key_trans)` to seed the next chunk.
        """
        inputs = self.task.build_inputs(batch)
        x_known = inputs.tokens  # (B, T, L, C_cont)
        batch_size, num_frames, num_residues, width = x_known.shape
        device = x_known.device
        noise = torch.randn(x_known.shape, generator=generator, device=device)
        state = noise
        if self.dirichlet is not None:
            simplex0 = self.dirichlet.sample_uniform(
                (batch_size, num_residues), generator=generator, device=device
            )
            state = torch.cat([noise, simplex0[:, None].expand(-1, num_frames, -1, -1)], dim=-1)
        clamp = self.task.clamp_conditioned if clamp_conditioned is None else clamp_conditioned
        given = inputs.cond_mask[..., None] > 0  # (B, T, L, 1)
        network_kwargs = inputs.network_kwargs()

        def velocity_fn(t: Tensor, x: Tensor) -> Tensor:
            t_batch = t.to(device=device, dtype=x.dtype).reshape(-1).expand(batch_size)  # (B,)
            output = self.network(x, t_batch, **network_kwargs)
            velocity = output.velocity[..., :width]
            if clamp:
                exact = self.path.sample(noise, x_known, t_batch).velocity
                velocity = torch.where(given, exact, velocity)
            if self.dirichlet is None:
                return velocity
            probs = self.dirichlet.probs_from_logits(output.velocity[..., width:].float())  # (B, T, L, 20)
            simplex_velocity = self.dirichlet.velocity(x[..., width:], probs, t_batch)
            return torch.cat([velocity, simplex_velocity], dim=-1)

        solution = solve_ode(
            velocity_fn,
            state,
            method=method or self.task.ode_method,
            num_steps=self.task.ode_num_steps if num_steps is None else num_steps,
            atol=atol,
            rtol=rtol,
            grid_power=self.task.ode_grid_power if grid_power is None else grid_power,
        )
        tokens = solution.x1[..., :width]
        if clamp:
            tokens = torch.where(given, x_known, tokens)
        tokens = self.task.tokens_in_angstrom(tokens)
        if self.dirichlet is None:
            return SampleResult(tokens=tokens, aatype=inputs.target_aatype, nfe=int(solution.nfe))
        aa_probs = solution.x1[..., width:].mean(dim=1)  # (B, L, 20)
        aatype = torch.where(inputs.design_mask, aa_probs.argmax(-1), inputs.target_aatype)
        return SampleResult(tokens=tokens, aatype=aatype, nfe=int(solution.nfe), aa_probs=aa_probs)
