"""What a sampling run is asked to do: `SamplingRequest`, its checks, and which options belong to which mode.

The entry point (`mdgen.sample`) copies exactly the fields of `SamplingRequest` from conf/sample.yaml;
library code never sees the config itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mdgen.options import checked_fields
from mdgen.sampling import modes
from mdgen.sampling.decoding import DECODER_CHOICES
from mdgen.sampling.engine import check_precision, resolve_device
from mdgen.sampling.inputs import SamplingInputError, check_file, check_sequences
from mdgen.sampling.modes import FORWARD, INPAINT, INTERP, UPSAMPLE, IncompatibleTaskError
from mdgen.sampling.transition_paths import TRANSITIONS

# Options that only make sense for some modes; setting one for another mode is an error, not ignored.
OPTION_MODES = {
    "sequences": {FORWARD},
    "split": {FORWARD},
    "cache_dir": {FORWARD},
    "num_rollouts": {FORWARD},
    "num_chunks": {FORWARD},
    "per_rollout_files": {FORWARD},
    "input_frame": {FORWARD, INPAINT},
    "num_samples": {INTERP, INPAINT},
    "start_frame": {INTERP},
    "end_frame": {INTERP},
    "transition": {INTERP},
    "allow_extrapolation": {UPSAMPLE},
    "design_residues": {INPAINT},
}

# SamplingRequest fields passed to mdgen.analysis.msm.StateModelSettings (TPS endpoints).
STATE_MODEL_OPTIONS = ("tica_lag_ps", "msm_lag_ps", "n_clusters", "n_metastable")


@dataclass(frozen=True)
class SamplingRequest:
    """Everything a sampling run is asked to do, as plain values (conf/sample.yaml documents each)."""

    ckpt_path: str
    out_dir: str
    mode: str | None = None
    base_seed: int = 0
    batch_size: int = 1
    device: str = "auto"
    precision: str = "32"
    use_ema: bool = True
    decoder: str = "auto"  # auto | chain | frames (mdgen.sampling.decoding)
    relax: bool = False  # restrained minimisation of every decoded frame (mdgen.sampling.relax)
    declash: bool | None = None  # with the chain decoder: clear clashes by small torsion changes (None: on)
    name: str | None = None
    input_pdb: str | None = None
    input_xtc: str | None = None
    # forward
    sequences: tuple[str, ...] | None = None
    split: str | None = None
    cache_dir: str | None = None
    num_rollouts: int | None = None
    num_chunks: int | None = None
    per_rollout_files: bool | None = None
    input_frame: int | None = None
    # interp / inpaint
    num_samples: int | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    transition: str | None = None
    # interp between metastable states: the reference MSM; None keeps the default of
    # mdgen.analysis.msm.StateModelSettings (the one home of these defaults, shared with mdgen.evaluate)
    tica_lag_ps: float | None = None
    msm_lag_ps: float | None = None
    n_clusters: int | None = None
    n_metastable: int | None = None
    # upsample
    allow_extrapolation: bool | None = None
    # inpaint
    design_residues: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sequences, str):  # `sequences=MKWE` on the command line: one sequence, not 4
            object.__setattr__(self, "sequences", (self.sequences,))
        if self.sequences is not None:
            object.__setattr__(self, "sequences", tuple(self.sequences))
        if self.design_residues is not None:
            object.__setattr__(self, "design_residues", tuple(int(r) for r in self.design_residues))
        object.__setattr__(self, "precision", str(self.precision))
        object.__setattr__(self, "mode", modes.current_mode(self.mode))  # mode=design: renamed inpaint

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SamplingRequest:
        """A request from command-line values, each checked against its field's type (errors name the option).

        Generic over the fields: an int field refuses `abc`, a bool field `yes`; a tuple field takes a
        list, or a single value as a one-element tuple (`sequences=MKWE`); a str field takes a number
        (`name=1234`, `precision=32`).
        """
        return cls(**checked_fields(cls, options))

    def state_model_options(self) -> dict[str, Any]:
        """The reference-MSM settings given here, as keyword arguments of `StateModelSettings`."""
        return {name: getattr(self, name) for name in STATE_MODEL_OPTIONS if getattr(self, name) is not None}

    def given_options(self) -> list[str]:
        return [name for name in OPTION_MODES if getattr(self, name) is not None]

    def check(self) -> None:
        """Checks that need no checkpoint: values, sequences, files. Raises ValueError naming the option."""
        check_file(self.ckpt_path, "ckpt_path")
        if not self.out_dir:
            raise SamplingInputError("out_dir is required")
        try:
            resolve_device(self.device)
            check_precision(self.precision)
        except ValueError as error:
            raise SamplingInputError(str(error)) from error
        if self.name is not None:
            check_output_name(self.name)
        if self.decoder not in DECODER_CHOICES:
            raise SamplingInputError(f"decoder={self.decoder!r} is not one of {DECODER_CHOICES}")
        if self.declash and self.decoder == "frames":
            raise SamplingInputError(
                "declash=true needs the chain decoder (decoder=chain or auto), not decoder=frames"
            )
        if not isinstance(self.relax, bool):
            raise SamplingInputError(f"relax must be true or false, got {self.relax!r}")
        for option in ("batch_size", "num_rollouts", "num_chunks", "num_samples"):
            value = getattr(self, option)
            if value is not None and value < 1:
                raise SamplingInputError(f"{option} must be >= 1, got {value}")
        if self.mode is not None and self.mode not in modes.SAMPLING_MODES:
            raise SamplingInputError(f"mode={self.mode!r} is not one of {modes.SAMPLING_MODES}")
        if self.sequences is not None:
            if not self.sequences:
                raise SamplingInputError(
                    "sequences=[] lists no sequence: give sequences=[MKWE,...] or leave it out"
                )
            check_sequences(self.sequences)
        if self.input_pdb is not None:
            check_file(self.input_pdb, "input_pdb")
        if self.name is not None and self.input_pdb is None:
            raise SamplingInputError(
                "name= names the output of input_pdb; sequence and split outputs keep their names"
            )
        if self.input_xtc is not None:
            if self.input_pdb is None:
                raise SamplingInputError("input_xtc needs input_pdb (its topology)")
            check_file(self.input_xtc, "input_xtc")
        if (self.split is None) != (self.cache_dir is None):
            raise SamplingInputError("split (a split CSV) and cache_dir (a prepared cache) go together")
        if self.split is not None:
            check_file(self.split, "split")
        if self.transition is not None and self.transition not in TRANSITIONS:
            raise SamplingInputError(f"transition={self.transition!r} is not one of {TRANSITIONS}")

    def output_name(self) -> str:
        return self.name or Path(self.input_pdb).stem


def check_output_name(name: str) -> str:
    """`name=` becomes a file stem inside out_dir: a plain name, no folder, no `..`, not hidden."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise SamplingInputError(
            f"name={name!r} must be a plain file name (no '/', not empty, not starting with '.'): outputs "
            "stay inside out_dir"
        )
    return name


def check_options_for_mode(request: SamplingRequest, mode: str, task_description: str) -> None:
    wrong = [option for option in request.given_options() if mode not in OPTION_MODES[option]]
    if wrong:
        details = "; ".join(f"{option} is for {'/'.join(sorted(OPTION_MODES[option]))}" for option in wrong)
        raise IncompatibleTaskError(
            f"checkpoint {request.ckpt_path} does {mode} ({task_description}), but {details}. "
            "Remove these options or use a checkpoint trained for that task"
        )


def request_fields() -> list[str]:
    """Names of `SamplingRequest` fields (the entry point copies exactly these from its config)."""
    return [field.name for field in fields(SamplingRequest)]
