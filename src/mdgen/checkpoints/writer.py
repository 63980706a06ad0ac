"""This project's checkpoint format for converted weights, written atomically.

A converted checkpoint holds what `mdgen.config.load_module`, `mdgen.sample` and `mdgen.train init_from=`
read from a checkpoint of `mdgen.train`: the module's weights in the layout of Lightning's weight averaging
(`mdgen.callbacks.EMA`; when the original kept an EMA: `state_dict` the EMA weights, `current_model_state`
the training weights, the averaging state and the callback's step), and `checkpoint["mdgen"]` with the format version, the resolved run config and the
task. Everything is a tensor, a container or a primitive, so it loads with `torch.load(weights_only=True)`.
It has no optimizer or loop state: it starts a fine-tuning run (`init_from=`), it does not resume one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mdgen.callbacks import EMA_STATE_KEY, TRAINING_WEIGHTS_KEY
from mdgen.files import atomic_path
from mdgen.module import CHECKPOINT_FORMAT_VERSION, CHECKPOINT_KEY

NETWORK_PREFIX = "network."  # MDGenModule.network


def converted_checkpoint(
    *,
    network_state: Mapping[str, Tensor],
    ema_state: Mapping[str, Tensor] | None,
    run_config: Mapping[str, Any],
    task: Mapping[str, Any],
    provenance: Mapping[str, Any],
    epoch: int | None,
    global_step: int | None,
    lightning_version: str,
) -> dict[str, Any]:
    """The checkpoint dict; network states are keyed like `MDGenNetwork.state_dict()`."""
    training = {NETWORK_PREFIX + k: v.contiguous() for k, v in network_state.items()}
    step = int(global_step or 0)
    checkpoint: dict[str, Any] = {
        "epoch": int(epoch or 0),
        "global_step": step,
        "pytorch-lightning_version": lightning_version,
        "state_dict": training,
        "callbacks": {},
        CHECKPOINT_KEY: {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "config": dict(run_config),
            "task": dict(task),
            "converted_from": dict(provenance),
        },
    }
    if ema_state is not None:
        # The original's EMA holds the floating-point entries; the rest are the training weights'.
        checkpoint["state_dict"] = {
            **training,
            **{NETWORK_PREFIX + k: v.contiguous() for k, v in ema_state.items()},
        }
        checkpoint[TRAINING_WEIGHTS_KEY] = training
        # The original updates its EMA once per optimizer step and does not count the updates; any count
        # above 0 makes the next update the recurrence (0 would copy the weights).
        checkpoint["averaging_state"] = {"n_averaged": torch.tensor(max(step, 1), dtype=torch.long)}
        checkpoint["callbacks"][EMA_STATE_KEY] = {"latest_update_step": step}
    return checkpoint


def write_checkpoint_atomically(checkpoint: Mapping[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary file beside `path`, then rename: `path` is either complete or absent."""
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save(dict(checkpoint), temporary)
    return path
