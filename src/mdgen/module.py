"""The LightningModule: training/validation loop, loss, logging, optimizers and ODE sampling.

It owns no maths of its own: tokens and masks come from the task (`mdgen.tasks.TaskSpec`), the
probability path and the Dirichlet flow from `mdgen.interpolant`, the velocity from the network
(`mdgen.model.MDGenNetwork`). EMA and throughput logging are callbacks (`mdgen.callbacks`).

Randomness is explicit: training noise (flow time s, x0 ~ N(0, I), Dirichlet simplex) comes from a
module-owned generator seeded with `seed + global_rank` whose state is saved in the checkpoint, so a
resumed run continues the same noise stream; validation reseeds its generator every epoch, so the
validation loss of two epochs differs only through the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mdgen.interpolant import masked_mse, solve_ode
from mdgen.tasks import NUM_AMINO_ACIDS, TaskInputs, TaskSpec

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
            raise ValueError(f"decay must be 'constant' or 'cosine', got {decay!r}")
        if decay == "cosine" and (total_steps is None or total_steps <= warmup_steps):
            raise ValueError(
                f"cosine decay needs total_steps > warmup_steps, got {total_steps} <= {warmup_steps}"
            )
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
        self._val_noise: torch.Generator | None = None
        self.last_saved_step: int | None = None  # global step of the latest checkpoint written
        if compile_network:
            self.network.compile()

    # ---- loss ----------------------------------------------------------------------------------------

    def network_input(self, x_cont: Tensor, simplex: Tensor | None) -> Tensor:
        """(B, T, L, C_cont) [+ simplex (B, T, L, 20)] -> the network's (B, T, L, C) input."""
        return x_cont if simplex is None else torch.cat([x_cont, simplex], dim=-1)

    def compute_loss(self, batch: Mapping[str, Any], generator: torch.Generator | None) -> LossTerms:
        """Flow-matching loss of one batch (METHOD 4.2, 4.4): per-sample masked MSE, then the batch mean."""
        inputs = self.task.build_inputs(batch)
        x1 = inputs.tokens  # (B, T, L, C_cont)
        batch_size, num_frames = x1.shape[:2]
        t = torch.rand(batch_size, generator=generator, device=x1.device)  # (B,) flow time
        x0 = torch.randn(x1.shape, generator=generator, device=x1.device)
        path_sample = self.path.sample(x0, x1, t)

        simplex = None
        if self.dirichlet is not None:
            # One simplex point per residue, shared by every frame (METHOD 4.4).
            simplex = self.dirichlet.sample_simplex(
                inputs.target_aatype, t, generator=generator
            )  # (B, L, 20)
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
        terms = self.compute_loss(batch, self._val_noise)
        self._log_terms("val", terms, batch_size=len(batch["aatype"]))

    def on_validation_epoch_start(self) -> None:
        generator = torch.Generator(device=self.device)
        self._val_noise = generator.manual_seed(self.seed + _VALIDATION_SEED_OFFSET + self.global_rank)

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
        num_steps: int = 50,
        atol: float = 1e-6,
        rtol: float = 1e-3,
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
            method: "dopri5" | "euler" | "heun"; None uses the task's default (`task.ode_method`:
                dopri5, euler for design).
            num_steps: output grid points from t=0 to 1 (fixed-step solvers take num_steps - 1 steps).
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
            num_steps=num_steps,
            atol=atol,
            rtol=rtol,
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
