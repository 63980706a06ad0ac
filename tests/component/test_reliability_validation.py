"""Validation noise is drawn per window, so val/loss does not depend on batching, rank or device count."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from mdgen.config import build_module, compose_config
from mdgen.data.dataset import collate_windows
from mdgen.module import WarmupThenDecay


def _validation_windows(experiment: str):
    cfg = compose_config(
        [f"experiment={experiment}", "model=tiny", "task.num_frames=10", "data.val_repeat=6"]
    )
    torch.manual_seed(0)
    module = build_module(cfg).eval()
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("validate")
    dataset = datamodule.datasets["val"]
    return module, [dataset[index] for index in range(len(dataset))]


def _mean_loss(module, windows, batch_size: int) -> float:
    """val/loss as Lightning aggregates it on one rank: batch means weighted by batch size."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = collate_windows(windows[start : start + batch_size])
            terms = module.compute_loss(batch, module.validation_generators(batch))
            total += terms.loss.item() * len(batch["name"])
    return total / len(windows)


@pytest.mark.parametrize("experiment", ["demo_forward", "demo_inpaint"])  # inpaint designs residues too
def test_validation_loss_is_the_same_for_any_batching_and_any_number_of_ranks(experiment):
    module, windows = _validation_windows(experiment)
    assert len(windows) == 6
    one_device = _mean_loss(module, windows, batch_size=6)
    assert _mean_loss(module, windows, batch_size=4) == pytest.approx(one_device, rel=1e-5)
    # Two and three ranks, as DistributedSampler shards the windows (rank r takes r, r + n, ...);
    # Lightning averages the per-rank means, which have equally many windows here.
    for ranks in (2, 3):
        shards = [windows[rank::ranks] for rank in range(ranks)]
        per_rank = [_mean_loss(module, shard, batch_size=2) for shard in shards]
        assert sum(per_rank) / ranks == pytest.approx(one_device, rel=1e-5)
    # The noise really is per window: reversing the order changes nothing, another seed changes the loss.
    assert _mean_loss(module, windows[::-1], batch_size=4) == pytest.approx(one_device, rel=1e-5)
    module.seed += 1
    assert _mean_loss(module, windows, batch_size=6) != pytest.approx(one_device, rel=1e-5)


def test_a_cosine_schedule_shorter_than_its_warm_up_shrinks_the_warm_up(caplog):
    schedule = WarmupThenDecay(warmup_steps=100, total_steps=5, decay="cosine")
    assert schedule.warmup_steps == 0 and "warm-up shortened to 0 steps" in caplog.text
    assert schedule(0) == 1.0 and schedule(5) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"needs trainer.max_steps > 0 .*got -1"):
        WarmupThenDecay(warmup_steps=100, total_steps=-1, decay="cosine")
