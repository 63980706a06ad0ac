"""conf/ layering (lightning-hydra-template style): data configs extend data/base.yaml, the demo and
paper-tetrapeptide experiments extend experiment/base/*.yaml, the optional `local` slot, the Optuna
`hparams_search` and the SLURM launcher preset.

The composition of every experiment and data x task pair is tested in test_configs.py; these tests check
what the layering adds. The launcher and sweeper presets need Hydra plugins that `make install` does not
install (the `[slurm]` extra, hydra-optuna-sweeper); their composition tests skip without them.
"""

import functools
import importlib.util

import pytest
from omegaconf import DictConfig, OmegaConf

from mdgen.config import compose_config, config_dir

CONF = config_dir()
DATA = sorted(p.stem for p in (CONF / "data").glob("*.yaml") if p.stem != "base")
DEMO_EXPERIMENTS = ["demo_forward", "demo_interp", "demo_upsample", "demo_inpaint"]
PAPER_TETRAPEPTIDE_EXPERIMENTS = ["4aa_forward", "4aa_interp", "4aa_upsample", "4aa_inpaint"]
BASE_DATA_KEYS = set(OmegaConf.load(CONF / "data" / "base.yaml"))


def has_plugin(module: str) -> bool:
    return (
        importlib.util.find_spec("hydra_plugins") is not None and importlib.util.find_spec(module) is not None
    )


def defaults_chain(group: str, name: str) -> list[str]:
    """The first entry of each config's defaults list, followed within the group: demo_fine -> demo -> base."""
    chain = [name]
    while True:
        defaults = OmegaConf.load(CONF / group / f"{chain[-1]}.yaml").get("defaults") or []
        parents = [d for d in defaults if isinstance(d, str) and d != "_self_"]
        if not parents:
            return chain
        chain.append(parents[0])


def merged_data_config(name: str) -> DictConfig:
    """What Hydra composes for `data=NAME` from the data group alone: the defaults chain merged in order
    (base first, the file itself last; every data config lists `_self_` last)."""
    chain = defaults_chain("data", name)
    merged = OmegaConf.merge(*(OmegaConf.load(CONF / "data" / f"{n}.yaml") for n in reversed(chain)))
    merged.pop("defaults", None)
    return merged


def missing(node: DictConfig) -> set[str]:
    """Top-level keys still `???` (without resolving interpolations to other groups)."""
    return {key for key in node if OmegaConf.is_missing(node, key)}


@pytest.mark.parametrize("data", DATA)
def test_every_data_config_extends_the_base_and_fills_every_mandatory_value(data):
    """Catches a data config that stops extending base (it would lose the loader defaults), leaves a
    mandatory value (sim_dir, cache_dir, splits, cache_interval_ps) unset or adds a key the base does not
    have (a typo that the DataModule would reject only at run time). That Hydra composes each of them:
    test_configs.py."""
    assert defaults_chain("data", data)[-1] == "base"
    merged = merged_data_config(data)
    assert set(merged) == BASE_DATA_KEYS
    assert missing(merged) == set()


def test_the_base_data_config_is_not_a_data_set_of_its_own():
    base = OmegaConf.load(CONF / "data" / "base.yaml")
    assert missing(base) == {
        "sim_dir",
        "cache_dir",
        "cache_interval_ps",
        "train_split",
        "val_split",
    }


@functools.cache
def composed(*overrides: str) -> DictConfig:
    return compose_config(list(overrides))


def test_demo_experiments_share_one_base():
    """The shared settings come from experiment/base/demo.yaml, one place to change them; each demo
    experiment lists it first. Composed: the experiment with the fewest own settings (interp) gets the
    base's values, and upsample's own batch size wins over the base's."""
    base = OmegaConf.load(CONF / "experiment" / "base" / "demo.yaml")
    for name in DEMO_EXPERIMENTS:
        assert defaults_chain("experiment", name) == [name, "base/demo"]
    interp = composed("experiment=demo_interp")
    assert (
        interp.optimizer.lr == base.optimizer.lr
        and interp.scheduler.warmup_steps == base.scheduler.warmup_steps
    )
    assert interp.callbacks.ema.enabled and interp.callbacks.ema.decay == base.callbacks.ema.decay
    assert interp.trainer.max_steps == base.trainer.max_steps and interp.trainer.accelerator == "cpu"
    choices = interp.hydra.runtime.choices
    assert (choices["model"], choices["scheduler"], choices["data"]) == ("small", "warmup_cosine", "demo")
    assert interp.run_name == "demo_interp" and interp.task.name == "interp"
    upsample = composed("experiment=demo_upsample")
    assert (
        upsample.data.batch_size == 4 != base.data.batch_size
        and upsample.data.val_repeat == base.data.val_repeat
    )


def test_paper_tetrapeptide_experiments_share_the_absolute_residue_positions():
    for name in PAPER_TETRAPEPTIDE_EXPERIMENTS:
        assert defaults_chain("experiment", name) == [name, "base/4aa"]
    cfg = composed("experiment=4aa_interp")
    assert (cfg.model.residue_pos_emb, cfg.model.max_residues) == ("table", 4)
    assert cfg.hydra.runtime.choices["model"] == "base" and cfg.run_name == "4aa_interp"


def test_the_local_slot_is_optional_and_overrides_the_experiment(tmp_path):
    """Without conf/local/default.yaml every other test composes unchanged; a local/default.yaml on the
    search path (where a user's own config directory puts it) is loaded after the experiment and wins."""
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "default.yaml").write_text("# @package _global_\ndata:\n  num_workers: 3\n")
    local = compose_config(["experiment=demo_interp", f"hydra.searchpath=[file://{tmp_path}]"])
    assert composed("experiment=demo_interp").data.num_workers == 0 and local.data.num_workers == 3
    example = (CONF / "local" / "example.yaml").read_text()
    assert example.startswith("# @package _global_")  # like default.yaml, it overrides from the root


def test_the_optuna_search_space_names_options_that_exist():
    """Read without the plugin: every searched key is an option of the composed train config (catches a
    renamed option, which Optuna would otherwise add as a new, unused key)."""
    search = OmegaConf.load(CONF / "hparams_search" / "optuna.yaml")
    cfg = composed("experiment=demo_interp")
    for key in search.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key, default="<absent>") != "<absent>", key
    assert search.optimized_metric == cfg.optimized_metric == "val/loss"


@pytest.mark.skipif(
    not has_plugin("hydra_plugins.hydra_optuna_sweeper"),
    reason="hydra-optuna-sweeper is not installed (pip install -e '.[sweep]')",
)
def test_hparams_search_optuna_composes_with_the_plugin():
    cfg = compose_config(["hparams_search=optuna", "experiment=demo_forward"])
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweeper.direction == "minimize" and cfg.hydra.sweeper.n_trials == 20


@pytest.mark.skipif(
    not has_plugin("hydra_plugins.hydra_submitit_launcher"),
    reason="hydra-submitit-launcher is not installed (pip install -e '.[slurm]')",
)
def test_slurm_launcher_sizes_the_allocation_from_the_trainer():
    """One task and one GPU per device on each of trainer.num_nodes nodes (what Lightning's SLURM
    environment expects: SLURM_NTASKS_PER_NODE == trainer.devices)."""
    cfg = compose_config(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.max_num_timeout == 0 and launcher.submitit_folder.endswith(".submitit/%j")
