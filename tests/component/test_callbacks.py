"""mdgen.callbacks without a Trainer: the EMA callback (Lightning's weight averaging with the original
recurrence), its checkpoint layouts (Lightning's and the earlier one), and the throughput monitor's inputs.

The expected numbers are worked out by hand from the recurrence ema <- d * ema + (1 - d) * w.
End-to-end resume through a Trainer: tests/integration/test_train.py.
"""

from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from mdgen.callbacks import (
    EMA,
    TrajectoryThroughput,
    count_step_flops,
    ema_weights_from_checkpoint,
    training_weights_from_checkpoint,
    trajectory_frames,
    trajectory_windows,
)
from mdgen.config import compose_config


class LinearModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)


def trainer_at(step):
    return SimpleNamespace(global_step=step, current_epoch=0)


def started(decay, module=None):
    module = module or LinearModule()
    ema = EMA(decay=decay)
    ema.setup(None, module, "fit")
    return module, ema


def shift_weights(module, amount):
    with torch.no_grad():
        module.layer.weight.add_(amount)


def test_ema_starts_at_the_initial_weights_and_updates_once_per_optimizer_step():
    """After one step: d * w0 + (1 - d) * w1 (the original's recurrence). Catches Lightning's AveragedModel
    default (the first update copies w1), a missing update, and a second update on an accumulation
    micro-batch (same global_step)."""
    module, ema = started(0.9)
    w0 = module.layer.weight.detach().clone()
    shift_weights(module, 1.0)
    ema.on_train_batch_end(trainer_at(1), module, None, None, 0)
    ema.on_train_batch_end(trainer_at(1), module, None, None, 1)  # accumulation micro-batch: no update
    torch.testing.assert_close(ema.average["layer.weight"], w0 + 0.1)
    shift_weights(module, 1.0)  # w2 = w0 + 2
    ema.on_train_batch_end(trainer_at(2), module, None, None, 2)
    torch.testing.assert_close(ema.average["layer.weight"], 0.9 * (w0 + 0.1) + 0.1 * (w0 + 2.0))


def test_validation_runs_with_the_average_and_training_ends_with_the_training_weights():
    module, ema = started(0.5)
    shift_weights(module, 2.0)
    ema.on_train_batch_end(trainer_at(1), module, None, None, 0)
    training = module.layer.weight.detach().clone()
    ema.on_validation_epoch_start(None, module)
    torch.testing.assert_close(module.layer.weight, training - 1.0)  # 0.5 * w0 + 0.5 * (w0 + 2)
    ema.on_validation_epoch_end(None, module)
    torch.testing.assert_close(module.layer.weight, training)
    ema.on_train_end(None, module)  # Lightning's default would copy the average in
    torch.testing.assert_close(module.layer.weight, training)


def saved_checkpoint(module, ema, step):
    checkpoint = {"state_dict": module.state_dict(), "global_step": step, "callbacks": {}}
    ema.on_save_checkpoint(None, module, checkpoint)
    checkpoint["callbacks"]["EMA"] = ema.state_dict()
    return checkpoint


def test_checkpoint_holds_both_weight_sets_and_a_resume_restores_them():
    """Lightning's layout: state_dict = EMA, current_model_state = training weights. A resumed callback
    continues the same average (catches an EMA re-seeded from the resumed training weights)."""
    module, ema = started(0.5)
    shift_weights(module, 2.0)
    ema.on_train_batch_end(trainer_at(1), module, None, None, 0)
    checkpoint = saved_checkpoint(module, ema, step=1)
    training = module.layer.weight.detach().clone()
    torch.testing.assert_close(training_weights_from_checkpoint(checkpoint)["layer.weight"], training)
    torch.testing.assert_close(ema_weights_from_checkpoint(checkpoint)["layer.weight"], training - 1.0)

    # What Trainer.fit(ckpt_path=...) does: setup, load state_dict into the module, then the callback hooks.
    resumed_module, resumed = LinearModule(), EMA(decay=0.5)
    resumed.setup(None, resumed_module, "fit")
    resumed_module.load_state_dict(checkpoint["state_dict"])
    resumed.on_load_checkpoint(None, resumed_module, checkpoint)
    resumed.load_state_dict(checkpoint["callbacks"]["EMA"])
    torch.testing.assert_close(resumed_module.layer.weight, training)
    torch.testing.assert_close(resumed.average["layer.weight"], training - 1.0)
    resumed.on_train_batch_end(trainer_at(1), resumed_module, None, None, 0)  # step 1 was averaged already
    torch.testing.assert_close(resumed.average["layer.weight"], training - 1.0)
    shift_weights(resumed_module, 2.0)
    resumed.on_train_batch_end(trainer_at(2), resumed_module, None, None, 1)
    torch.testing.assert_close(
        resumed.average["layer.weight"], 0.5 * (training - 1.0) + 0.5 * (training + 2.0)
    )


def old_layout_checkpoint(training, shadow, step):
    """A checkpoint of mdgen's EMA callback before Lightning's: training weights + callbacks.EMA.shadow."""
    return {
        "state_dict": training,
        "global_step": step,
        "callbacks": {"EMA": {"decay": 0.5, "num_updates": step, "shadow": shadow}},
    }


