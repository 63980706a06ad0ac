"""Read an original MDGen checkpoint (`train.py` of the authors' repository, pytorch_lightning 2.0) safely.

The file is a `torch.save`d dict. Its only non-tensor, non-container object is the parsed command line
(`hyper_parameters['args']`, an `argparse.Namespace`), so it is loaded with `weights_only=True` and exactly
that class allow-listed: nothing in the file can run code while it is read.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mdgen.errors import UserError
from mdgen.files import sha256_of

ALLOWED_GLOBALS = (argparse.Namespace,)  # the only class the original's checkpoints pickle
STATE_PREFIX = "model."  # every key of the original's state_dict: the wrapper's `model` attribute


class OriginalCheckpointError(UserError):
    """An input of `mdgen.convert` that is not a readable original MDGen checkpoint."""


@dataclass(frozen=True)
class OriginalCheckpoint:
    """What a converter needs from an original checkpoint, as plain Python and tensors."""

    path: Path
    sha256: str  # of the whole file (provenance of the converted checkpoint)
    size_bytes: int
    args: dict[str, Any]  # the training command line (`train.py` parser fields)
    state_dict: dict[str, Tensor]  # network keys WITHOUT the "model." prefix; the training weights
    ema_params: dict[str, Tensor] | None  # the EMA of the same keys (`--ema`), else None
    ema_decay: float | None
    epoch: int | None
    global_step: int | None
    lightning_version: str | None


def read_original_checkpoint(path: str | Path) -> OriginalCheckpoint:
    """Load and check an original MDGen checkpoint; raises `OriginalCheckpointError` naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise OriginalCheckpointError(f"in_ckpt={path}: file does not exist")
    raw = _safe_load(path)
    where = f"in_ckpt={path}"
    if not isinstance(raw, Mapping):
        raise OriginalCheckpointError(f"{where}: holds a {type(raw).__name__}, not a checkpoint dict")
    if "mdgen" in raw:
        raise OriginalCheckpointError(
            f"{where}: already a checkpoint of this project (it has an 'mdgen' entry); nothing to convert"
        )
    for key in ("state_dict", "hyper_parameters"):
        if key not in raw:
            raise OriginalCheckpointError(
                f"{where}: no {key!r} entry, so it is not an original MDGen Lightning checkpoint "
                f"(top-level keys: {sorted(map(str, raw))})"
            )
    args = raw["hyper_parameters"].get("args") if isinstance(raw["hyper_parameters"], Mapping) else None
    if not isinstance(args, argparse.Namespace):
        raise OriginalCheckpointError(
            f"{where}: hyper_parameters['args'] is {type(args).__name__}, expected the argparse.Namespace "
            "that the original train.py saves"
        )
    return OriginalCheckpoint(
        path=path,
        sha256=sha256_of(path),
        size_bytes=path.stat().st_size,
        args=_plain_args(vars(args), where),
        state_dict=_strip_prefix(raw["state_dict"], where),
        ema_params=_ema_params(raw.get("ema"), where),
        ema_decay=float(raw["ema"]["decay"]) if raw.get("ema") is not None else None,
        epoch=_int_or_none(raw.get("epoch")),
        global_step=_int_or_none(raw.get("global_step")),
        lightning_version=str(raw.get("pytorch-lightning_version") or "") or None,
    )


def _safe_load(path: Path) -> Any:
    where = f"in_ckpt={path}"
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OriginalCheckpointError(
            f"{where}: refused to unpickle an object outside the allow-list "
            f"({', '.join(c.__module__ + '.' + c.__qualname__ for c in ALLOWED_GLOBALS)}): {first_line}"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise OriginalCheckpointError(
            f"{where}: cannot be read as a torch checkpoint; the file is truncated or corrupt "
            f"({type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''})"
        ) from error


def _plain_args(args: Mapping[str, Any], where: str) -> dict[str, Any]:
    plain = {}
    for key, value in args.items():
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise OriginalCheckpointError(
                f"{where}: argument {key!r} holds a {type(value).__name__}; the original's arguments are plain values"
            )
        plain[str(key)] = value
    return plain


def _strip_prefix(state: Any, where: str) -> dict[str, Tensor]:
    if not isinstance(state, Mapping):
        raise OriginalCheckpointError(f"{where}: state_dict is a {type(state).__name__}, not a dict")
    stripped = {}
    for key, value in state.items():
        if not str(key).startswith(STATE_PREFIX):
            raise OriginalCheckpointError(
                f"{where}: state_dict key {key!r} does not start with {STATE_PREFIX!r}; not the original "
                "MDGen wrapper's weights"
            )
        if not isinstance(value, Tensor):
            raise OriginalCheckpointError(f"{where}: state_dict[{key!r}] is not a tensor")
        stripped[str(key)[len(STATE_PREFIX) :]] = value
    return stripped


def _ema_params(ema: Any, where: str) -> dict[str, Tensor] | None:
    if ema is None:
        return None
    if not isinstance(ema, Mapping) or not isinstance(ema.get("params"), Mapping) or "decay" not in ema:
        raise OriginalCheckpointError(f"{where}: the 'ema' entry is not {{'params': dict, 'decay': float}}")
    params = {str(k): v for k, v in ema["params"].items()}
    if not all(isinstance(v, Tensor) for v in params.values()):
        raise OriginalCheckpointError(f"{where}: ema['params'] holds non-tensor values")
    return params


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, Tensor)) else None
