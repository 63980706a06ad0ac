"""`python -m mdgen.export in_ckpt=RUN/checkpoints/last.ckpt out_ckpt=MODEL.ckpt`: a checkpoint to ship.

Keeps what sampling needs and nothing else: the weights (the EMA weights when the run kept them, as the
module's `state_dict`; either EMA checkpoint layout, see `mdgen.callbacks`), the resolved run config and
the task, plus where they came from. `sampler=NAME` (conf/sampler/) makes that sampler the exported task's
default (its method, grid points and grid power; what `mdgen.sample` uses unless given a `sampler=`). Optimizer, scheduler, loop and callback states are dropped, so the
file is a fraction of a training checkpoint; it samples (`mdgen.sample`) and starts fine-tuning runs
(`mdgen.train init_from=`), it does not resume one.
The input is read with `weights_only=True`; the output is written atomically and loaded back as a check.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mdgen.callbacks import ema_weights_from_checkpoint, training_weights_from_checkpoint
from mdgen.checkpoints import write_checkpoint_atomically
from mdgen.config import hydra_main, load_module, read_checkpoint
from mdgen.errors import UserError, user_errors
from mdgen.files import sha256_of
from mdgen.module import CHECKPOINT_KEY
from mdgen.options import checked_fields
from mdgen.sampling.sampler_options import SolverOptions


def export_checkpoint(
    in_ckpt: str | Path,
    out_ckpt: str | Path,
    use_ema: bool = True,
    overwrite: bool = False,
    default_sampler: SolverOptions | None = None,
) -> Path:
    """Write the inference checkpoint of `in_ckpt` to `out_ckpt`; returns `out_ckpt`.

    `default_sampler`: stored as the task's default sampler (`TaskSpec.ode_method`, `ode_num_steps`,
    `ode_grid_power`); None keeps the run's.
    """
    in_ckpt, out_ckpt = Path(in_ckpt), Path(out_ckpt)
    if out_ckpt.exists() and not overwrite:
        raise UserError(f"out_ckpt={out_ckpt} exists; pass overwrite=true to replace it")
    if out_ckpt.resolve() == in_ckpt.resolve():
        raise UserError(f"out_ckpt={out_ckpt} is the input checkpoint itself")
    checkpoint = read_checkpoint(in_ckpt)
    ema = ema_weights_from_checkpoint(checkpoint) if use_ema else None
    if use_ema and ema is None:
        raise UserError(
            f"{in_ckpt}: the run kept no EMA weights; pass use_ema=false to export its training weights"
        )
    state = training_weights_from_checkpoint(checkpoint)
    state.update(ema or {})  # either EMA layout (mdgen.callbacks): the EMA weights over the training ones
    entry = checkpoint[CHECKPOINT_KEY]
    config, task = entry["config"], entry["task"]
    if default_sampler is not None:
        sampler_fields = {
            "ode_method": default_sampler.method,
            "ode_num_steps": default_sampler.num_steps,
            "ode_grid_power": default_sampler.grid_power,
        }
        config = {**config, "task": {**config["task"], **sampler_fields}}
        task = {**task, **sampler_fields}
    exported = {
        "epoch": int(checkpoint.get("epoch", 0)),
        "global_step": int(checkpoint.get("global_step", 0)),
        "pytorch-lightning_version": checkpoint.get("pytorch-lightning_version", ""),
        "state_dict": {key: value.detach().clone().contiguous() for key, value in state.items()},
        "callbacks": {},
        CHECKPOINT_KEY: {
            "format_version": entry["format_version"],
            "config": config,
            "task": task,
            "exported_from": {
                "file": str(in_ckpt),
                "sha256": sha256_of(in_ckpt),
                "global_step": int(checkpoint.get("global_step", 0)),
                "weights": "ema" if ema is not None else "training",
            },
        },
    }
    write_checkpoint_atomically(exported, out_ckpt)
    loaded = load_module(out_ckpt, use_ema=False).state_dict()
    for key, value in exported["state_dict"].items():
        if not torch.equal(loaded[key], value):
            raise RuntimeError(f"{out_ckpt}: {key} changed between writing and loading")
    return out_ckpt


@hydra_main("export")
@user_errors("mdgen.export")
def main(cfg: DictConfig) -> None:
    sampler = cfg.get("sampler")
    default_sampler = None
    if sampler is not None:
        given = OmegaConf.to_container(sampler)
        if any(value is None for value in given.values()):
            raise UserError(
                "sampler=task is the checkpoint's own default; name one of conf/sampler/ to store"
            )
        try:
            default_sampler = SolverOptions(**checked_fields(SolverOptions, given, prefix="sampler."))
        except ValueError as error:
            raise UserError(str(error)) from error
    out = export_checkpoint(
        cfg.in_ckpt,
        cfg.out_ckpt,
        use_ema=bool(cfg.use_ema),
        overwrite=bool(cfg.overwrite),
        default_sampler=default_sampler,
    )
    print(
        f"{out}: {out.stat().st_size / 2**20:.1f} MiB ({'EMA' if cfg.use_ema else 'training'} weights and config)"
    )


if __name__ == "__main__":
    main()
