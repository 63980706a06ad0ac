"""Evaluate every peptide of a samples directory, keep going past per-peptide failures, write outputs.

Rule for failures: a peptide whose files are missing or inconsistent (e.g. atoms differ from its
reference) is recorded by name with the error message, in metrics.json ("failed") and report.md,
and the other peptides are still evaluated. `RunSummary.all_failed` is true only when no peptide was
evaluated; the command line exits non-zero exactly then.
"""

from __future__ import annotations

import logging
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mdgen.evaluation.layout import discover_names
from mdgen.evaluation.loading import EvaluationInputError
from mdgen.evaluation.pipelines import EVALUATORS, EvaluationConfig
from mdgen.evaluation.report import MAIN_ROW, to_jsonable, write_metrics, write_report
from mdgen.evaluation.sections import TASK_SECTIONS, common_sections

log = logging.getLogger(__name__)


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
    """(name, result, None) or (name, None, error message); never raises, so one peptide cannot stop the run."""
    try:
        return name, EVALUATORS[config.task](config, name), None
    except Exception as error:  # noqa: BLE001 - reported per peptide by design
        log.debug("%s failed:\n%s", name, traceback.format_exc())
        return name, None, f"{type(error).__name__}: {error}"


def _names(config: EvaluationConfig) -> tuple[list[str], dict[str, str]]:
    found = discover_names(config.samples_dir, config.task)
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
    progress = tqdm(total=len(names), desc=f"evaluate {config.task}", unit="peptide")
    if config.n_jobs > 1 and len(names) > 1:
        with ProcessPoolExecutor(max_workers=config.n_jobs) as pool:
            futures = [pool.submit(_evaluate_one, config, name) for name in names]
            for future in as_completed(futures):
                outcomes.append(future.result())
                progress.set_postfix_str(outcomes[-1][0])
                progress.update()
    else:
        for name in names:
            progress.set_postfix_str(name)
            outcomes.append(_evaluate_one(config, name))
            progress.update()
    progress.close()

    results = {name: result for name, result, _ in sorted(outcomes, key=lambda o: o[0]) if result is not None}
    failures.update({name: error for name, _, error in outcomes if error is not None})
    for name, error in failures.items():
        log.warning("%s not evaluated: %s", name, error)
    if not names and not failures:
        failures["(none)"] = f"no peptides found for task {config.task} in {config.samples_dir}"

    sections, extra = TASK_SECTIONS[config.task](results, config) if results else ([], {})
    main_row = MAIN_ROW[config.task]
    aggregate = extra.get("aggregate", {})
    summary = {metric: stats["mean"] for metric, stats in aggregate.get(main_row, {}).items()}
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
