"""Training on CUDA: fast_dev_run of every task, a bf16-mixed step, a compiled network, 2-GPU DDP.

Marked `gpu` (left out of `make test`) and skipped without CUDA. Run on a GPU machine with
`pytest -m gpu tests/gpu` (the DDP test needs 2 GPUs). Each run goes through `mdgen.train.train` (the
command's code path); `build_trainer` is wrapped only to add a probe callback and keep the trainer.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import mdgen.train
from mdgen.callbacks import TrajectoryThroughput
from mdgen.config import build_module, compose_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_EXPERIMENTS = ["demo_forward", "demo_interp", "demo_upsample", "demo_inpaint"]
ON_ONE_GPU = [
    "model=tiny",
    "trainer.accelerator=gpu",
    "trainer.devices=1",
    "trainer.enable_progress_bar=false",
]


class StepProbe(pl.Callback):
    """Records the device of every training batch, the loss, the dtype of the network's last linear layer
    output, and the weights before and after training."""

    def __init__(self):
        self.devices: set[str] = set()
        self.output_dtypes: set[torch.dtype] = set()
        self.losses: list[float] = []
        self.initial: dict[str, torch.Tensor] = {}
        self.final: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module):
        self.initial = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        pl_module.network.final_layer.proj.register_forward_hook(
            lambda module, inputs, output: self.output_dtypes.add(output.dtype)
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.devices.add(pl_module.device.type)
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module):
        self.final = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def train_on_gpu(monkeypatch, tmp_path, *overrides):
    """`mdgen.train.train` of the composed config; returns (trainer, probe, returned metric)."""
    probe, kept = StepProbe(), {}
    real_build_trainer = mdgen.train.build_trainer

    def build_trainer_with_probe(cfg, extra_callbacks=()):
        kept["trainer"] = real_build_trainer(cfg, extra_callbacks=[*extra_callbacks, probe])
        return kept["trainer"]

    monkeypatch.setattr(mdgen.train, "build_trainer", build_trainer_with_probe)
    cfg = compose_config([*overrides, *ON_ONE_GPU, f"paths.output_dir={tmp_path}"])
    metric = mdgen.train.train(cfg)
    return kept["trainer"], probe, metric


def assert_one_cuda_step(trainer, probe, metric):
    assert trainer.global_step == 1 and probe.devices == {"cuda"}
    assert len(probe.losses) == 1 and math.isfinite(probe.losses[0])
    assert metric is not None and math.isfinite(metric)  # val/loss of the one validation batch
    moved = probe.final["network.final_layer.proj.weight"] - probe.initial["network.final_layer.proj.weight"]
    assert moved.abs().max() > 0  # an optimizer step happened
    assert all(torch.isfinite(v).all() for v in probe.final.values())


@pytest.mark.parametrize("experiment", DEMO_EXPERIMENTS)
def test_fast_dev_run_of_every_task_on_cuda(experiment, monkeypatch, tmp_path):
    """One training and one validation batch of each task on the GPU. Also: the throughput monitor counted
    the FLOPs of a step where Lightning knows the GPU's peak (H100, A100, ...), so MFU is reported."""
    trainer, probe, metric = train_on_gpu(monkeypatch, tmp_path, f"experiment={experiment}", "debug=fdr")
    assert_one_cuda_step(trainer, probe, metric)
    assert probe.output_dtypes == {torch.float32}
    throughput = next(c for c in trainer.callbacks if isinstance(c, TrajectoryThroughput))
    if throughput.available_flops is not None:
        assert throughput.train_flops > throughput.forward_flops > 0


def test_a_bf16_mixed_training_step(monkeypatch, tmp_path):
    """trainer.precision=bf16-mixed: the network computes in bfloat16 under autocast while the weights
    (and Adam's update of them) stay float32."""
    trainer, probe, metric = train_on_gpu(
        monkeypatch, tmp_path, "experiment=demo_forward", "debug=fdr", "trainer.precision=bf16-mixed"
    )
    assert_one_cuda_step(trainer, probe, metric)
    assert probe.output_dtypes == {torch.bfloat16}
    assert all(v.dtype == torch.float32 for v in probe.final.values() if torch.is_floating_point(v))


def test_bf16_autocast_loss_is_close_to_the_float32_loss():
    """The same batch and noise in float32 and under bf16 autocast: the loss agrees to bf16 precision
    (a few 1e-3 relative). Catches a component that breaks in bf16 (e.g. a norm or an angle in
    bfloat16 that loses the geometry)."""
    torch.manual_seed(0)
    cfg = compose_config(["experiment=demo_forward", "model=tiny", "data.batch_size=4"])
    module = build_module(cfg).cuda()
    batch = first_validation_batch(cfg, "cuda")
    full = module.compute_loss(batch, torch.Generator("cuda").manual_seed(1)).loss.item()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        mixed = module.compute_loss(batch, torch.Generator("cuda").manual_seed(1)).loss.item()
    assert mixed == pytest.approx(full, rel=3e-2)


def test_a_compiled_network_trains_and_matches_the_eager_network(monkeypatch, tmp_path):
    """compile=true: torch.compile of the network trains a step on the GPU, and the compiled network gives
    the eager network's velocity on the same inputs (float32 matmuls, no TF32)."""
    trainer, probe, metric = train_on_gpu(
        monkeypatch, tmp_path, "experiment=demo_forward", "debug=fdr", "compile=true"
    )
    assert_one_cuda_step(trainer, probe, metric)
    assert trainer.lightning_module.network._compiled_call_impl is not None

    torch.set_float32_matmul_precision("highest")  # conftest restores it
    cfg = compose_config(["experiment=demo_forward", "model=tiny", "data.batch_size=4"])
    torch.manual_seed(0)
    eager = build_module(cfg).cuda().eval()
    compiled = build_module(cfg).cuda().eval()
    compiled.load_state_dict(eager.state_dict())
    compiled.network.compile()
    batch = first_validation_batch(cfg, "cuda")
    with torch.no_grad():
        expected = eager.compute_loss(batch, torch.Generator("cuda").manual_seed(2)).loss
        actual = compiled.compute_loss(batch, torch.Generator("cuda").manual_seed(2)).loss
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_ddp_on_two_gpus_keeps_the_ranks_synchronised(tmp_path):
    """trainer=ddp trainer.devices=2 through the real command (Lightning starts rank 1 as a process):
    both ranks end with the same weights, which moved, after seeing different windows."""
    command = [
        sys.executable,
        "-m",
        "mdgen.train",
        "experiment=demo_forward",
        "model=tiny",
        "task.num_frames=10",
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.max_steps=2",
        "scheduler=constant",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path}",
        "+callbacks.probe._target_=training_probe.TrainingProbe",
        f"+callbacks.probe.out_dir={tmp_path}",
    ]
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": python_path},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"probe_rank{rank}.pt", weights_only=False) for rank in (0, 1)]
    assert [(r["rank"], r["world_size"], r["global_step"]) for r in ranks] == [(0, 2, 2), (1, 2, 2)]
    for step in range(2):  # different shards (the same shard would draw the same windows: seeded by item)
        assert set(ranks[0]["batches"][step]) != set(ranks[1]["batches"][step])
    for key, value in ranks[0]["final"].items():
        assert torch.equal(ranks[1]["final"][key], value), f"ranks differ at {key}"
    key = "network.final_layer.proj.weight"
    assert not torch.equal(ranks[0]["final"][key], ranks[0]["initial"][key])


def first_validation_batch(cfg, device):
    """The first validation batch of the composed data config, tensors on `device`."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
