"""metrics.json (machine-readable) and report.md (paper-style tables) from per-peptide results.

metrics.json layout:
    {"task": ..., "settings": {...}, "n_evaluated": N, "failed": {name: message},
     "summary": {metric: mean over peptides of the main row},        # e.g. summary["torsion_jsd_backbone"]
     "aggregate": {row: {metric: {"mean": m, "sem": s, "n": n}}},   # s = std (ddof 1) / sqrt(n)
     "pooled": {row: {...}},                                          # statistics over all peptides' torsions
     "peptides": {name: full result}, "notes": [...]}
Non-finite numbers are written as null. Metrics are aggregated over the peptides where they are defined.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def to_jsonable(value):
    """Dataclasses, numpy values, paths -> JSON types; NaN and inf -> None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def scalar_metrics(scores) -> dict[str, float]:
    """Numeric fields of a scores dataclass, nested dataclasses flattened as `outer_inner`."""
    metrics = {}
    for f in dataclasses.fields(scores):
        value = getattr(scores, f.name)
        if dataclasses.is_dataclass(value):
            metrics.update({f"{f.name}_{k}": v for k, v in scalar_metrics(value).items()})
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            metrics[f.name] = float(value)
    return metrics


def aggregate_rows(rows_by_peptide: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, dict]]:
    """{peptide: {row: scores}} -> {row: {metric: {mean, sem, n}}} over peptides where finite."""
    collected: dict[str, dict[str, list[float]]] = {}
    for rows in rows_by_peptide.values():
        for row, scores in rows.items():
            for metric, value in scalar_metrics(scores).items():
                collected.setdefault(row, {}).setdefault(metric, []).append(value)
    aggregate = {}
    for row, metrics in collected.items():
        aggregate[row] = {}
        for metric, values in metrics.items():
            finite = np.asarray([v for v in values if math.isfinite(v)])
            n = len(finite)
            aggregate[row][metric] = {
                "mean": float(finite.mean()) if n else float("nan"),
                "sem": float(finite.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
                "n": n,
            }
    return aggregate


def write_metrics(path: Path, payload: dict) -> Path:
    path.write_text(json.dumps(to_jsonable(payload), indent=1, allow_nan=False))
    return path


def _cell(stats: dict | None, scale: float = 1.0, digits: int = 3) -> str:
    if not stats or stats["n"] == 0 or not math.isfinite(stats["mean"]):
        return "–"
    text = f"{stats['mean'] * scale:.{digits}f}"
    if math.isfinite(stats["sem"]):
        text += f" ± {stats['sem'] * scale:.{digits}f}"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def aggregate_table(
    aggregate: Mapping[str, Mapping[str, dict]],
    row_order: Sequence[str],
    columns: Sequence[tuple[str, str, float]],
    digits: int = 3,
) -> str:
    """Rows in `row_order` (those present), columns (title, metric, scale): 'mean ± sem (n)' cells."""
    present = [row for row in row_order if row in aggregate]
    body = []
    for row in present:
        counts = {aggregate[row][metric]["n"] for _, metric, _ in columns if metric in aggregate[row]}
        n = max(counts) if counts else 0
        body.append(
            [f"{row} (n={n})"]
            + [_cell(aggregate[row].get(metric), scale, digits) for _, metric, scale in columns]
        )
    return markdown_table(["row"] + [title for title, _, _ in columns], body)


def format_value(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


def write_report(path: Path, title: str, sections: Sequence[str]) -> Path:
    path.write_text(f"# {title}\n\n" + "\n\n".join(section.strip() for section in sections if section) + "\n")
    return path
