"""A Lightning callback that records what one rank of a training run did, for tests.

Added to a run from the command line (it must be importable: put tests/ on PYTHONPATH for a subprocess):

    +callbacks.probe._target_=training_probe.TrainingProbe '+callbacks.probe.out_dir=${paths.output_dir}'

Every rank writes `OUT_DIR/probe_rank{R}.pt` when training ends: its weights at the start of training
(after DDP broadcast) and at the end, the windows of each training batch it saw, the number of optimizer
steps, the world size and the logged metrics. Not for checkpoints that `mdgen.config.load_module` reads:
it refuses stored configs naming a class outside conf/.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch


class TrainingProbe(pl.Callback):
    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.initial: dict[str, torch.Tensor] = {}
        self.batches: list[list[str]] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.initial = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        starts = batch["frame_start"].tolist()
        self.batches.append([f"{name}@{int(start)}" for name, start in zip(batch["name"], starts)])

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "initial": self.initial,
            "final": {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()},
            "batches": self.batches,
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        }
        torch.save(record, self.out_dir / f"probe_rank{trainer.global_rank}.pt")


def probe_overrides(out_dir: str = "${paths.output_dir}") -> list[str]:
    """Hydra overrides that add the probe to a run."""
    return ["+callbacks.probe._target_=training_probe.TrainingProbe", f"+callbacks.probe.out_dir={out_dir}"]


def read_probe(out_dir: Path, rank: int = 0) -> dict:
    return torch.load(Path(out_dir) / f"probe_rank{rank}.pt", weights_only=False)
