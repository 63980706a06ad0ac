"""The committed villin fixture (tests/fixtures/villin/villin): its PDB and 3 MD replicas of 20 real frames
(ATLAS layout), loaded as the protein evaluation loads them."""

from __future__ import annotations

from pathlib import Path

import mdtraj as md

from mdgen.analysis.loading import TrajectoryGroup, load_trajectory

VILLIN_DIR = Path(__file__).resolve().parent / "fixtures" / "villin" / "villin"


def villin_structure() -> md.Trajectory:
    return load_trajectory(VILLIN_DIR / "villin.pdb")


def villin_replicas() -> list[md.Trajectory]:
    return [
        load_trajectory(VILLIN_DIR / "villin.pdb", VILLIN_DIR / f"villin_prod_R{i}_fit.xtc")
        for i in (1, 2, 3)
    ]


def group(*trajectories: md.Trajectory) -> TrajectoryGroup:
    """One ensemble of villin made of `trajectories` (each a run, as the evaluator groups replicas)."""
    return TrajectoryGroup.from_trajectories(list(trajectories), "villin")
