"""`python -m mdgen.convert in_ckpt=ORIGINAL.ckpt out_ckpt=OURS.ckpt`: import an original MDGen checkpoint.

Reads the original's Lightning checkpoint safely (`mdgen.checkpoints.original_file`), derives the paper
recipe from its saved arguments (`original_recipe`), composes this project's config for that recipe with
the original's sizes and `model.sink_position=original`, maps every weight and the EMA weights
(`original_weights`), writes the checkpoint atomically (`writer`) and loads it back through
`mdgen.config.load_module` as a check. Options: conf/convert.yaml.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from mdgen.checkpoints import (
    converted_checkpoint,
    map_original_weights,
    read_original_checkpoint,
    recipe_from_args,
    write_checkpoint_atomically,
)
from mdgen.config import build_module, compose_config, hydra_main, load_module, to_plain_dict
from mdgen.errors import UserError, user_errors
from mdgen.files import sha256_of
from mdgen.module import CHECKPOINT_KEY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversionResult:
    out_ckpt: Path
    recipe: str  # forward | interp | upsample | inpaint | atlas
    experiment: str
    has_ema: bool
    num_parameters: int
    skipped: bool  # out_ckpt was already converted from this very file
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"{self.out_ckpt}: already converted from this file (recipe {self.recipe}); kept"]
        return [
            f"{self.out_ckpt}: recipe {self.recipe} (experiment={self.experiment}), "
            f"{self.num_parameters:,} parameters, EMA weights: {'yes' if self.has_ema else 'no'}",
            *(f"note: {note}" for note in self.notes),
        ]


def compose_train_config(overrides: Sequence[str]) -> DictConfig:
    """The `conf/train.yaml` composition for `overrides`, inside a running Hydra app or outside one."""
    if GlobalHydra.instance().is_initialized():
        return hydra.compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    return compose_config(overrides)


def convert_checkpoint(
    in_ckpt: str | Path,
    out_ckpt: str | Path,
    *,
    overwrite: bool = False,
    frame_interval_ps: float | None = None,
) -> ConversionResult:
    """Convert one original checkpoint; raises `UserError` subclasses naming the problem."""
    in_ckpt, out_ckpt = Path(in_ckpt), Path(out_ckpt)
    if in_ckpt.resolve() == out_ckpt.resolve():
        raise UserError(f"out_ckpt={out_ckpt} is the input itself; choose another path")
    existing = _existing_conversion(out_ckpt, in_ckpt, overwrite)
    if existing is not None:
        return existing

    original = read_original_checkpoint(in_ckpt)
    recipe = recipe_from_args(original.args, frame_interval_ps)
    cfg = compose_train_config(recipe.hydra_overrides())
    run_config = to_plain_dict(cfg)
    module = build_module(cfg, run_config=run_config)
    source = f"in_ckpt={in_ckpt}"
    weights = map_original_weights(original.state_dict, module.network, recipe.ipa, source)
    module.network.load_state_dict(weights, strict=True)
    ema = None
    if original.ema_params is not None:
        ema = map_original_weights(original.ema_params, module.network, recipe.ipa, f"{source} (ema.params)")

    provenance = {
        "file": original.path.name,
        "sha256": original.sha256,
        "size_bytes": original.size_bytes,
        "recipe": recipe.name,
        "experiment": recipe.experiment,
        "overrides": list(recipe.hydra_overrides()),
        "pytorch_lightning_version": original.lightning_version,
        "original_args": original.args,
        "notes": list(recipe.notes),
    }
    checkpoint = converted_checkpoint(
        network_state=weights,
        ema_state=ema,
        run_config=run_config,
        task=asdict(module.task),
        provenance=provenance,
        epoch=original.epoch,
        global_step=original.global_step,
        lightning_version=lightning.__version__,
    )
    write_checkpoint_atomically(checkpoint, out_ckpt)
    _check_round_trip(out_ckpt, weights, ema)
    return ConversionResult(
        out_ckpt=out_ckpt,
        recipe=recipe.name,
        experiment=recipe.experiment,
        has_ema=ema is not None,
        num_parameters=sum(p.numel() for p in module.network.parameters()),
        skipped=False,
        notes=recipe.notes,
    )


def _existing_conversion(out_ckpt: Path, in_ckpt: Path, overwrite: bool) -> ConversionResult | None:
    """An out_ckpt converted from the same input (same SHA-256) is kept; anything else needs overwrite."""
    if not out_ckpt.exists() or overwrite:
        return None
    record = _conversion_record(out_ckpt)
    if record is not None and in_ckpt.is_file() and record.get("sha256") == sha256_of(in_ckpt):
        return ConversionResult(
            out_ckpt, str(record.get("recipe")), str(record.get("experiment")), False, 0, skipped=True
        )
    raise UserError(
        f"out_ckpt={out_ckpt} already exists and was not converted from {in_ckpt}; "
        "pass overwrite=true to replace it, or choose another path"
    )


def _conversion_record(path: Path) -> dict[str, Any] | None:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a readable checkpoint: never ours to replace silently
        return None
    entry = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    return entry.get("converted_from") if isinstance(entry, dict) else None


def _check_round_trip(
    out_ckpt: Path, weights: dict[str, torch.Tensor], ema: dict[str, torch.Tensor] | None
) -> None:
    """Load the written file the way `mdgen.sample` does and compare one weight of each set."""
    for use_ema, expected in ((False, weights), (True, ema)):
        if expected is None:
            continue
        loaded = load_module(out_ckpt, use_ema=use_ema).network.state_dict()
        key = next(iter(expected))
        if not torch.equal(loaded[key], expected[key]):
            raise RuntimeError(f"{out_ckpt}: {key} changed between writing and loading (use_ema={use_ema})")


@hydra_main("convert")
@user_errors("mdgen.convert")
def main(cfg: DictConfig) -> None:
    result = convert_checkpoint(
        cfg.in_ckpt, cfg.out_ckpt, overwrite=bool(cfg.overwrite), frame_interval_ps=cfg.frame_interval_ps
    )
    for line in result.lines():
        print(line)


if __name__ == "__main__":
    main()
