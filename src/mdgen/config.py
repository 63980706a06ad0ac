"""Hydra configs -> objects: compose, build a run, and rebuild a module from a checkpoint alone.

The only library module that imports hydra/omegaconf; the entry points (`mdgen.train`, `mdgen.bench`,
the sampling CLI) and tests share it. Everything it builds is an ordinary object wired from the
`_target_` entries of `conf/`. The configs are found one way, as the package `mdgen.conf` (`config_dir`,
`hydra_main`).
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import pickle
import re
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from mdgen.callbacks import ema_weights_from_checkpoint, training_weights_from_checkpoint
from mdgen.command_help import HELP_TEMPLATE, register_help_resolvers
from mdgen.errors import UserError
from mdgen.module import CHECKPOINT_FORMAT_VERSION, CHECKPOINT_KEY, MDGenModule
from mdgen.options import OptionError
from mdgen.tasks import TaskSpec

log = logging.getLogger(__name__)

CONFIG_PACKAGE = "mdgen.conf"  # conf/, shipped as package data (setup.py)
CONFIG_SEARCH_PATH = f"pkg://{CONFIG_PACKAGE}"


class IncompatibleCheckpointError(UserError):
    """A checkpoint that `load_module` cannot rebuild (not from mdgen.train, other version or task)."""


class UnsafeCheckpointError(IncompatibleCheckpointError):
    """A checkpoint refused because loading or rebuilding it could run code that the file names."""


# Packages whose classes a checkpoint's stored config may name in `_target_` (only those conf/ uses).
CHECKPOINT_TARGET_PACKAGES = ("mdgen", "torch", "lightning")


def config_dir() -> Path:
    """Absolute path of the configs: the directory of the package `mdgen.conf` (the repository's `conf/`).

    setup.py ships conf/ as that package: an editable install maps it to the repository's conf/ (edits
    are seen at once), a wheel carries a copy. Every command finds its configs this one way (its
    `@hydra.main` searches `pkg://mdgen.conf`, see `hydra_main`); a user's own config directory is added
    with Hydra's `--config-dir DIR`.
    """
    try:
        package = importlib.resources.files(CONFIG_PACKAGE)
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            f"mdgen configs not found: the package {CONFIG_PACKAGE} is not installed. Reinstall mdgen "
            "(`pip install -e .` in its repository, or `pip install .`)."
        ) from error
    directory = Path(str(package))
    if not (directory / "train.yaml").is_file():
        raise FileNotFoundError(f"mdgen configs not found: {directory}/train.yaml does not exist")
    return directory


def hydra_main(config_name: str, without_groups: bool = False) -> Callable[[TaskFunction], Any]:
    """`@hydra.main` of the command whose root config is `conf/<config_name>.yaml`.

    The root is found in the package `mdgen.conf` (Hydra search path `pkg://mdgen.conf`), with conf/'s
    config groups. `without_groups=True` composes the root file alone: for `mdgen.evaluate`, whose
    `task=forward` option would otherwise select the training `task/` group. Its root file is then read
    from the same package (`config_dir`) into Hydra's ConfigStore, with the help template set in its
    `hydra.help` node (a `hydra/help` group entry in the ConfigStore would shadow the file for the other
    commands of the same process).
    `--help` of every command is made by `mdgen.command_help` (conf/hydra/help/mdgen.yaml).
    """
    register_help_resolvers()
    if not without_groups:
        return hydra.main(version_base="1.3", config_path=CONFIG_SEARCH_PATH, config_name=config_name)
    root = OmegaConf.load(config_dir() / f"{config_name}.yaml")
    with open_dict(root):
        root.defaults = [entry for entry in root.get("defaults", []) if "override hydra/help" not in entry]
    help_template = OmegaConf.load(config_dir() / "hydra" / "help" / f"{HELP_TEMPLATE}.yaml")
    root = OmegaConf.merge(root, {"hydra": {"help": help_template}})
    ConfigStore.instance().store(name=config_name, node=root, provider="mdgen")
    return hydra.main(version_base="1.3", config_path=None, config_name=config_name)


def compose_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose a root config outside `@hydra.main` (tests, notebooks, benchmarks).

    The `hydra` node is kept and registered, so `${hydra:...}` interpolations (run directory) resolve.
    """
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def to_plain_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without the `hydra` node, as plain Python containers."""
    without_hydra = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    return OmegaConf.to_container(without_hydra, resolve=True, throw_on_missing=True)


# ---- building a run ----------------------------------------------------------------------------------


# The stored-config nodes `load_module` instantiates (through `build_module`); nothing else of a
# checkpoint's config is ever built.
CHECKPOINT_BUILT_NODES = ("task", "model", "interpolant", "optimizer", "scheduler", "module")


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


def check_override_types(cfg: DictConfig) -> None:
    """Every `key=value` of the command line has the type of the value it replaces, or `OptionError`.

    Hydra parses `seed=abc` as the string "abc" and hands it over; without this, the first use deep inside
    fails with a message about something else. The defaults are composed again with the same config-group
    choices (`experiment=...`, `model=...`), so a value set by an experiment is the reference. An int stays
    an int, a float takes an int, a bool only true/false, a list a list; a default of null or a string
    takes anything, and null replaces anything (the option's own check judges it). Outside `@hydra.main`
    (tests composing configs) there is nothing to compare with.
    """
    if not HydraConfig.initialized() or not GlobalHydra.instance().is_initialized():
        return
    hydra_cfg = HydraConfig.get()
    given_lines = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)  # `${..}` stays text
    overrides = OverridesParser.create().parse_overrides(given_lines)
    groups = set(hydra_cfg.runtime.choices)
    is_group = lambda o: o.key_or_group in groups or "/" in o.key_or_group or o.package is not None  # noqa: E731
    values = [o for o in overrides if not is_group(o) and o.type.name == "CHANGE"]
    values = [o for o in values if not o.key_or_group.startswith("hydra.") and not o.is_sweep_override()]
    if not values:
        return
    defaults = compose(
        config_name=hydra_cfg.job.config_name,
        overrides=[o.input_line for o in overrides if is_group(o) and o.type.name == "CHANGE"],
    )
    for override in values:
        key = override.key_or_group
        if key in _OPTIONS_OF_SEVERAL_TYPES:
            continue
        default = OmegaConf.select(defaults, key, default=None, throw_on_missing=False)
        try:
            given = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        except OmegaConfBaseException as error:  # `out_dir=${nope}`: an interpolation that does not resolve
            raise OptionError(f"{key}: {' '.join(str(error).split())}") from error
        expected = None if given is None else _expected_like(default, given)  # null: the option's own check
        if expected is not None:
            shown = repr(given) if isinstance(given, str) else given
            raise OptionError(f"{key}={shown}: expected {expected} (the default is {default})")


# Options whose default has one type but that take others too (Lightning: devices=1 | auto | [0,1]).
_OPTIONS_OF_SEVERAL_TYPES = frozenset({"trainer.devices", "trainer.deterministic"})


def _expected_like(default: Any, given: Any) -> str | None:
    """What `given` should have been to replace `default`, or None when it fits."""
    number = lambda v: isinstance(v, int | float) and not isinstance(v, bool)  # noqa: E731
    if isinstance(default, bool):
        return None if isinstance(given, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(given, int) and not isinstance(given, bool) else "an integer"
    if isinstance(default, float):
        return None if number(given) else "a number"
    if isinstance(default, Sequence) and not isinstance(default, str):
        return None if isinstance(given, Sequence) and not isinstance(given, str) else "a list [..]"
    return None  # null, strings, sections: anything may replace them


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
    """Load a checkpoint file safely and check that mdgen.train wrote it in a format this version reads.

    Only tensors and plain containers/values are unpickled (`weights_only=True`): a file that names any
    other object (a pickle payload) is refused with `UnsafeCheckpointError` before that object is built.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise IncompatibleCheckpointError(f"checkpoint {path} does not exist")
    checkpoint = load_checkpoint_file(path, map_location)
    check_checkpoint(checkpoint, path)
    return checkpoint


def load_checkpoint_file(path: Path, map_location: Any = "cpu") -> Any:
    """`torch.load(weights_only=True)` with one-line errors naming the file instead of torch's essays."""
    try:
        is_archive = zipfile.is_zipfile(path)
    except OSError as error:
        raise IncompatibleCheckpointError(f"{path}: cannot be read ({error.strerror or error})") from error
    if not is_archive:  # torch.save writes a zip archive; anything else (text, truncated file) is not one
        raise IncompatibleCheckpointError(
            f"{path} is not a PyTorch checkpoint (not a torch.save archive: another kind of file, or truncated)"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f" ({refused.group(1)})" if refused else ""
        raise UnsafeCheckpointError(
            f"{path}: refused: it holds a pickled object{what} that is not a tensor or a plain value, and "
            "loading it could run code from the file (mdgen checkpoints hold only tensors and plain values)"
        ) from error
    except Exception as error:  # torch raises RuntimeError/EOFError/OSError/... for damaged archives
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise IncompatibleCheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint ({first_line})"
        ) from error


def check_checkpoint(
    checkpoint: Mapping[str, Any], path: str | Path, expected_task: str | None = None
) -> None:
    """Raise `IncompatibleCheckpointError` unless the checkpoint carries a config this version rebuilds."""
    entry = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, Mapping) else None
    if not isinstance(entry, Mapping) or not isinstance(entry.get("config"), Mapping) or not entry["config"]:
        raise IncompatibleCheckpointError(
            f"{path}: no mdgen config inside the checkpoint (key {CHECKPOINT_KEY!r}); it was not written by "
            "`python -m mdgen.train`, so the network, task and interpolant cannot be rebuilt from it"
        )
    version = entry.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise IncompatibleCheckpointError(
            f"{path}: checkpoint format version {version}, this mdgen reads version {CHECKPOINT_FORMAT_VERSION}"
        )
    task = entry["config"].get("task")
    task_name = task.get("name") if isinstance(task, Mapping) else None
    if not isinstance(task_name, str):
        raise IncompatibleCheckpointError(f"{path}: the stored config has no task name (task.name)")
    if expected_task is not None and task_name != expected_task:
        raise IncompatibleCheckpointError(
            f"{path}: checkpoint was trained for task {task_name!r}, but task {expected_task!r} was requested"
        )


