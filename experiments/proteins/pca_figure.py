"""Draw `OUT/NAME_pca.png` (frames on the top two MD principal components: MD vs generated, and each MD
replica) for a protein that `python -m mdgen.evaluate task=protein` evaluated, until `evaluate` draws it
itself (mdgen.evaluation.proteins.write_figures; the hook is pending in evaluation/pipelines.py).

    .venv/bin/python experiments/proteins/pca_figure.py SAMPLES_DIR REFERENCE_DIR NAME OUT_DIR

Same inputs and atom matching as `evaluate task=protein` (evaluation.layout, evaluation.loading).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mdgen.evaluation import plots
from mdgen.evaluation.layout import reference_files, sample_files
from mdgen.evaluation.loading import load_group, load_trajectory, match_atoms, match_groups
from mdgen.evaluation.proteins import md_pca_projections


def main(samples_dir: Path, reference_dir: Path, name: str, out_dir: Path) -> Path:
    ref_top, ref_trajectories = reference_files(reference_dir, name)
    sample_top, sample_trajectories = sample_files(samples_dir, name)
    reference, samples = match_groups(
        load_group(ref_top, ref_trajectories, str(ref_trajectories[0])),
        load_group(sample_top, sample_trajectories, str(sample_trajectories[0])),
    )
    structure, _ = match_atoms(load_trajectory(ref_top), samples.trajectories[0], samples.source)
    out_dir.mkdir(parents=True, exist_ok=True)
    projections = md_pca_projections(reference, samples, structure)
    return plots.protein_pca(name, projections, out_dir / f"{name}_pca.png")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    print(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])))
