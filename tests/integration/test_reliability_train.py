"""`python -m mdgen.train` under bad inputs and short runs: every input is checked before DDP ranks
start, short runs of the demo experiments just work, and val/loss does not depend on the device count."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mdgen.config import compose_config
from mdgen.train import train

REPO_ROOT = Path(__file__).resolve().parents[2]
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
SMALL = ["model=tiny", "task.num_frames=10", *QUIET]


def train_cli(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mdgen.train", *overrides, f"hydra.run.dir={run_dir}"],
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def assert_one_line_error(completed: subprocess.CompletedProcess, expected: str) -> None:
    """Exit 2 and one error line, the last one (before it only the progress of the cache's preparation)."""
    assert completed.returncode == 2, completed.stderr[-3000:]
    lines = completed.stderr.strip().splitlines()
    assert lines[-1].startswith("mdgen.train: error: ") and expected in lines[-1], completed.stderr[-3000:]
    assert all(line.startswith(("prepare", "INFO: prepare")) for line in lines[:-1]), completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr and "gloo" not in completed.stderr.lower()


def test_missing_split_file_under_ddp_is_one_line_before_any_rank_starts(tmp_path):
    split = tmp_path / "splits" / "4AA_train.csv"
    completed = train_cli(
        tmp_path / "run", "experiment=demo_forward", *SMALL, "trainer=ddp_sim", f"data.train_split={split}"
    )
    assert_one_line_error(completed, f"split file {split} does not exist")
    assert not list((tmp_path / "run").glob("train_ddp_process_*.log"))  # no rank was launched


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.sim_dir=/nonexistent/md"], "simulation directory /nonexistent/md does not exist"),
        (
            ["data.sim_dir=null", "data.cache_dir=/nonexistent/cache"],
            "cache_dir /nonexistent/cache does not exist",
        ),
        (["data.val_split=data/demo/splits/demo_test.csv", "data.sim_dir=null"], None),
        (
            ["ckpt_path=/nonexistent/last.ckpt"],
            "ckpt_path=/nonexistent/last.ckpt: /nonexistent/last.ckpt does not exist",
        ),
        (["trainer.max_steps=-1"], "a cosine learning-rate schedule needs trainer.max_steps > 0"),
        (["task.num_frames=500"], "cached frames, but a window of 500 frames"),
    ],
)
def test_bad_inputs_under_ddp_are_one_line_before_any_rank_starts(tmp_path, overrides, expected):
    completed = train_cli(
        tmp_path / "run",
        "experiment=demo_forward",
        *SMALL,
        "trainer=ddp_sim",
        "trainer.max_steps=1",
        *overrides,
    )
    if expected is None:  # a valid variation, as control: it trains
        assert completed.returncode == 0, completed.stderr[-3000:]
        return
    assert_one_line_error(completed, expected)
    assert not list((tmp_path / "run").glob("train_ddp_process_*.log"))


@pytest.mark.parametrize(
    "experiment",
    [
        "demo_forward",
        pytest.param("demo_interp", marks=pytest.mark.slow),
        pytest.param("demo_upsample", marks=pytest.mark.slow),
        pytest.param("demo_inpaint", marks=pytest.mark.slow),
    ],
)
def test_five_steps_of_a_demo_experiment_shrink_its_warm_up(experiment, tmp_path, caplog):
    cfg = compose_config(
        [f"experiment={experiment}", "model=tiny", "trainer.max_steps=5", "logger=none", *QUIET]
        + [f"paths.output_dir={tmp_path}"]
    )
    assert cfg.scheduler.warmup_steps == 100
    train(cfg)
    assert "warm-up shortened to 0 steps" in caplog.text
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def _val_losses(run_dir: Path) -> list[float]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return [float(row["val/loss"]) for row in csv.DictReader(handle) if row.get("val/loss")]


@pytest.mark.slow
def test_val_loss_does_not_depend_on_the_number_of_devices(tmp_path):
    """With the learning rate at 0 the weights stay put, so one and two processes must report the same
    val/loss for the 16 validation windows of the demo set (8 per rank)."""
    common = [
        "experiment=demo_forward", *SMALL, "optimizer.lr=0.0", "scheduler=constant", "callbacks.ema.enabled=false",
        "trainer.max_steps=1", "trainer.limit_train_batches=1", "trainer.check_val_every_n_epoch=1",
        "logger=csv", "trainer.max_time=null",
    ]  # fmt: skip
    one = train_cli(tmp_path / "one", *common, "trainer=cpu")
    assert one.returncode == 0, one.stderr[-3000:]
    two = train_cli(tmp_path / "two", *common, "trainer=ddp_sim")
    assert two.returncode == 0, two.stderr[-3000:]
    losses_one, losses_two = _val_losses(tmp_path / "one"), _val_losses(tmp_path / "two")
    assert len(losses_one) == len(losses_two) == 1
    assert losses_two[0] == pytest.approx(losses_one[0], rel=1e-5)
