"""Training end to end on data/demo with the tiny model: fast_dev_run per experiment, overfitting one
batch, exact resume (step counter, optimizer, EMA), checkpoint reloading, and a 2-job DDP sweep."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mdgen.callbacks import ema_weights_from_checkpoint, training_weights_from_checkpoint
from mdgen.config import IncompatibleCheckpointError, build_module, compose_config, load_module
from mdgen.train import train
from training_probe import probe_overrides, read_probe

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_EXPERIMENTS = ["demo_forward", "demo_interp", "demo_upsample", "demo_inpaint"]
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.fixture(scope="module", autouse=True)
def demo_data_present():
    if not (REPO_ROOT / "data" / "demo" / "splits" / "demo_train.csv").is_file():
        pytest.fail("data/demo is missing: run `python -m mdgen.simulate` as documented in data/demo/README")


def run_training(output_dir: Path, *overrides: str) -> float | None:
    cfg = compose_config([*overrides, f"paths.output_dir={output_dir}", *QUIET])
    return train(cfg)


@pytest.mark.parametrize("experiment", DEMO_EXPERIMENTS)
def test_fast_dev_run_of_every_demo_experiment(experiment, tmp_path):
    """One training batch and one validation batch: exactly one Adam step of the configured size was
    taken, the losses were logged and are finite, and the saved run config rebuilds the trained network.

    Catches: no optimizer step (optimizer over no parameters, zero learning rate, a detached loss),
    the learning-rate schedule not applied to the first step, losses not logged or NaN, config.yaml
    describing another network than the one trained."""
    probe_dir = tmp_path / "probe"
    metric = run_training(
        tmp_path, f"experiment={experiment}", "model=tiny", "debug=fdr", *probe_overrides(str(probe_dir))
    )
    record = read_probe(probe_dir)
    cfg = compose_config([f"experiment={experiment}", "model=tiny"])
    assert record["world_size"] == 1 and record["global_step"] == 1
    assert len(record["batches"]) == 1 and len(record["batches"][0]) == cfg.data.batch_size

    # Adam's first step moves every weight whose gradient is well above eps by exactly the learning rate:
    # lr / warmup_steps on the first step of the linear warm-up (by hand from conf/, not from the module).
    assert cfg.scheduler.warmup_steps < cfg.trainer.max_steps  # the warm-up is not shortened
    first_lr = cfg.optimizer.lr / cfg.scheduler.warmup_steps
    initial, final = record["initial"], record["final"]
    assert all(torch.isfinite(value).all() for value in final.values())
    step = (final["network.final_layer.proj.weight"] - initial["network.final_layer.proj.weight"]).abs()
    assert step.max().item() == pytest.approx(first_lr, rel=1e-2)
    assert (step <= first_lr * 1.01).all()

    metrics = record["metrics"]
    for key in ("train/loss", "val/loss"):
        assert math.isfinite(metrics[key]) and metrics[key] > 0, key
    assert metric == pytest.approx(metrics["val/loss"])  # train() returns the optimized metric

    saved = OmegaConf.load(tmp_path / "checkpoints" / "config.yaml")
    rebuilt = build_module(saved)
    rebuilt.load_state_dict(final, strict=True)
    assert rebuilt.task.name == cfg.task.name and rebuilt.task.num_frames == cfg.task.num_frames


def test_overfitting_one_batch_halves_the_loss():
    cfg = compose_config(["experiment=demo_forward", "model=tiny", "task.num_frames=10", "data.batch_size=4"])
    torch.manual_seed(0)
    module = build_module(cfg)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))

    def loss_on_fixed_noise() -> float:  # the same 16 draws of (t, x0) before and after training
        generator = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return sum(module.compute_loss(batch, generator).loss.item() for _ in range(16)) / 16

    initial = loss_on_fixed_noise()
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        loss = module.compute_loss(batch, generator).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = loss_on_fixed_noise()
    assert final <= 0.5 * initial, f"loss fell from {initial:.3f} to {final:.3f} only"


@pytest.mark.parametrize("experiment", DEMO_EXPERIMENTS)
def test_sample_api_on_demo_batches(experiment):
    cfg = compose_config([f"experiment={experiment}", "model=tiny", "data.batch_size=2"])
    module = build_module(cfg).eval()
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    result = module.sample(
        batch, generator=torch.Generator().manual_seed(0), method="euler", num_steps=3, clamp_conditioned=True
    )
    inputs = module.task.build_inputs(batch)
    assert result.tokens.shape == inputs.tokens.shape and result.nfe == 2
    given = inputs.cond_mask > 0
    assert torch.equal(result.tokens[given], inputs.tokens[given])
    assert result.aatype.shape == batch["aatype"].shape and result.aatype.max() < 20
    assert (result.aa_probs is not None) == module.task.design


RESUME = [
    "experiment=demo_forward",
    "model=tiny",
    "task.num_frames=10",
    "data.batch_size=4",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.check_val_every_n_epoch=1",
    "trainer.max_time=null",
    "scheduler=warmup_constant",  # independent of max_steps; the warm-up spans the resume point
    "scheduler.warmup_steps=3",
    "callbacks.ema.enabled=true",
    "callbacks.ema.decay=0.9",
    "logger=csv",
    "trainer.log_every_n_steps=1",
    "callbacks.throughput.window_size=2",
    "seed=3",
]


def metrics_by_step(run_dir: Path, column: str) -> dict[int, float]:
    """{step: value} of one column of the run's csv/metrics.csv (rows where it was logged)."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return {int(row["step"]): float(row[column]) for row in csv.DictReader(handle) if row.get(column)}


