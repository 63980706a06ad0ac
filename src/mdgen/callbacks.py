"""Training callbacks: weight EMA with its own checkpointed state, frames-per-second logging, and the
resolved run config written beside the checkpoints.

The learning rate is logged by Lightning's `LearningRateMonitor` (see conf/callbacks/default.yaml).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from torch import Tensor

EMA_STATE_KEY = "EMA"  # checkpoint["callbacks"][EMA_STATE_KEY] = EMA.state_dict()


class EMA(pl.Callback):
    """Exponential moving average of every floating-point entry of the module's state dict.

    shadow <- decay * shadow + (1 - decay) * weights, once per optimizer step. Validation runs with the
    shadow weights swapped in (and the training weights swapped back afterwards), so `val/loss` and
    best-k checkpoint selection judge the EMA model. The shadow lives in the checkpoint under
    `checkpoint["callbacks"]["EMA"]` and is restored on resume; `mdgen.config.load_module` loads it by
    default. Off by default (as in the original); enable with `callbacks.ema.enabled=true`.
    """

    def __init__(self, decay: float = 0.999, enabled: bool = True, validate_with_ema: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.enabled = enabled
        self.validate_with_ema = validate_with_ema
        self.num_updates = 0
        self._shadow: dict[str, Tensor] | None = None
        self._training_weights: dict[str, Tensor] | None = None  # set while the shadow is swapped in
        self._last_global_step = -1

    @property
    def state_key(self) -> str:
        return EMA_STATE_KEY

    @property
    def shadow(self) -> dict[str, Tensor] | None:
        return self._shadow

    # ---- updates -------------------------------------------------------------------------------------

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        if self._shadow is None:
            self._shadow = {k: v.detach().clone() for k, v in _float_entries(pl_module.state_dict()).items()}
        self._move_shadow_to(pl_module.device)
        self._last_global_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        # global_step counts optimizer steps: this skips accumulation micro-batches and skipped steps.
        if not self.enabled or trainer.global_step == self._last_global_step:
            return
        self._last_global_step = trainer.global_step
        self._move_shadow_to(pl_module.device)
        weights = pl_module.state_dict()
        with torch.no_grad():
            for key, shadow in self._shadow.items():
                shadow.lerp_(weights[key].detach().to(shadow.dtype), 1.0 - self.decay)
        self.num_updates += 1

    def _move_shadow_to(self, device: torch.device) -> None:
        if self._shadow is not None and next(iter(self._shadow.values())).device != device:
            self._shadow = {k: v.to(device) for k, v in self._shadow.items()}

    # ---- validation with the shadow weights ----------------------------------------------------------

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and self.validate_with_ema and self._shadow is not None:
            self._move_shadow_to(pl_module.device)
            self._training_weights = _swap_in(pl_module, self._shadow)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._training_weights is not None:
            _swap_in(pl_module, self._training_weights)
            self._training_weights = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        # A checkpoint written while the shadow is swapped in must still hold the training weights.
        if self._training_weights is not None:
            checkpoint["state_dict"] = {**checkpoint["state_dict"], **self._training_weights}

    # ---- state -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        if not self.enabled or self._shadow is None:
            return {}
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self._shadow)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self.enabled or not state_dict:
            return
        self._shadow = {k: v.clone() for k, v in state_dict["shadow"].items()}
        self.num_updates = int(state_dict["num_updates"])


def ema_weights_from_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Tensor] | None:
    """The EMA shadow weights stored in a Lightning checkpoint dict, or None when EMA was off."""
    state = checkpoint.get("callbacks", {}).get(EMA_STATE_KEY) or {}
    return state.get("shadow")


def _float_entries(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in state.items() if torch.is_floating_point(v)}


def _swap_in(module: pl.LightningModule, weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Copy `weights` into the module in place; returns copies of the entries it replaced."""
    current = module.state_dict()
    replaced = {}
    with torch.no_grad():
        for key, value in weights.items():
            replaced[key] = current[key].detach().clone()
            current[key].copy_(value)
    return replaced


class FramesPerSecond(pl.Callback):
    """Logs training throughput every batch: `train/frames_per_s` (B*T trajectory frames per second over
    all ranks) and `train/step_time_s`, averaged over the last `window` batches, data loading included.

    A batch is timed from the end of the previous one; intervals that contain an epoch boundary or a
    validation run (and the first batch, which pays for start-up) are left out.
    """

    def __init__(self, window: int = 20):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._intervals: deque[tuple[int, float]] = deque(maxlen=window)  # (frames, seconds) per batch
        self._last_end: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = None

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Mapping[str, Any],
        batch_idx: int,
    ) -> None:
        _synchronize(pl_module.device)
        now = time.perf_counter()
        batch_size, num_frames = batch["trans"].shape[:2]
        if self._last_end is not None:
            self._intervals.append((batch_size * num_frames, now - self._last_end))
        self._last_end = now
        if not self._intervals:
            return
        frames = sum(f for f, _ in self._intervals)
        seconds = sum(s for _, s in self._intervals)
        pl_module.log(
            "train/frames_per_s",
            frames * trainer.world_size / seconds,
            on_step=True,
            on_epoch=False,
            batch_size=batch_size,
        )
        pl_module.log(
            "train/step_time_s",
            seconds / len(self._intervals),
            on_step=True,
            on_epoch=False,
            batch_size=batch_size,
        )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
