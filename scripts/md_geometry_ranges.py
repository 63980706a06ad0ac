"""Backbone bond ranges of real MD, and the PDB/XTC mix-up check over every same-size pair of peptides.

Figures of experiments/reliability/README.md ("real 350 K MD must never trip the checks", "PDB and XTC
of different peptides, same atom count"):

1. Over every frame of every trajectory found (DIR/NAME/NAME.pdb with each NAME*.xtc beside it), the
   smallest and largest N-CA, CA-C, C(i)-N(i+1) and CA(i)-CA(i+1) distances (Å, mdtraj, all chains
   and residues), next to the limits that `mdgen.trajectory_files.read_trajectory` enforces.
2. For every ordered pair (A, B) of different peptides whose PDBs have the same number of atoms,
   `read_trajectory(A.pdb, B.xtc)` must raise TrajectoryError; the script counts the pairs and the ones
   caught, and prints any that were read without an error.

Usage: python scripts/md_geometry_ranges.py DIR [DIR ...]
  e.g. python scripts/md_geometry_ranges.py data/demo/md data/obc2_train/md ../shared/data/tetrapeptides
"""

import itertools
import sys
from pathlib import Path

import mdtraj as md
import numpy as np

from mdgen.trajectory_files import BACKBONE_BOND_LIMITS, TrajectoryError, read_trajectory


def backbone_ranges(pdb: Path, xtc: Path) -> tuple[dict[str, tuple[float, float]], int]:
    """min/max (Å) of each backbone distance over all frames of one trajectory, and its frame count."""
    traj = md.load(str(xtc), top=str(pdb))
    top = traj.topology
    pairs: dict[str, list[tuple[int, int]]] = {name: [] for name in BACKBONE_BOND_LIMITS}
    residues = [r for r in top.residues if r.is_protein]
    atoms = [{a.name: a.index for a in r.atoms} for r in residues]
    for i, res in enumerate(atoms):
        pairs["N-CA"].append((res["N"], res["CA"]))
        pairs["CA-C"].append((res["CA"], res["C"]))
        if i + 1 < len(atoms) and residues[i].chain.index == residues[i + 1].chain.index:
            pairs["C-N(i+1)"].append((res["C"], atoms[i + 1]["N"]))
            pairs["CA-CA(i+1)"].append((res["CA"], atoms[i + 1]["CA"]))
    out = {}
    for name, index_pairs in pairs.items():
        d = 10.0 * md.compute_distances(traj, np.array(index_pairs), periodic=False)  # nm -> Å
        out[name] = (float(d.min()), float(d.max()))
    return out, traj.n_frames


def main(dirs: list[str]) -> None:
    pdbs = sorted(p for d in dirs for p in Path(d).glob("*/*.pdb") if p.stem == p.parent.name)
    totals: dict[str, list[float]] = {name: [np.inf, -np.inf] for name in BACKBONE_BOND_LIMITS}
    n_files = n_frames = 0
    for pdb in pdbs:
        for xtc in sorted(pdb.parent.glob(f"{pdb.stem}*.xtc")):
            ranges, frames = backbone_ranges(pdb, xtc)
            for name, (low, high) in ranges.items():
                totals[name][0] = min(totals[name][0], low)
                totals[name][1] = max(totals[name][1], high)
            n_files += 1
            n_frames += frames
    print(f"{len(pdbs)} peptides, {n_files} trajectories, {n_frames} frames")
    print("| distance | observed min-max (Å) | read_trajectory limits (Å) |\n|---|---|---|")
    for name, (low, high) in totals.items():
        limit = BACKBONE_BOND_LIMITS[name]
        print(f"| {name} | {low:.2f}-{high:.2f} | {limit[0]:.2f}-{limit[1]:.2f} |")

    n_atoms = {pdb: md.load_topology(str(pdb)).n_atoms for pdb in pdbs}
    same = [(a, b) for a, b in itertools.permutations(pdbs, 2) if n_atoms[a] == n_atoms[b]]
    missed = []
    for a, b in same:
        try:
            read_trajectory(a, b.with_suffix(".xtc"))
        except TrajectoryError:
            continue
        missed.append((a, b))
    print(
        f"same-atom-count ordered pairs: {len(same)} (unordered {len(same) // 2}); caught {len(same) - len(missed)}"
    )
    for a, b in missed:
        print(f"NOT caught: {a} with {b.with_suffix('.xtc')}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
