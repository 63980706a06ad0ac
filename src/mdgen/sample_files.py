"""The sample manifests `mdgen.sample` writes and `mdgen.evaluate` reads: one typed record per format.

`NAME_paths.json` (interpolation / transition paths, `PathsManifest`):

    {"format_version": 1, "name": "AKIR", "reference": "ref.xtc", "topology": "AKIR_0.pdb",
     "frame_interval_ps": 10.0, "num_frames": 100, "transition": {TransitionChoice} | null,
     "paths": [{"index": 0, "start_frame": 3, "end_frame": 199, "start_state": null, "end_state": null,
                "xtc": "AKIR_0.xtc", "noise_seed": 17}, ...]}

`NAME_inpaint.json` (inpainting, `InpaintManifest`; `NAME_design.json` from mdgen before the rename is
read too):

    {"format_version": 1, "name": "AKIR", "true_sequence": "AKIR", "designed_positions": [1, 2],
     "window": {"source", "start_frame", "stride", "num_frames", "frame_interval_ps"},
     "start_state": 3, "end_state": 5, "topology": "AKIR.pdb",      # optional, not written by the sampler
     "samples": [{"index": 0, "sequence": "AKIR", "predicted_sequence": "AKXR", "recovery": 0.5,
                  "noise_seed": 17, "xtc": "AKIR_0.xtc"}, ...]}

Each inpainting sample's own `NAME_{i}.json` is a `InpaintSampleRecord` (with `aa_probs`, (L, 20), which
the manifest leaves out). File names are relative to the manifest's folder (the evaluator resolves
them, `mdgen.analysis.loading.file_in_manifest_dir`). Only what the evaluator needs is required
(`paths[].xtc`; `true_sequence`, `designed_positions`, `samples[].sequence`), so hand-written
manifests stay short; unknown keys are ignored. A manifest without `format_version` is version 1 (the
format before the key existed). `read_*` raise `SampleFileError` (a `UserError`) naming the file for
anything malformed or newer than `FORMAT_VERSION`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from os import PathLike
from pathlib import Path
from typing import Any

from mdgen.constants import RESTYPES
from mdgen.errors import UserError
from mdgen.options import OptionError, checked_value

FORMAT_VERSION = 1
PATHS_SUFFIX = "_paths.json"
INPAINT_SUFFIX = "_inpaint.json"
# The same manifest as written before the inpaint task was called inpaint everywhere (it was "design" in
# sampling and evaluation); still read, `mdgen.evaluate` says once that the name is deprecated.
LEGACY_INPAINT_SUFFIX = "_design.json"
NOT_PREDICTED = "X"  # a position whose identity the model did not generate


class SampleFileError(UserError):
    """A sample manifest is malformed, incomplete or of a newer format; the message names the file."""


@dataclass(frozen=True)
class TransitionChoice:
    """The metastable-state pair the sampler chose on the reference MSM (for the record)."""

    selection: str  # "lowest_flux" or "highest_flux"
    start_state: int  # state labels
    end_state: int
    flux: float  # pi_i T_ij at the state MSM's lag
    lag_ps: float
    start_candidates: int  # reference frames in the start state
    end_candidates: int
    notes: tuple[str, ...] = ()  # deviations of the reference model from its settings


@dataclass(frozen=True)
class PathRecord:
    """One generated path: its trajectory file and, when the sampler wrote it, how it was drawn."""

    xtc: str  # file name next to the manifest
    index: int | None = None
    start_frame: int | None = None  # frames of the reference trajectory
    end_frame: int | None = None
    start_state: int | None = None  # metastable state labels (None when frames were given)
    end_state: int | None = None
    noise_seed: int | None = None


@dataclass(frozen=True)
class PathsManifest:
    """NAME_paths.json."""

    name: str
    paths: tuple[PathRecord, ...]
    topology: str | None = None  # file name; readers fall back to NAME.pdb, then the first path's .pdb
    reference: str | None = None  # the trajectory the end frames came from
    frame_interval_ps: float | None = None
    num_frames: int | None = None
    transition: TransitionChoice | None = None
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not self.paths:
            raise ValueError("lists no paths")

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


@dataclass(frozen=True)
class InpaintWindowRecord:
    """The trajectory window a design was conditioned on."""

    source: str
    start_frame: int
    stride: int  # source frames per window frame
    num_frames: int
    frame_interval_ps: float


@dataclass(frozen=True)
class InpaintSampleRecord:
    """One design sample: NAME_{i}.json, and (without aa_probs) one entry of NAME_inpaint.json."""

    sequence: str  # the built sequence: true identities at given residues, designed ones elsewhere
    predicted_sequence: str | None = None  # the model's identities where it generated them, X elsewhere
    xtc: str | None = None  # file name next to the manifest
    index: int | None = None
    recovery: float | None = None  # of the designed positions (None: none designed)
    noise_seed: int | None = None
    aa_probs: tuple[tuple[float, ...], ...] | None = None  # (L, 20); per-sample file only

    @property
    def scored_sequence(self) -> str:
        """What a recovery is computed on: the model's prediction when written, else the built sequence."""
        return self.predicted_sequence or self.sequence

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