def test_checkpoints_of_the_earlier_ema_layout_are_read_and_resumed():
    module = LinearModule()
    training = {k: v.clone() for k, v in module.state_dict().items()}
    shadow = {k: v + 1.0 for k, v in training.items()}
    checkpoint = old_layout_checkpoint(training, shadow, step=7)
    assert training_weights_from_checkpoint(checkpoint) == training
    assert ema_weights_from_checkpoint(checkpoint) == shadow
    assert ema_weights_from_checkpoint({"state_dict": training, "callbacks": {}}) is None

    ema = EMA(decay=0.5)
    ema.setup(None, module, "fit")
    ema.on_load_checkpoint(None, module, checkpoint)
    ema.load_state_dict(checkpoint["callbacks"]["EMA"])  # the old state dict is ignored, not a KeyError
    torch.testing.assert_close(ema.average["layer.weight"], shadow["layer.weight"])
    ema.on_train_batch_end(trainer_at(7), module, None, None, 0)  # no new optimizer step since the save
    torch.testing.assert_close(ema.average["layer.weight"], shadow["layer.weight"])
    ema.on_train_batch_end(trainer_at(8), module, None, None, 1)  # averages, does not copy
    torch.testing.assert_close(ema.average["layer.weight"], training["layer.weight"] + 0.5)


def test_disabled_ema_is_a_no_op_and_resumes_an_ema_run_from_its_training_weights():
    module, ema = started(0.5)
    shift_weights(module, 2.0)
    ema.on_train_batch_end(trainer_at(1), module, None, None, 0)
    checkpoint = saved_checkpoint(module, ema, step=1)
    training = module.layer.weight.detach().clone()

    off_module, off = LinearModule(), EMA(decay=0.5, enabled=False)
    off.setup(None, off_module, "fit")
    assert off.average is None and off.state_dict() == {}
    off_module.load_state_dict(checkpoint["state_dict"])  # Lightning loads the EMA weights first
    off.on_load_checkpoint(None, off_module, checkpoint)
    torch.testing.assert_close(off_module.layer.weight, training)
    off.on_train_batch_end(trainer_at(2), off_module, None, None, 0)
    unsaved = {"state_dict": off_module.state_dict()}
    off.on_save_checkpoint(None, off_module, unsaved)
    assert set(unsaved) == {"state_dict"}


def test_decay_outside_the_unit_interval_is_refused():
    for decay in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="decay"):
            EMA(decay=decay)


def test_the_network_state_is_its_parameters_so_averaging_parameters_covers_every_saved_weight():
    """EMA averages parameters only (use_buffers=False). Catches a persistent buffer added to the network:
    it would be saved but not averaged."""
    cfg = compose_config(["model=tiny"])
    network = instantiate(cfg.model)
    assert set(network.state_dict()) == {name for name, _ in network.named_parameters()}


# ---- throughput -----------------------------------------------------------------------------------------


def test_throughput_counts_windows_and_frames():
    batch = {"trans": torch.zeros(3, 7, 4, 3)}
    assert trajectory_windows(batch) == 3 and trajectory_frames(batch) == 21
    with pytest.raises(ValueError, match="window_size"):
        TrajectoryThroughput(window_size=1)


class NoisyLinear(pl.LightningModule):
    """loss = sum(layer(x + noise)) for x of shape (B, 8) and an 8 -> 4 linear layer."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(8, 4, bias=False)

    def compute_loss(self, batch, generator):
        noise = torch.randn(batch["x"].shape, generator=generator)
        return SimpleNamespace(loss=self.layer(batch["x"] + noise).sum())


def test_step_flops_are_counted_without_touching_gradients_or_the_global_rng():
    """Forward: one (B, 8) x (8, 4) matmul = 2 * B * 8 * 4 FLOPs; backward: only the weight gradient (the
    input needs none), the same count again. Catches gradients accumulated into .grad (they would add to
    the first real step) and global RNG draws (they would change the training noise)."""
    module, batch = NoisyLinear(), {"x": torch.ones(5, 8)}
    rng_before = torch.get_rng_state()
    forward, step = count_step_flops(module, batch)
    assert forward == 2 * 5 * 8 * 4 and step == 2 * forward
    assert module.layer.weight.grad is None
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_flops_are_counted_once_on_the_first_training_batch_and_handed_to_the_monitor():
    """Where Lightning knows the device's peak (set by hand here: CPUs have none), the first training batch
    is counted once; ThroughputMonitor then reads `flops_per_batch`: the training step's count during
    training, the forward count during validation. Catches a count on every batch and the two swapped."""
    monitor, module = TrajectoryThroughput(window_size=2), NoisyLinear()
    monitor.available_flops = 10**12
    trainer = SimpleNamespace(is_global_zero=True, precision_plugin=pl.plugins.precision.Precision())
    monitor.on_train_batch_start(trainer, module, {"x": torch.ones(5, 8)}, 0)
    assert (monitor.forward_flops, monitor.train_flops) == (2 * 5 * 8 * 4, 4 * 5 * 8 * 4)
    assert module.flops_per_batch == monitor.train_flops
    monitor.on_train_batch_start(trainer, module, {"x": torch.ones(7, 8)}, 1)  # not counted again
    assert module.flops_per_batch == 4 * 5 * 8 * 4
    monitor.on_validation_batch_start(trainer, module, {"x": torch.ones(5, 8)}, 0)
    assert module.flops_per_batch == 2 * 5 * 8 * 4
    cpu_monitor, cpu_module = TrajectoryThroughput(window_size=2), NoisyLinear()
    cpu_monitor.available_flops = None
    cpu_monitor.on_train_batch_start(trainer, cpu_module, {"x": torch.ones(5, 8)}, 0)
    assert cpu_module.flops_per_batch is None  # attribute present: no per-batch warning, no FLOPs
