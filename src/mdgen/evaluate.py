"""Entry point: ``python -m mdgen.evaluate samples_dir=DIR reference_dir=REF task=forward ...``.

Thin Hydra wrapper around `mdgen.evaluation.runner.run_evaluation`; options are documented in
conf/evaluate.yaml, composed without conf/'s config groups (`hydra_main(..., without_groups=True)`):
conf/task/ is the training task group there, which would turn `task=inpaint` into a config-group
selection. Exit status 2 with one line on stderr for a user error (an option of the wrong
type, a missing directory, out_dir a file) and when any peptide could not be evaluated because of its
input (the line names them and the report; `allow_failures=true` accepts a partial evaluation).
A bug in the evaluator is raised with its traceback (status 1), never reported as a failed peptide.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mdgen.analysis.loading import EvaluationInputError
from mdgen.analysis.msm import StateModelSettings
from mdgen.config import check_override_types, hydra_main
from mdgen.errors import UserError, user_errors, warn_deprecated
from mdgen.evaluation.forward import ForwardSettings
from mdgen.evaluation.pipelines import DEPRECATED_TASKS, TASKS, EvaluationConfig
from mdgen.evaluation.proteins import ProteinSettings
from mdgen.evaluation.runner import failure_message, run_evaluation
from mdgen.evaluation.transition_paths import TransitionPathSettings
from mdgen.evaluation.upsampling import UpsamplingSettings
from mdgen.options import checked_fields, checked_value


def _settings(cls: type, cfg: DictConfig, section: str, **extra):
    """A settings dataclass from a config section, every value checked against its field's type."""
    values = OmegaConf.to_container(cfg[section], resolve=True)
    return cls(**checked_fields(cls, values, prefix=f"{section}."), **extra)


def _option(cfg: DictConfig, name: str, hint):
    value = cfg[name]  # resolved on access
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    return checked_value(name, value, hint)


def build_config(cfg: DictConfig) -> EvaluationConfig:
    """EvaluationConfig from the composed config; a wrong value raises a `UserError` naming the option.

    out_dir is read once: its default holds `${now:...}`, which changes between reads.
    """
    try:
        missing = sorted(key for key in OmegaConf.missing_keys(cfg) if not key.startswith("hydra."))
        if missing:
            raise EvaluationInputError(f"{', '.join(missing)}: required (e.g. {missing[0]}=DIR), not given")
        task = _option(cfg, "task", str)
        if task in DEPRECATED_TASKS:
            warn_deprecated("mdgen.evaluate", f"task={task}", f"task={DEPRECATED_TASKS[task]}")
            task = DEPRECATED_TASKS[task]
        if task not in TASKS:
            raise EvaluationInputError(f"task={task!r} is not one of {TASKS}")
        replica_dir = _option(cfg, "replica_dir", str | None)
        n_jobs = _option(cfg, "n_jobs", int)
        if n_jobs < 1:
            raise EvaluationInputError(f"n_jobs={n_jobs}: must be >= 1")
        return EvaluationConfig(
            task=task,
            samples_dir=Path(_option(cfg, "samples_dir", str)),
            reference_dir=Path(_option(cfg, "reference_dir", str)),
            out_dir=_job_out_dir(Path(_option(cfg, "out_dir", str))),
            replica_dir=Path(replica_dir) if replica_dir else None,
            names=_option(cfg, "names", tuple[str, ...] | None),
            n_jobs=n_jobs,
            make_plots=_option(cfg, "plots", bool),
            forward=_settings(
                ForwardSettings, cfg, "forward", state_model=_settings(StateModelSettings, cfg, "state_model")
            ),
            transition_paths=_settings(TransitionPathSettings, cfg, "transition_paths"),
            upsampling=_settings(UpsamplingSettings, cfg, "upsampling"),
            protein=_settings(ProteinSettings, cfg, "protein"),
        )
    except OmegaConfBaseException as error:  # an interpolation on the command line that does not resolve
        raise EvaluationInputError(" ".join(str(error).split())) from error
    except TypeError as error:  # a key that a settings section does not have
        raise EvaluationInputError(str(error)) from error


def _job_out_dir(out_dir: Path) -> Path:
    """out_dir, or out_dir/N for job N of a `-m` sweep (each job keeps its own metrics)."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return out_dir / str(HydraConfig.get().job.num)
    return out_dir


class EvaluationFailed(UserError):
    """Some peptides could not be evaluated (their inputs are bad); the report says why."""


@hydra_main("evaluate", without_groups=True)
@user_errors("mdgen.evaluate")
def main(cfg: DictConfig) -> int:
    check_override_types(cfg)
    config = build_config(cfg)
    allow_failures = _option(cfg, "allow_failures", bool)  # checked before the (long) evaluation
    summary = run_evaluation(config)
    print(f"metrics: {summary.metrics_path}\nreport: {summary.report_path}")
    problem = failure_message(summary, allow_failures)
    if problem is not None:
        raise EvaluationFailed(problem)
    for name, message in summary.failures.items():  # allowed failures: still said on stderr
        print(f"not evaluated: {name}: {message}", file=sys.stderr)
    return len(summary.results)


if __name__ == "__main__":
    main()