@functools.cache
def _conf_targets(conf: Path) -> frozenset[str]:
    targets = set()
    for yaml_file in sorted(conf.rglob("*.yaml")):
        node = OmegaConf.to_container(OmegaConf.load(yaml_file), resolve=False)
        targets.update(target for _, target in _targets_in(node))
    return frozenset(targets)


def allowed_targets() -> frozenset[str]:
    """`_target_`s a checkpoint's stored config may name: those of conf/ in mdgen, torch and lightning.

    Read from conf/ itself, so a class that a config file starts to use is allowed without a second list.
    """
    return frozenset(
        target
        for target in _conf_targets(config_dir())
        if isinstance(target, str) and target.split(".")[0] in CHECKPOINT_TARGET_PACKAGES
    )


def _targets_in(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every `_target_` in a plain nested dict/list."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                yield here, value
            else:
                yield from _targets_in(value, here)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _targets_in(value, f"{where}[{index}]")


def _interpolations_in(node: Any, where: str = "") -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _interpolations_in(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _interpolations_in(value, f"{where}[{index}]")
    elif isinstance(node, str) and "${" in node:
        yield where


def vetted_run_config(stored: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """The checkpoint's stored config, resolved, once every `_target_` in it is known to be allowed.

    Nothing is instantiated here. Interpolations are resolved first, so a target reached through one is
    judged by its value; the result holds no interpolation left to resolve later (an escaped one
    would become one), so what was checked is exactly what `build_module` instantiates.
    """
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(dict(stored)), resolve=True)
    except Exception as error:  # omegaconf raises many types for values and interpolations it rejects
        message = " ".join(str(error).split())
        raise IncompatibleCheckpointError(f"{path}: the stored config cannot be read ({message})") from error
    allowed = allowed_targets()
    # The nodes `build_module` instantiates (only they are handed to it) must name classes of today's
    # conf/. Elsewhere (logger, callbacks, data: a record, never built from the checkpoint) a class of
    # mdgen/torch/lightning that an older conf/ used is accepted; anything else is refused everywhere.
    for key, target in _targets_in(resolved):
        built = key.split(".")[0].split("[")[0] in CHECKPOINT_BUILT_NODES
        known_package = isinstance(target, str) and target.split(".")[0] in CHECKPOINT_TARGET_PACKAGES
        if target not in allowed and (built or not known_package):
            raise UnsafeCheckpointError(
                f"{path}: refused: the stored config names _target_ {target!r} (at {key}), which is not one "
                "of the mdgen/torch classes that conf/ uses; building it could run any code"
            )
    leftover = next(_interpolations_in(resolved), None)
    if leftover is not None:
        raise UnsafeCheckpointError(
            f"{path}: refused: the stored config value at {leftover} still holds an interpolation after "
            "resolving; mdgen.train stores resolved configs"
        )
    return resolved


def checkpoint_task(ckpt_path: str | Path) -> TaskSpec:
    """The task a checkpoint was trained for (its stored `task` node), without building its network."""
    checkpoint = read_checkpoint(ckpt_path)
    run_config = vetted_run_config(checkpoint[CHECKPOINT_KEY]["config"], ckpt_path)
    return instantiate(OmegaConf.create(run_config["task"]))


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
    run_config = vetted_run_config(checkpoint[CHECKPOINT_KEY]["config"], ckpt_path)
    built = {key: run_config[key] for key in CHECKPOINT_BUILT_NODES if key in run_config}
    module = build_module(OmegaConf.create(built), run_config=run_config)
    state = training_weights_from_checkpoint(checkpoint)
    ema = ema_weights_from_checkpoint(checkpoint) if use_ema else None
    exported_weights = checkpoint[CHECKPOINT_KEY].get("exported_from", {}).get("weights")
    if use_ema and ema is None and exported_weights == "ema":
        log.info("%s: exported checkpoint; its weights are the run's EMA weights", ckpt_path)
    elif use_ema and ema is None:
        log.info("%s: no EMA weights in the checkpoint; loading the training weights", ckpt_path)
    state.update(ema or {})
    module.load_state_dict(state, strict=True)
    return module.to(map_location).eval()
