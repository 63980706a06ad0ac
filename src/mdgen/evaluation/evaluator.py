"""One evaluator object per task: everything `mdgen.evaluate` does that depends on the task.

A `TaskEvaluator` knows
- where a peptide's samples are (`manifest_suffix`: one `NAME<suffix>` manifest per peptide, or
  trajectories `NAME.xtc` / `NAME_<i>.xtc` when None; `mdgen.evaluation.input_files`);
- how one peptide is evaluated: `load` its inputs from disk, `compute` the analysis, `plot` its figures
  into `config.plot_dir`, keep `result(analysis)` for metrics.json;
- how all peptides are reported: `sections` (report.md sections and extra metrics.json entries) and
  `main_row` (the row whose means become metrics.json "summary").
`mdgen.evaluation.pipelines.EVALUATORS` registers one per task; the runner asks it for all of the above.
Errors from bad inputs are `UserError`s naming the file; anything else is a bug (see `runner`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mdgen.evaluation.input_files import discover_names

if TYPE_CHECKING:
    from mdgen.evaluation.pipelines import EvaluationConfig


class TaskEvaluator(ABC):
    """The evaluation of one task (subclass per task; stateless, so one instance serves every peptide)."""

    task: ClassVar[str]  # the `task=` value
    main_row: ClassVar[str]  # row summarised in metrics.json "summary"
    manifest_suffix: ClassVar[str | None] = None  # samples: NAME<suffix> manifests, else trajectories

    def peptide_names(self, samples_dir: Path) -> list[str]:
        """Peptides with samples for this task in `samples_dir`, sorted."""
        return discover_names(samples_dir, self.manifest_suffix)

    def evaluate(self, config: EvaluationConfig, name: str) -> Any:
        """One peptide: load, compute, plot (when config.make_plots); returns what metrics.json keeps."""
        analysis = self.compute(name, self.load(config, name), config)
        if config.make_plots:
            self.plot(name, analysis, config)
        return self.result(analysis)

    @abstractmethod
    def load(self, config: EvaluationConfig, name: str) -> Any:
        """The peptide's samples and reference, read and matched (raises naming the bad file)."""

    @abstractmethod
    def compute(self, name: str, inputs: Any, config: EvaluationConfig) -> Any:
        """The analysis of one peptide's inputs."""

    @abstractmethod
    def plot(self, name: str, analysis: Any, config: EvaluationConfig) -> None:
        """Figures of one peptide into config.plot_dir (called only when config.make_plots)."""

    def result(self, analysis: Any) -> Any:
        """The per-peptide result metrics.json and the sections use (`analysis.result` by default)."""
        return analysis.result

    @abstractmethod
    def sections(self, results: Mapping[str, Any], config: EvaluationConfig) -> tuple[list[str], dict]:
        """(report.md sections, extra metrics.json entries, "aggregate" among them) over all peptides."""
