"""conf/train.yaml: every experiment, and every task x data x model combination, composes and builds."""

import itertools

import pytest
from hydra.utils import instantiate

from mdgen.config import build_callbacks, build_module, compose_config, config_dir
from mdgen.data import MDGenDataModule
from mdgen.model import MDGenNetwork
from mdgen.tasks import TaskSpec

CONF = config_dir()
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
SMALL_MODELS = ["tiny", "small"]


def test_the_config_groups_hold_the_documented_options():
    assert set(TASKS) == {"forward", "interp", "upsample", "inpaint"}
    assert {"4aa", "4aa_implicit", "atlas", "demo", "demo_fine"} <= set(DATASETS)
    assert {"4aa_forward", "4aa_interp", "4aa_upsample", "4aa_inpaint", "atlas_forward"} <= set(EXPERIMENTS)
    assert {"demo_forward", "demo_interp", "demo_upsample", "demo_inpaint"} <= set(EXPERIMENTS)
    assert {p.stem for p in (CONF / "trainer").glob("*.yaml")} == {"default", "cpu", "gpu", "ddp", "ddp_sim"}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(experiment):
    cfg = compose_config([f"experiment={experiment}", "model=tiny"])
    module = build_module(cfg)
    assert isinstance(module.task, TaskSpec) and module.task.name == cfg.task.name
    datamodule = instantiate(cfg.data)  # no setup: the data need not exist
    assert isinstance(datamodule, MDGenDataModule)
    assert datamodule.num_frames == module.task.num_frames
    assert datamodule.frame_interval_ps == module.task.frame_interval_ps
    assert cfg.run_name == experiment


@pytest.mark.parametrize(("task", "data", "model"), list(itertools.product(TASKS, DATASETS, SMALL_MODELS)))
def test_task_data_model_combinations_compose_and_instantiate(task, data, model):
    cfg = compose_config([f"task={task}", f"data={data}", f"model={model}"])
    task_spec = instantiate(cfg.task)
    network = instantiate(cfg.model)
    assert isinstance(network, MDGenNetwork)
    assert network.token_dim == task_spec.token_dim
    assert network.out_dim == task_spec.token_dim + (20 if task_spec.design else 0)
    assert cfg.data.num_frames == task_spec.num_frames
    assert cfg.data.frame_interval_ps == task_spec.frame_interval_ps


def test_base_model_has_the_paper_parameter_count_for_forward_simulation():
    cfg = compose_config(["task=forward", "model=base"])
    network = instantiate(cfg.model)
    assert sum(p.numel() for p in network.parameters()) == 34_152_521  # METHOD 3.8: ~34.15 M


def test_upsample_on_eight_devices_composes_on_its_own():
    cfg = compose_config(["task=upsample", "trainer.devices=8"])
    assert cfg.trainer.devices == 8
    assert cfg.task.cond_interval == 100 and cfg.data.num_frames == 1001 and cfg.data.frame_interval_ps == 0.1


def test_paper_task_defaults_reproduce_the_original_recipes():
    tasks = {name: instantiate(compose_config([f"task={name}"]).task) for name in TASKS}
    assert (tasks["forward"].num_frames, tasks["forward"].frame_interval_ps, tasks["forward"].key_frames) == (
        1000,
        10.0,
        (0,),
    )
    assert tasks["interp"].num_frames == 100 and tasks["interp"].key_frames == (0, -1)
    assert tasks["upsample"].frame_interval_ps == 0.1 and tasks["upsample"].cond_interval == 100
    inpaint = tasks["inpaint"]
    assert (inpaint.cond_residues, inpaint.design_residues, inpaint.design) == ((0, 3), (1, 2), True)
    assert (inpaint.use_aa_emb, inpaint.no_torsion, inpaint.ode_method) == (False, True, "euler")


@pytest.mark.parametrize("debug", sorted(p.stem for p in (CONF / "debug").glob("*.yaml")))
def test_debug_configs_compose(debug):
    cfg = compose_config([f"debug={debug}", "experiment=demo_forward", "model=tiny"])
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


@pytest.mark.parametrize("trainer", ["default", "cpu", "gpu", "ddp", "ddp_sim"])
def test_trainer_configs_compose(trainer):
    cfg = compose_config([f"trainer={trainer}"])
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.trainer.precision == "32-true"


def test_ddp_sim_is_two_cpu_processes():
    trainer = compose_config(["trainer=ddp_sim"]).trainer
    assert (trainer.strategy, trainer.accelerator, trainer.devices) == ("ddp", "cpu", 2)


def test_default_callbacks_checkpoint_last_and_best_by_val_loss_with_ema_off():
    cfg = compose_config(["paths.output_dir=/tmp/run"])
    callbacks = build_callbacks(cfg, has_logger=True)
    best, last = (c for c in callbacks if type(c).__name__ == "ModelCheckpoint")
    assert best.dirpath == last.dirpath == "/tmp/run/checkpoints"
    assert best.monitor == "val/loss" and best.save_top_k == 3
    assert last.monitor is None and last.filename == "last"
    ema = next(c for c in callbacks if type(c).__name__ == "EMA")
    assert not ema.enabled and ema.decay == 0.999
    assert "LearningRateMonitor" not in {type(c).__name__ for c in build_callbacks(cfg, has_logger=False)}


@pytest.mark.parametrize("scheduler", ["warmup_constant", "warmup_cosine"])
def test_schedulers_compose_with_the_optimizer(scheduler):
    cfg = compose_config([f"scheduler={scheduler}", "model=tiny", "trainer.max_steps=5000"])
    module = build_module(cfg)
    assert module.configure_optimizers()["lr_scheduler"]["interval"] == "step"
