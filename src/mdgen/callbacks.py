"""Training callbacks: Lightning's EMA weight averaging (with mdgen's checkpoint readers, old layout
included), Lightning's throughput monitor fed with trajectory frames, and the resolved run config written
beside the checkpoints.

The learning rate is logged by Lightning's `LearningRateMonitor` (see conf/callbacks/default.yaml).

Checkpoint layouts of the EMA weights (both are read by `ema_weights_from_checkpoint`):
- Lightning's weight averaging (written since the switch to it): `state_dict` holds the EMA weights,
  `current_model_state` the training weights, `averaging_state` the average's counter.
- mdgen's own EMA callback before that (and `mdgen.convert`): `state_dict` holds the training weights,
  `callbacks["EMA"]["shadow"]` the EMA of every floating-point entry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import EMAWeightAveraging, ThroughputMonitor
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

log = logging.getLogger(__name__)

EMA_STATE_KEY = "EMA"  # checkpoint["callbacks"][EMA_STATE_KEY]: this callback's state (and the old shadow)
TRAINING_WEIGHTS_KEY = "current_model_state"  # Lightning's WeightAveraging: the training weights


class EMA(EMAWeightAveraging):
    """Exponential moving average of the weights: Lightning's `EMAWeightAveraging`, updated once per
    optimizer step, ema <- decay * ema + (1 - decay) * weights, with three differences kept on purpose:

    - The average starts at the weights the run starts from (setup), so the first update gives
      decay * w_0 + (1 - decay) * w_1, the recurrence of the original MDGen and of mdgen's earlier callback.
      (Lightning's `AveragedModel` alone would copy w_1 at the first update.)
    - Training ends with the training weights still in the module (Lightning would copy the average in):
      `mdgen.train` saves the stop-time `last.ckpt` after `fit` returns, and that checkpoint must keep the
      training weights as the state a resume continues from. Sampling reads the EMA from checkpoints.
    - `enabled=false` turns the callback into a no-op that keeps the config key (`callbacks.ema.enabled`,
      also written by `mdgen.convert`'s recipes); resuming an EMA run with EMA off continues from the
      training weights.

    Averaged: the parameters only (`use_buffers=False`). The network's buffers are constant tables that are
    not saved (non-persistent), so the parameters are every entry of the module's state dict; averaging the
    tables too would only add rounding to constants. Validation runs with the average swapped in, so
    `val/loss` and best-k checkpoint selection judge the EMA model; checkpoints are in Lightning's layout
    (module docstring), and a run started from a checkpoint of the earlier layout resumes its EMA.
    """

    def __init__(self, decay: float = 0.999, enabled: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        super().__init__(decay=decay, use_buffers=False, update_every_n_steps=1)
        self.decay = decay
        self.enabled = enabled

    @property
    def state_key(self) -> str:
        return EMA_STATE_KEY

    @property
    def average(self) -> dict[str, Tensor] | None:
        """The current EMA weights by state-dict key (views), or None before `setup` / when disabled."""
        if self._average_model is None:
            return None
        return dict(self._average_model.module.state_dict())

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return self.enabled and super().should_update(step_idx=step_idx, epoch_idx=epoch_idx)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.enabled:
            return
        super().setup(trainer, pl_module, stage)
        if self._average_model is not None:
            # n_averaged 0 -> 1: the average becomes the starting weights, later updates are the recurrence.
            # A resume then overwrites the average and its counter from the checkpoint.
            self._average_model.update_parameters(pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep the training weights in the module (see the class docstring)."""

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.enabled:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if TRAINING_WEIGHTS_KEY in checkpoint and not self.enabled:
            # Lightning loaded the EMA weights (state_dict) into the module; continue from the training ones.
            pl_module.load_state_dict(checkpoint[TRAINING_WEIGHTS_KEY])
            return
        if not self.enabled:
            return
        old_shadow = _old_layout_shadow(checkpoint)
        if TRAINING_WEIGHTS_KEY not in checkpoint and old_shadow is not None:
            # mdgen's earlier EMA callback: state_dict is the training weights (already in the module).
            module = self._average_model.module
            module.load_state_dict({**module.state_dict(), **old_shadow})
            self._average_model.n_averaged.fill_(1)  # > 0: the next step updates, it does not copy
            self._latest_update_step = int(checkpoint.get("global_step", 0))
            return
        super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() if self.enabled else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.enabled and "latest_update_step" in state_dict:  # the earlier layout: on_load_checkpoint
            super().load_state_dict(state_dict)


def ema_weights_from_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Tensor] | None:
    """The EMA weights stored in a training checkpoint dict (either layout), or None when EMA was off.

    Lightning's layout: the whole state dict. The earlier layout: the floating-point entries only (apply
    them over `training_weights_from_checkpoint`). An exported checkpoint has none: its weights already are
    the EMA weights when its `exported_from["weights"]` says "ema"."""
    if TRAINING_WEIGHTS_KEY in checkpoint:
        return dict(checkpoint["state_dict"])
    return _old_layout_shadow(checkpoint)


def training_weights_from_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The training (not averaged) weights of a checkpoint dict, whichever EMA layout it has."""
    key = TRAINING_WEIGHTS_KEY if TRAINING_WEIGHTS_KEY in checkpoint else "state_dict"
    return dict(checkpoint[key])


def _old_layout_shadow(checkpoint: Mapping[str, Any]) -> dict[str, Tensor] | None:
    state = (checkpoint.get("callbacks") or {}).get(EMA_STATE_KEY) or {}
    return state.get("shadow")


class TrajectoryThroughput(ThroughputMonitor):
    """Lightning's `ThroughputMonitor` for trajectory batches, logged every `trainer.log_every_n_steps`
    once `window_size` batches were seen (rolling averages over them, validation time left out):

    - `train/device/samples_per_sec`: trajectory windows (B per batch) per second on one device;
    - `train/device/items_per_sec`: trajectory frames (B*T per batch) per second on one device, the
      frames-per-second figure; with several devices also `train/samples_per_sec`, `train/items_per_sec`
      over all of them;
    - on GPUs Lightning knows the peak of: `train/device/flops_per_sec` and `train/device/mfu`, from the
      FLOPs of one training step counted once on the first batch (`torch.utils.flop_counter`; forward and
      backward, recomputation included under gradient checkpointing) and, for `validate/...`, of one forward.
      The count runs on rank 0 under the training step's precision context (bf16 autocast with
      bf16-mixed), with its own generator, the global RNG state restored and no gradient kept, so training
      is the same with or without it. On CPUs no FLOPs are counted (no MFU).
    """

    def __init__(self, window_size: int = 20):
        if window_size < 2:
            raise ValueError(f"window_size must be >= 2 (rates are differences over it), got {window_size}")
        super().__init__(
            batch_size_fn=trajectory_windows, length_fn=trajectory_frames, window_size=window_size
        )
        self.train_flops: int | None = None
        self.forward_flops: int | None = None
        self._counted = False

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self._counted and trainer.is_global_zero:
            self._counted = True
            if self.available_flops is not None:
                with trainer.precision_plugin.train_step_context():  # the training step's autocast, if any
                    self.forward_flops, self.train_flops = count_step_flops(pl_module, batch)
        pl_module.flops_per_batch = self.train_flops  # read by ThroughputMonitor (None: no FLOPs, no warning)

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, *args: Any, **kwargs: Any
    ) -> None:
        pl_module.flops_per_batch = self.forward_flops


def trajectory_windows(batch: Mapping[str, Any]) -> int:
    """B: trajectory windows in a batch."""
    return int(batch["trans"].shape[0])


def trajectory_frames(batch: Mapping[str, Any]) -> int:
    """B * T: trajectory frames in a batch."""
    return int(batch["trans"].shape[0] * batch["trans"].shape[1])


def count_step_flops(pl_module: pl.LightningModule, batch: Mapping[str, Any]) -> tuple[int, int]:
    """(forward FLOPs, forward + backward FLOPs) of the training loss of `batch`, counted by
    `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions, attention).

    No side effects on training: the loss noise comes from a fresh generator, the global RNG state is
    restored, and the gradients are taken with `torch.autograd.grad` (nothing accumulates in `.grad`)."""
    device = pl_module.device
    parameters = [p for p in pl_module.parameters() if p.requires_grad]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        generator = torch.Generator(device=device).manual_seed(0)
        with FlopCounterMode(display=False) as forward_counter:
            loss = pl_module.compute_loss(batch, generator).loss
        with FlopCounterMode(display=False) as backward_counter:
            torch.autograd.grad(loss, parameters, allow_unused=True)
    forward = forward_counter.get_total_flops()
    return forward, forward + backward_counter.get_total_flops()


class SaveRunConfig(pl.Callback):
    """Writes the resolved run config (a plain dict) as YAML to `path` on global rank 0 when fitting starts
    (after the checkpoint callback's set-up, so a fresh run directory is not reported as "not empty")."""

    def __init__(self, run_config: Mapping[str, Any], path: str | Path):
        self.run_config = dict(run_config)
        self.path = Path(path)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(yaml.safe_dump(self.run_config, sort_keys=False))
