"""Plot the training and validation loss of a run from its CSV log (`logger=csv`).

    .venv/bin/python scripts/plot_training_curve.py RUN_DIR/csv/metrics.csv OUT.png [--title TEXT]

Epoch-mean training loss and validation loss against the optimizer step, log-scale loss; prints the
step with the lowest validation loss.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_series(metrics_csv: Path, column: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows of `metrics_csv` where `column` is set."""
    steps, values = [], []
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get(column):
                steps.append(int(row["step"]))
                values.append(float(row[column]))
    return steps, values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("metrics_csv", type=Path)
    parser.add_argument("out_png", type=Path)
    parser.add_argument("--title", default="")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for column, label in (("train/loss_epoch", "training (epoch mean)"), ("val/loss", "validation")):
        steps, values = read_series(args.metrics_csv, column)
        if steps:
            ax.plot(steps, values, label=label)
    val_steps, val_values = read_series(args.metrics_csv, "val/loss")
    if val_values:
        best = min(range(len(val_values)), key=val_values.__getitem__)
        print(
            f"lowest val/loss {val_values[best]:.4f} at step {val_steps[best]}; last {val_values[-1]:.4f} at {val_steps[-1]}"
        )
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(args.title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    args.out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out_png, dpi=120)


if __name__ == "__main__":
    main()
