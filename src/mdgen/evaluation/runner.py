"""Evaluate every peptide of a samples directory, keep going past bad inputs, write outputs.

Rule for failures:
- a peptide with bad input (a `mdgen.errors.UserError`: files missing, unreadable or inconsistent with
  the reference, trajectories too short for the configured lags, ...) is recorded by name with the
  error message, in metrics.json ("failed") and report.md, and the other peptides are still evaluated;
- any other exception is a bug in the evaluator and is raised (with the peptide's name in a note),
  never turned into a "failed" entry.
`failure_message(summary, allow_failures)` is the command line's verdict: a one-line message (exit 2)
when any peptide failed, unless `allow_failures` is set and at least one peptide was evaluated.
"""

from __future__ import annotations

import logging
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mdgen.analysis.loading import EvaluationInputError
from mdgen.errors import UserError
from mdgen.evaluation.pipelines import EVALUATORS, EvaluationConfig
from mdgen.evaluation.report import to_jsonable, write_metrics, write_report
from mdgen.evaluation.sections import common_sections

log = logging.getLogger(__name__)

NO_PEPTIDES = "(none)"  # the "failed" key when the samples directory holds no peptide for the task


@dataclass(frozen=True)
class RunSummary:
    results: dict[str, object]
    failures: dict[str, str]  # peptide name -> error message
    metrics_path: Path
    report_path: Path

    @property
    def all_failed(self) -> bool:
        return not self.results


def _evaluate_one(config: EvaluationConfig, name: str) -> tuple[str, object | None, str | None]:
    """(name, result, None), or (name, None, message) when the peptide's input is bad (a `UserError`).

    Any other exception is a bug: it propagates, with a note naming the peptide.
    """
    try:
        return name, EVALUATORS[config.task].evaluate(config, name), None
    except UserError as error:
        log.debug("%s failed:\n%s", name, traceback.format_exc())
        return name, None, f"{type(error).__name__}: {error}"
    except Exception as error:
        log.error("%s: the evaluator raised %s (a bug, not a bad input)", name, type(error).__name__)
        if hasattr(error, "add_note"):  # Python >= 3.11
            error.add_note(f"mdgen.evaluate: raised while evaluating peptide {name} (task {config.task})")
        raise


def _names(config: EvaluationConfig) -> tuple[list[str], dict[str, str]]:
    found = EVALUATORS[config.task].peptide_names(config.samples_dir)
    if config.names is None:
        return found, {}
    missing = {
        name: f"no samples for {name} in {config.samples_dir}" for name in config.names if name not in found
    }
    return [name for name in config.names if name in found], missing


def check_directories(config: EvaluationConfig) -> None:
    """Inputs are directories and out_dir can be one; raises `EvaluationInputError` naming the option."""
    for option, path in (
        ("samples_dir", config.samples_dir),
        ("reference_dir", config.reference_dir),
        ("replica_dir", config.replica_dir),
    ):
        if path is not None and not path.is_dir():
            raise EvaluationInputError(f"{option}={path}: directory not found")
    if config.out_dir.exists() and not config.out_dir.is_dir():
        raise EvaluationInputError(f"out_dir={config.out_dir} is a file, not a directory")
    try:
        config.out_dir.mkdir(parents=True, exist_ok=True)
        if config.make_plots:
            config.plot_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EvaluationInputError(
            f"out_dir={config.out_dir}: cannot be created ({error.strerror or error}: {error.filename})"
        ) from error
    if not os.access(config.out_dir, os.W_OK | os.X_OK):
        raise EvaluationInputError(f"out_dir={config.out_dir}: not writable")


def run_evaluation(config: EvaluationConfig) -> RunSummary:
    check_directories(config)
    names, failures = _names(config)
    outcomes = []
    with tqdm(total=len(names), desc=f"evaluate {config.task}", unit="peptide") as progress:
        if config.n_jobs > 1 and len(names) > 1:
            with ProcessPoolExecutor(max_workers=config.n_jobs) as pool:
                futures = [pool.submit(_evaluate_one, config, name) for name in names]
                try:
                    for future in as_completed(futures):
                        outcomes.append(future.result())  # re-raises a worker's bug here
                        progress.set_postfix_str(outcomes[-1][0])
                        progress.update()
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)  # do not evaluate the rest after a bug
                    raise
        else:
            for name in names:
                progress.set_postfix_str(name)
                outcomes.append(_evaluate_one(config, name))
                progress.update()

    results = {name: result for name, result, _ in sorted(outcomes, key=lambda o: o[0]) if result is not None}
    failures.update({name: error for name, _, error in outcomes if error is not None})
    for name, error in failures.items():
        log.warning("%s not evaluated: %s", name, error)
    if not names and not failures:
        failures[NO_PEPTIDES] = f"no peptides found for task {config.task} in {config.samples_dir}"

    evaluator = EVALUATORS[config.task]
    sections, extra = evaluator.sections(results, config) if results else ([], {})
    aggregate = extra.get("aggregate", {})
    summary = {metric: stats["mean"] for metric, stats in aggregate.get(evaluator.main_row, {}).items()}
    metrics_path = write_metrics(
        config.out_dir / "metrics.json",
        {
            "task": config.task,
            "settings": to_jsonable(config),
            "n_evaluated": len(results),
            "failed": dict(sorted(failures.items())),
            "summary": summary,
            **extra,
            "peptides": results,
        },
    )
    header, failed, tail = common_sections(results, dict(sorted(failures.items())), config)
    report_path = write_report(
        config.out_dir / "report.md", f"mdgen evaluation: {config.task}", [header, failed, *sections, tail]
    )
    return RunSummary(results, dict(sorted(failures.items())), metrics_path, report_path)


def failure_message(summary: RunSummary, allow_failures: bool) -> str | None:
    """One line for the command to exit 2 with, or None when the run counts as a success.

    Any failed peptide fails the run, unless `allow_failures` and at least one peptide was evaluated
    (nothing evaluated is never a success).
    """
    if not summary.failures or (allow_failures and not summary.all_failed):
        return None
    where = f'{summary.report_path} and {summary.metrics_path} ("failed")'
    if NO_PEPTIDES in summary.failures:
        return f"{summary.failures[NO_PEPTIDES]}; see {where}"
    names = ", ".join(summary.failures)
    total = len(summary.results) + len(summary.failures)
    hint = "" if summary.all_failed else "; pass allow_failures=true to accept a partial evaluation"
    return f"{len(summary.failures)} of {total} peptides not evaluated ({names}); reasons in {where}{hint}"