@dataclass(frozen=True)
class InpaintManifest:
    """NAME_inpaint.json."""

    name: str
    true_sequence: str
    designed_positions: tuple[int, ...]  # 0-based; every other position is given (conditioning)
    samples: tuple[InpaintSampleRecord, ...]
    window: InpaintWindowRecord | None = None
    start_state: int | None = None  # metastable states the evaluator checks the samples against
    end_state: int | None = None
    topology: str | None = None  # file name, needed to read the samples' xtc
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        length = len(self.true_sequence)
        problems = []
        if not self.samples:
            problems.append("no samples")
        if not self.designed_positions or any(not 0 <= i < length for i in self.designed_positions):
            problems.append(f"designed_positions {list(self.designed_positions)} outside 0..{length - 1}")
        for k, sample in enumerate(self.samples):
            sequence = sample.scored_sequence
            if len(sequence) != length:
                problems.append(f"sample {k} has length {len(sequence)}, true sequence {length}")
            unknown = sorted(set(sequence) - set(RESTYPES) - {NOT_PREDICTED})
            if unknown:
                problems.append(f"sample {k} has non-standard letters {unknown}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        data = _to_json(self)
        for sample in data["samples"]:
            sample.pop("aa_probs", None)  # (L, 20) per sample: kept in NAME_{i}.json only
        return data


def read_paths_manifest(path: str | PathLike) -> PathsManifest:
    """NAME_paths.json -> PathsManifest; a missing "name" is taken from the file name."""
    return _read(Path(path), PathsManifest, PATHS_SUFFIX, "paths manifest")


def read_inpaint_manifest(path: str | PathLike) -> InpaintManifest:
    """NAME_inpaint.json (or an older NAME_design.json) -> InpaintManifest; a missing "name" is taken
    from the file name."""
    path = Path(path)
    suffix = LEGACY_INPAINT_SUFFIX if path.name.endswith(LEGACY_INPAINT_SUFFIX) else INPAINT_SUFFIX
    return _read(path, InpaintManifest, suffix, "inpaint manifest")


def read_inpaint_sample(path: str | PathLike) -> InpaintSampleRecord:
    """An inpainting sample's NAME_{i}.json -> InpaintSampleRecord."""
    return _read(Path(path), InpaintSampleRecord, None, "inpaint sample record")


# ---- JSON <-> records ----------------------------------------------------------------------------------


def _to_json(record: Any) -> dict[str, Any]:
    """The record as JSON values (dicts, lists, str, numbers, None), format_version first."""
    data = _lists(dataclasses.asdict(record))
    if "format_version" in data:  # first, where a reader looks
        data = {"format_version": data.pop("format_version"), **data}
    return data


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(item) for item in value]
    return value


T = typing.TypeVar("T")


def _read(path: Path, cls: type[T], suffix: str | None, what: str) -> T:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SampleFileError(f"{path}: not a valid {what} ({error})") from error
    if suffix is not None and isinstance(data, dict) and "name" not in data:
        data = {**data, "name": path.name.removesuffix(suffix)}
    if isinstance(data, dict) and "format_version" in _fields(cls):
        version = data.get("format_version", 1)
        if type(version) is not int or version < 1:
            raise SampleFileError(f"{path}: format_version={version!r} is not a version number")
        if version > FORMAT_VERSION:
            raise SampleFileError(
                f"{path}: format_version {version} is newer than this mdgen reads ({FORMAT_VERSION}); "
                "evaluate it with the mdgen that wrote it, or update mdgen"
            )
    try:
        return _record(cls, data, "")
    except (OptionError, ValueError, TypeError) as error:
        raise SampleFileError(f"{path}: not a valid {what}: {error}") from error


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {field.name: field for field in fields(cls)}


def _record(cls: type[T], data: Any, where: str) -> T:
    """Dataclass `cls` from a JSON object: each known key checked against its field's type (nested
    records, tuples of records and optional records included), required keys present, others ignored."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where or 'the file'} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in _fields(cls).items():
        if name not in data:
            if field.default is MISSING and field.default_factory is MISSING:
                raise ValueError(f"{where}{name} is missing")
            continue
        values[name] = _value(data[name], hints[name], f"{where}{name}")
    return cls(**values)


def _value(value: Any, hint: Any, where: str) -> Any:
    """`value` as the annotation `hint`: records recursively, lists as tuples (a JSON file holds lists,
    never a bare value where a list belongs), `X | None`, and scalars by `mdgen.options.checked_value`."""
    if dataclasses.is_dataclass(hint):
        return _record(hint, value, f"{where}.")
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # the records use only `X | None`
        if value is None and type(None) in arguments:
            return None
        (inner,) = [argument for argument in arguments if argument is not type(None)]
        return _value(value, inner, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list, got {value!r}")
        return tuple(_value(item, arguments[0], f"{where}[{k}]") for k, item in enumerate(value))
    return checked_value(where, value, hint)