def test_resume_continues_step_counter_optimizer_and_ema_exactly(tmp_path):
    metric = run_training(tmp_path / "straight", *RESUME, "trainer.max_steps=4")
    run_training(tmp_path / "resumed", *RESUME, "trainer.max_steps=2")
    run_training(tmp_path / "resumed", *RESUME, "trainer.max_steps=4", "ckpt_path=last")

    straight = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=False)
    assert straight["global_step"] == resumed["global_step"] == 4
    straight_weights = training_weights_from_checkpoint(straight)
    resumed_weights = training_weights_from_checkpoint(resumed)
    for key, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[key], value, msg=f"weights differ at {key}")
    straight_ema, resumed_ema = ema_weights_from_checkpoint(straight), ema_weights_from_checkpoint(resumed)
    assert straight_ema.keys() == straight_weights.keys()
    for key, value in straight_ema.items():
        torch.testing.assert_close(resumed_ema[key], value, msg=f"EMA differs at {key}")
    # the EMA is its own state: not the training weights (a resume that re-seeded it from them, or saved
    # the training weights twice, would make the two equal)
    assert not torch.allclose(
        straight_ema["network.final_layer.proj.weight"], straight_weights["network.final_layer.proj.weight"]
    )
    assert straight["callbacks"]["EMA"] == resumed["callbacks"]["EMA"] == {"latest_update_step": 4}
    assert straight["lr_schedulers"][0]["last_epoch"] == resumed["lr_schedulers"][0]["last_epoch"] == 4
    adam_straight = straight["optimizer_states"][0]["state"]
    adam_resumed = resumed["optimizer_states"][0]["state"]
    for index, state in adam_straight.items():
        torch.testing.assert_close(adam_resumed[index]["exp_avg_sq"], state["exp_avg_sq"])
    assert isinstance(metric, float) and metric == metric  # train() returns val/loss for sweeps
    # logger=csv: the resumed run appended to metrics.csv; the first segment's rows are still there, and
    # the values are the straight run's. (Lightning numbers the resumed rows one step later: 0, 1, 3, 4.)
    for column in ("train/loss_step", "val/loss"):
        straight_rows = metrics_by_step(tmp_path / "straight", column)
        resumed_rows = metrics_by_step(tmp_path / "resumed", column)
        assert len(resumed_rows) == len(straight_rows) >= 2 and min(resumed_rows) < 2 <= max(resumed_rows)
        assert list(resumed_rows.values()) == pytest.approx(list(straight_rows.values()), rel=1e-5), column

    # Lightning's ThroughputMonitor: frames (B*T) per second are windows (B) per second x T = 10 frames.
    # Catches the two counts swapped or frames counted as B*L.
    frames = metrics_by_step(tmp_path / "straight", "train/device/items_per_sec")
    windows = metrics_by_step(tmp_path / "straight", "train/device/samples_per_sec")
    assert frames and frames.keys() == windows.keys()
    assert all(frames[step] == pytest.approx(10 * windows[step]) and frames[step] > 0 for step in frames)

    # The checkpoint alone rebuilds the module, with the EMA weights by default.
    module = load_module(tmp_path / "straight/checkpoints/last.ckpt", expected_task="forward")
    assert module.task.num_frames == 10 and not module.training
    torch.testing.assert_close(
        module.state_dict()["network.final_layer.proj.weight"],
        straight_ema["network.final_layer.proj.weight"],
    )
    with pytest.raises(IncompatibleCheckpointError, match="trained for task 'forward'"):
        load_module(tmp_path / "straight/checkpoints/last.ckpt", expected_task="interp")
    with pytest.raises(IncompatibleCheckpointError, match="trained for task 'forward'"):
        run_training(tmp_path / "resumed", *RESUME, "task=interp", "trainer.max_steps=6", "ckpt_path=last")


