"""`python -m mdgen.train [overrides]`: train an MDGen model (see conf/train.yaml and README "Train").

Examples:
    python -m mdgen.train experiment=demo_forward model=tiny
    python -m mdgen.train task=upsample data=4aa_implicit trainer.devices=8
    python -m mdgen.train experiment=demo_forward hydra.run.dir=outputs/my_run ckpt_path=last   # resume
    python -m mdgen.train -m experiment=demo_forward seed=1,2                                    # sweep
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
import lightning.pytorch as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf, open_dict

from mdgen.callbacks import SaveRunConfig, training_weights_from_checkpoint
from mdgen.config import (
    build_module,
    build_trainer,
    check_checkpoint,
    check_override_types,
    hydra_main,
    pin_ddp_relaunch_to_job_dir,
    read_checkpoint,
    to_plain_dict,
)
from mdgen.errors import UserError, user_errors
from mdgen.module import CHECKPOINT_KEY
from mdgen.options import checked_value

log = logging.getLogger(__name__)


def resolve_ckpt_path(ckpt_path: str | None, checkpoint_dir: Path) -> Path | None:
    """`ckpt_path=last` -> `<checkpoint_dir>/last.ckpt` (which must exist); a path stays a path."""
    if ckpt_path is None:
        return None
    path = checkpoint_dir / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        hint = (
            " (resume needs the same run directory: pass hydra.run.dir=<run dir>)"
            if ckpt_path == "last"
            else ""
        )
        raise UserError(f"ckpt_path={ckpt_path}: {path} does not exist{hint}")
    return path


@contextmanager
def distributed_job_scope() -> Iterator[None]:
    """Leave no distributed state behind: the jobs of a `-m` sweep run one after another in one process.

    Lightning's DDP launcher exports LOCAL_RANK, WORLD_SIZE, MASTER_PORT, ... into this process; a later
    job that inherited LOCAL_RANK would think its ranks were started externally and wait for them forever.
    """
    saved_environment = dict(os.environ)
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(saved_environment)


def train(cfg: DictConfig) -> float | None:
    """Fit (or resume) the configured run; returns `cfg.optimized_metric` for sweeps (None if not logged)."""
    if torch.cuda.is_available():
        # TF32 on GPUs, as the original. On CPUs, oneDNN would take 'medium' as leave to run float32
        # matmuls in bfloat16, which costs the geometry ~1e-1 precision (quaternions, offsets).
        torch.set_float32_matmul_precision(cfg.matmul_precision)
    check_override_types(cfg)  # `trainer.max_steps=abc`: one line naming the option
    seed = checked_value("seed", cfg.seed, int)  # `seed=abc`: one line naming the option
    pl.seed_everything(seed, workers=True, verbose=False)  # stderr stays for errors
    log.info("seed %s", cfg.seed)
    pin_ddp_relaunch_to_job_dir()

    checkpoint_dir = Path(cfg.paths.checkpoint_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), checkpoint_dir)
    if ckpt_path is not None:
        resumed = read_checkpoint(ckpt_path)
        check_checkpoint(resumed, ckpt_path, expected_task=cfg.task.name)
        if "converted_from" in resumed[CHECKPOINT_KEY]:
            raise UserError(
                f"ckpt_path={ckpt_path} was made by mdgen.convert and holds no optimizer or loop state to resume; "
                "start a run from its weights with init_from= instead"
            )

    initial_weights = weights_for_init_from(cfg)  # may take cfg.model from the checkpoint
    run_config = to_plain_dict(cfg)
    module = build_module(cfg, run_config=run_config)
    if initial_weights is not None:
        module.load_state_dict(initial_weights, strict=True)
    datamodule = instantiate_data(cfg)
    check_run_inputs(module, datamodule)
    trainer = build_trainer(cfg, extra_callbacks=[SaveRunConfig(run_config, checkpoint_dir / "config.yaml")])
    with distributed_job_scope():
        # Lightning reads the checkpoint again: tensors and plain values only (a pickle payload never runs)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        if (
            not trainer.fast_dev_run
            and not trainer.interrupted
            and module.last_saved_step != trainer.global_step
        ):
            # The checkpoint callbacks write at validation ends; keep the state where training stopped
            # (max_steps / max_time between validations) too. Every rank calls this; rank 0 writes.
            # weights_only=False: the full state to resume (optimizer, loops, callbacks), said explicitly
            trainer.save_checkpoint(checkpoint_dir / "last.ckpt", weights_only=False)
    metric = trainer.callback_metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None
    if metric is None:
        log.warning(
            "optimized_metric %r was not logged (no validation ran before the run stopped? see "
            "trainer.check_val_every_n_epoch, trainer.val_check_interval); returning None",
            cfg.get("optimized_metric"),
        )
        return None
    return float(metric)


def instantiate_data(cfg: DictConfig) -> pl.LightningDataModule:
    """The `data` group's DataModule; its own refusal of a value (a UserError) stays one line."""
    try:
        return hydra.utils.instantiate(cfg.data)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from error
        raise


def check_run_inputs(module: pl.LightningModule, datamodule: pl.LightningDataModule) -> None:
    """Check the data (split files, simulation directories, cache) and the learning-rate schedule here,
    once, before `trainer.fit` launches the other DDP ranks: a bad input is then one clear error, not a
    gloo "Connection closed by peer" from ranks whose first process died. Relaunched ranks repeat the
    (cheap) checks; the cache is prepared now, so they find it up to date."""
    if module.scheduler_factory is not None:  # e.g. a cosine schedule without trainer.max_steps
        module.scheduler_factory(optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    check_inputs = getattr(datamodule, "check_inputs", None)
    if check_inputs is not None:
        check_inputs("fit")


def weights_for_init_from(cfg: DictConfig) -> dict[str, torch.Tensor] | None:
    """`init_from=CKPT`: start a new run (fresh optimizer, step 0) from the weights of a checkpoint of
    `mdgen.train` or `mdgen.convert`. The network must be the one those weights belong to, so `cfg.model`
    becomes the checkpoint's model config (keeping this run's `grad_checkpointing`); the run's task must
    have the same token layout. Returns the module state dict (training weights, not EMA), or None."""
    if not cfg.get("init_from"):
        return None
    if cfg.get("ckpt_path"):
        raise UserError(
            "init_from and ckpt_path exclude each other: ckpt_path resumes a run, init_from starts one"
        )
    path = Path(cfg.init_from)
    checkpoint = read_checkpoint(path)
    stored_model = checkpoint[CHECKPOINT_KEY]["config"]["model"]
    for field in ("token_dim", "num_key_frames", "design", "use_aa_emb"):
        if stored_model.get(field) != cfg.model.get(field):
            raise UserError(
                f"init_from={path}: its network has {field}={stored_model.get(field)}, but task "
                f"{cfg.task.name!r} of this run needs {field}={cfg.model.get(field)}"
            )
    with open_dict(cfg):
        cfg.model = OmegaConf.create({**stored_model, "grad_checkpointing": cfg.model.grad_checkpointing})
    log.info("init_from=%s: network config and weights taken from the checkpoint", path)
    return training_weights_from_checkpoint(checkpoint)


@hydra_main("train")
@user_errors("mdgen.train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
