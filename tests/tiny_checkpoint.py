"""An untrained tiny forward model in the checkpoint layout `mdgen.train` writes, without training it."""

from dataclasses import asdict
from pathlib import Path

from mdgen.config import build_module, compose_config, to_plain_dict
from mdgen.module import CHECKPOINT_FORMAT_VERSION, CHECKPOINT_KEY


def untrained_checkpoint(run_dir: Path, num_frames: int) -> dict:
    """The dict mdgen.train saves (weights, step, config, task) for `experiment=demo_forward model=tiny`."""
    cfg = compose_config(
        ["experiment=demo_forward", "model=tiny", f"task.num_frames={num_frames}", f"hydra.run.dir={run_dir}"]
    )
    run_config = to_plain_dict(cfg)
    module = build_module(cfg, run_config=run_config)
    entry = {"format_version": CHECKPOINT_FORMAT_VERSION, "config": run_config, "task": asdict(module.task)}
    return {"state_dict": module.state_dict(), "global_step": 0, CHECKPOINT_KEY: entry}
