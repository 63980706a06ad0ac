"""Hydra configs -> objects: compose, build a run, and rebuild a module from a checkpoint alone.

The only library module that imports hydra/omegaconf; the entry points (`mdgen.train`, `mdgen.bench`,
the sampling CLI) and tests share it. Everything it builds is an ordinary object wired from the
`_target_` entries of `conf/`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from mdgen.callbacks import ema_weights_from_checkpoint
from mdgen.errors import UserError
from mdgen.module import CHECKPOINT_FORMAT_VERSION, CHECKPOINT_KEY, MDGenModule

log = logging.getLogger(__name__)

CONFIG_DIR_ENV = "MDGEN_CONFIG_DIR"


class IncompatibleCheckpointError(UserError):
    """A checkpoint that `load_module` cannot rebuild (not from mdgen.train, other version or task)."""


def config_dir() -> Path:
    """Absolute path of the `conf/` directory: $MDGEN_CONFIG_DIR, else the repository's `conf/`.

    Resolved from this file, so it works for editable installs from any working directory.
    """
    candidate = Path(os.environ.get(CONFIG_DIR_ENV, Path(__file__).resolve().parents[2] / "conf"))
    if not (candidate / "train.yaml").is_file():
        raise FileNotFoundError(
            f"mdgen configs not found: {candidate}/train.yaml does not exist. Install mdgen in editable mode "
            f"from its repository (`pip install -e .`) or point ${CONFIG_DIR_ENV} at the repository's conf/."
        )
    return candidate


def compose_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose a root config outside `@hydra.main` (tests, notebooks, benchmarks).

    The `hydra` node is kept and registered, so `${hydra:...}` interpolations (run directory) resolve.
    """
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def to_plain_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without the `hydra` node, as plain Python containers."""
    without_hydra = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    return OmegaConf.to_container(without_hydra, resolve=True, throw_on_missing=True)


# ---- building a run ----------------------------------------------------------------------------------


def build_module(cfg: DictConfig, run_config: Mapping[str, Any] | None = None) -> MDGenModule:
    """Task, network, interpolant, optimizer and scheduler from `cfg`, wired into an `MDGenModule`."""
    task = instantiate(cfg.task)
    network = instantiate(cfg.model)
    dirichlet = instantiate(cfg.interpolant.dirichlet) if task.design else None
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    # Built objects are passed to the partial, not to instantiate: OmegaConf would turn a dataclass
    # (the TaskSpec) into a config node.
    module_factory = instantiate(cfg.module, _partial_=True)
    return module_factory(
        network=network,
        interpolant_path=instantiate(cfg.interpolant.path),
        task=task,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        dirichlet=dirichlet,
        run_config=run_config,
    )


def build_callbacks(cfg: DictConfig, has_logger: bool) -> list[pl.Callback]:
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        if node.get("_target_", "").endswith("LearningRateMonitor") and not has_logger:
            log.info("logger=none: skipping callback %r (it needs a logger)", name)
            continue
        callbacks.append(instantiate(node))
    return callbacks


def build_loggers(cfg: DictConfig) -> list[Any]:
    return [instantiate(node) for node in (cfg.get("logger") or {}).values() if node is not None]


def build_trainer(cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    loggers = build_loggers(cfg)
    callbacks = build_callbacks(cfg, has_logger=bool(loggers)) + list(extra_callbacks)
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def pin_ddp_relaunch_to_job_dir() -> None:
    """Make Lightning's re-launched DDP ranks (> 0) run this one job, in this job's directory.

    Lightning's subprocess launcher re-runs `sys.argv` with `hydra.run.dir=<HydraConfig run.dir>`. Inside
    a `-m` sweep that command would start the whole sweep again (it carries `-m` and every sweep value)
    in the sweep's *run* directory; here it becomes this job's own overrides and output directory.
    """
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    node = HydraConfig.instance().cfg.hydra
    with read_write(node), open_dict(node):
        node.run.dir = hydra_cfg.runtime.output_dir


# ---- checkpoints ---------------------------------------------------------------------------------------


def read_checkpoint(ckpt_path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint file and check that mdgen.train wrote it in a format this version reads."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location=map_location, weights_only=False, mmap=True)
    check_checkpoint(checkpoint, path)
    return checkpoint


def check_checkpoint(
    checkpoint: Mapping[str, Any], path: str | Path, expected_task: str | None = None
) -> None:
    """Raise `IncompatibleCheckpointError` unless the checkpoint carries a config this version rebuilds."""
    entry = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(entry, Mapping) or not entry.get("config"):
        raise IncompatibleCheckpointError(
            f"{path}: no mdgen config inside the checkpoint (key {CHECKPOINT_KEY!r}); it was not written by "
            "`python -m mdgen.train`, so the network, task and interpolant cannot be rebuilt from it"
        )
    version = entry.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise IncompatibleCheckpointError(
            f"{path}: checkpoint format version {version}, this mdgen reads version {CHECKPOINT_FORMAT_VERSION}"
        )
    task_name = entry["config"]["task"]["name"]
    if expected_task is not None and task_name != expected_task:
        raise IncompatibleCheckpointError(
            f"{path}: checkpoint was trained for task {task_name!r}, but task {expected_task!r} was requested"
        )


def load_module(
    ckpt_path: str | Path,
    map_location: Any = "cpu",
    use_ema: bool = True,
    expected_task: str | None = None,
) -> MDGenModule:
    """Rebuild a trained `MDGenModule` (network, task, interpolant) from a checkpoint file alone.

    Args:
        ckpt_path: a checkpoint written by `python -m mdgen.train` (e.g. `<run>/checkpoints/last.ckpt`).
        map_location: device for the weights ("cpu", "cuda", torch.device).
        use_ema: load the EMA weights when the run trained with EMA (`callbacks.ema.enabled=true`);
            checkpoints without EMA load their training weights (logged).
        expected_task: raise unless the checkpoint was trained for this task name (e.g. "forward").

    Returns the module in eval mode on `map_location`; its `.task` and `.run_config` describe the run.
    Raises `IncompatibleCheckpointError` for checkpoints without an mdgen config, of another format
    version, or of another task than `expected_task`.
    """
    checkpoint = read_checkpoint(ckpt_path, map_location=map_location)
    check_checkpoint(checkpoint, ckpt_path, expected_task)
    run_config = checkpoint[CHECKPOINT_KEY]["config"]
    module = build_module(OmegaConf.create(run_config), run_config=run_config)
    state = dict(checkpoint["state_dict"])
    ema = ema_weights_from_checkpoint(checkpoint) if use_ema else None
    if use_ema and ema is None:
        log.info("%s: no EMA weights in the checkpoint; loading the training weights", ckpt_path)
    state.update(ema or {})
    module.load_state_dict(state, strict=True)
    return module.to(map_location).eval()
