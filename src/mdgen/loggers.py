"""A CSV logger whose metrics.csv survives a resume (`logger=csv`, conf/logger/csv.yaml).

Lightning's CSVLogger deletes an existing metrics.csv when it starts, so resuming a run in its own
directory (`ckpt_path=last`) threw away every row the earlier run had logged. This one keeps the file
and appends; when new columns appear, the file is rewritten with the union of the old and new columns
(old rows keep their values, the new columns stay empty there). Rows logged by an interrupted run after
its last checkpoint stay too: the resumed run logs those steps again, below them.
"""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingExperimentWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # Instead of deleting metrics.csv: start from its columns, so appended rows line up with them.
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = next(csv.reader(handle), [])  # in file order: rows append under it


class AppendingCSVLogger(CSVLogger):
    """`lightning.pytorch.loggers.CSVLogger` that appends to an existing metrics.csv (same arguments)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