def test_checkpoints_without_an_mdgen_config_are_refused(tmp_path):
    path = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "global_step": 0}, path)
    with pytest.raises(IncompatibleCheckpointError, match="no mdgen config"):
        load_module(path)


def test_a_two_job_ddp_sweep_trains_one_synchronised_model_per_job_in_its_own_directory(tmp_path):
    """Two jobs (seeds 1, 2) of 2-process CPU DDP (gloo), 2 optimizer steps each, through the real command.

    Each rank records its weights and batches (tests/training_probe.py). Within a job the ranks saw
    different windows (DistributedSampler shards) with different noise (seed + rank), yet end with
    identical weights that differ from the initial ones: the gradients were all-reduced.
    Catches: ranks training separate models (no gradient sync, a rank-dependent learning rate or
    parameter set), both ranks reading the same shard, a job's ranks writing into the other job's
    directory or the sweep directory."""
    command = [
        sys.executable,
        "-m",
        "mdgen.train",
        "-m",
        "experiment=demo_forward",
        "model=tiny",
        "task.num_frames=10",
        "trainer=ddp_sim",
        "trainer.max_steps=2",
        "scheduler=constant",  # a 2-step run has no room for the demo's warm-up
        "logger=csv",
        "seed=1,2",
        f"hydra.sweep.dir={tmp_path}",
        *probe_overrides(),  # each rank writes <job dir>/probe_rank<R>.pt
        *QUIET,
    ]
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": python_path}
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["0", "1"]
    finals = []
    for job in ("0", "1"):
        assert (tmp_path / job / "checkpoints" / "last.ckpt").is_file()
        assert (tmp_path / job / "train_ddp_process_1.log").is_file()  # rank 1 ran inside this job's dir
        ranks = [read_probe(tmp_path / job, rank) for rank in (0, 1)]
        assert [(r["rank"], r["world_size"], r["global_step"]) for r in ranks] == [(0, 2, 2), (1, 2, 2)]
        for step in range(2):
            assert not set(ranks[0]["batches"][step]) & set(ranks[1]["batches"][step])  # different shards
        initial, final = ranks[0]["initial"], ranks[0]["final"]
        for key, value in final.items():
            assert torch.equal(ranks[1]["final"][key], value), f"job {job}: ranks differ at {key}"
            assert torch.equal(ranks[1]["initial"][key], initial[key]), f"job {job}: start differs at {key}"
        assert not torch.equal(
            final["network.final_layer.proj.weight"], initial["network.final_layer.proj.weight"]
        )
        saved = torch.load(tmp_path / job / "checkpoints/last.ckpt", weights_only=False)
        saved_weights = training_weights_from_checkpoint(saved)  # demo_forward keeps EMA weights beside them
        for key, value in final.items():  # rank 0 saved the synchronised weights
            assert torch.equal(saved_weights[key], value), f"job {job}: checkpoint differs at {key}"
        finals.append(final)
        assert saved["mdgen"]["config"]["seed"] == int(job) + 1
    assert not torch.equal(
        finals[0]["network.final_layer.proj.weight"], finals[1]["network.final_layer.proj.weight"]
    )  # the two jobs are two runs (seeds 1 and 2), not one
