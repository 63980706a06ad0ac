"""Build the inputs of the evaluation run recorded in README.md from the shared tetrapeptide MD.

For every peptide NAME under SHARED (10 ns at 10 ps + 1 ns at 100 fs):
  OUT/reference/NAME/NAME.{pdb,xtc,_fine.xtc}  first half of each trajectory (the reference)
  OUT/replica/NAME/NAME.{pdb,xtc}              second half (independent MD for the MD-length rows)
  OUT/md_half/NAME.{pdb,xtc}                   second half as 'samples' (a perfect generator)
  OUT/random_torsions/NAME.{pdb,xtc}           second half with every phi/psi redrawn uniformly
  OUT/shuffled_frames/NAME.{pdb,xtc}           second half in random frame order (right ensemble, no dynamics)
  OUT/fine_half/NAME.{pdb,xtc}                 second half of the 100 fs trajectory (upsampling 'samples')
  OUT/paths_md/NAME_{i}.xtc + NAME_paths.json  1 ns windows of the second half between the most frequent
                                                pair of distinct reference states (interp 'samples')
  OUT/paths_scrambled/...                       the same windows with their inner frames in random order
Usage: python experiments/evaluation/make_half_split.py SHARED OUT
"""

import json
import sys
from pathlib import Path

import mdtraj as md
import numpy as np

from mdgen.analysis.features import cos_sin, torsion_angles
from mdgen.analysis.loading import TrajectoryGroup
from mdgen.analysis.msm import StateModelSettings, reference_state_model
from mdgen.evaluation.baselines import randomise_backbone_torsions, shuffle_frames

PATH_FRAMES = 101  # 1 ns at 10 ps, both ends included
MAX_PATHS = 100


def save(traj: md.Trajectory, stem: Path, time_step_ps: float) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    traj = md.Trajectory(traj.xyz, traj.topology, time=np.arange(1, traj.n_frames + 1) * time_step_ps)
    traj[0].save_pdb(str(stem.with_suffix(".pdb")))
    traj.save_xtc(str(stem.with_suffix(".xtc")))


def write_paths(folder: Path, name: str, windows: list[md.Trajectory], step_ps: float) -> None:
    for i, window in enumerate(windows):
        save(window, folder / f"{name}_{i}", step_ps)
    manifest = {"name": name, "paths": [{"xtc": f"{name}_{i}.xtc"} for i in range(len(windows))]}
    (folder / f"{name}_paths.json").write_text(json.dumps(manifest, indent=1))


def main(shared: Path, out: Path) -> None:
    rng = np.random.default_rng(0)
    for folder in sorted(p for p in shared.iterdir() if (p / f"{p.name}.pdb").is_file()):
        name = folder.name
        coarse = md.load(str(folder / f"{name}.xtc"), top=str(folder / f"{name}.pdb"))
        fine = md.load(str(folder / f"{name}_fine.xtc"), top=str(folder / f"{name}.pdb"))
        half, fine_half = coarse.n_frames // 2, fine.n_frames // 2
        first, second = coarse[:half], coarse[half:]
        save(first, out / "reference" / name / name, coarse.timestep)
        save(fine[:fine_half], out / "reference" / name / f"{name}_fine", fine.timestep)
        (out / "reference" / name / f"{name}_fine.pdb").unlink()
        save(second, out / "replica" / name / name, coarse.timestep)
        save(second, out / "md_half" / name, coarse.timestep)
        save(randomise_backbone_torsions(second, rng), out / "random_torsions" / name, coarse.timestep)
        save(shuffle_frames(second, rng), out / "shuffled_frames" / name, coarse.timestep)
        save(fine[fine_half:], out / "fine_half" / name, fine.timestep)

        # transition windows, discretised with the evaluator's own reference model (default settings)
        reference = TrajectoryGroup.from_trajectories([first], name)
        definitions, model = reference_state_model(reference, StateModelSettings())
        states = model.states(cos_sin(torsion_angles(second, definitions)))
        starts, ends = states[: -PATH_FRAMES + 1], states[PATH_FRAMES - 1 :]
        pairs = [(a, b) for a, b in zip(starts, ends) if a != b and a >= 0 and b >= 0]
        if not pairs:
            print(f"{name}: no transition window in the second half; no paths written")
            continue
        values, counts = np.unique(np.asarray(pairs), axis=0, return_counts=True)
        a, b = values[np.argmax(counts)]
        chosen = np.flatnonzero((starts == a) & (ends == b))
        chosen = rng.choice(chosen, size=min(MAX_PATHS, len(chosen)), replace=False)
        windows = [second[s : s + PATH_FRAMES] for s in sorted(chosen)]
        scrambled = [
            w[np.concatenate([[0], rng.permutation(np.arange(1, PATH_FRAMES - 1)), [PATH_FRAMES - 1]])]
            for w in windows
        ]
        write_paths(out / "paths_md", name, windows, coarse.timestep)
        write_paths(out / "paths_scrambled", name, scrambled, coarse.timestep)
        print(f"{name}: {len(windows)} windows {a} -> {b}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
