"""Tiny real peptide for evaluation tests: one frame of the AKIR tetrapeptide MD (OBC2, 350 K), heavy atoms.

`peptide_trajectory` moves its backbone torsions along a Markov chain of torsion states, rotating the
chain rigidly, so trajectories have realistic covalent geometry, known state populations and known
kinetics. Nothing here reads ../shared.
"""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np

from mdgen.evaluation.baselines import set_backbone_torsions

AKIR_FRAME_PDB = """\
ATOM      1  N   ALA A   1       9.140  -8.080  -0.800  1.00  0.00           N
ATOM      2  CA  ALA A   1       8.570  -6.770  -1.070  1.00  0.00           C
ATOM      3  C   ALA A   1       7.650  -6.400   0.080  1.00  0.00           C
ATOM      4  O   ALA A   1       6.930  -7.290   0.510  1.00  0.00           O
ATOM      5  CB  ALA A   1       7.960  -6.670  -2.440  1.00  0.00           C
ATOM      6  N   LYS A   2       7.760  -5.200   0.580  1.00  0.00           N
ATOM      7  CA  LYS A   2       6.920  -4.710   1.750  1.00  0.00           C
ATOM      8  C   LYS A   2       5.510  -4.400   1.240  1.00  0.00           C
ATOM      9  O   LYS A   2       5.170  -4.060   0.040  1.00  0.00           O
ATOM     10  CB  LYS A   2       7.540  -3.420   2.370  1.00  0.00           C
ATOM     11  CG  LYS A   2       9.010  -3.640   2.820  1.00  0.00           C
ATOM     12  CD  LYS A   2       9.740  -2.380   3.340  1.00  0.00           C
ATOM     13  CE  LYS A   2      11.150  -2.750   3.710  1.00  0.00           C
ATOM     14  NZ  LYS A   2      12.120  -1.670   3.540  1.00  0.00           N
ATOM     15  N   ILE A   3       4.640  -4.260   2.240  1.00  0.00           N
ATOM     16  CA  ILE A   3       3.210  -3.950   2.230  1.00  0.00           C
ATOM     17  C   ILE A   3       3.060  -2.370   2.170  1.00  0.00           C
ATOM     18  O   ILE A   3       3.440  -1.690   3.200  1.00  0.00           O
ATOM     19  CB  ILE A   3       2.530  -4.500   3.480  1.00  0.00           C
ATOM     20  CG1 ILE A   3       2.710  -6.030   3.440  1.00  0.00           C
ATOM     21  CG2 ILE A   3       1.100  -4.000   3.500  1.00  0.00           C
ATOM     22  CD1 ILE A   3       2.190  -6.730   4.700  1.00  0.00           C
ATOM     23  N   ARG A   4       2.510  -1.820   1.070  1.00  0.00           N
ATOM     24  CA  ARG A   4       2.320  -0.370   0.720  1.00  0.00           C
ATOM     25  C   ARG A   4       1.030  -0.130  -0.100  1.00  0.00           C
ATOM     26  O   ARG A   4       0.470   1.010  -0.070  1.00  0.00           O
ATOM     27  CB  ARG A   4       3.520   0.270   0.010  1.00  0.00           C
ATOM     28  CG  ARG A   4       4.940  -0.070   0.530  1.00  0.00           C
ATOM     29  CD  ARG A   4       6.110   0.780  -0.010  1.00  0.00           C
ATOM     30  NE  ARG A   4       6.110   2.060   0.770  1.00  0.00           N
ATOM     31  CZ  ARG A   4       6.220   3.290   0.270  1.00  0.00           C
ATOM     32  NH1 ARG A   4       6.170   3.690  -0.960  1.00  0.00           N
ATOM     33  NH2 ARG A   4       6.240   4.310   1.080  1.00  0.00           N
ATOM     34  OXT ARG A   4       0.460  -1.140  -0.610  1.00  0.00           O
TER      35      ARG A   4
END
"""

# Three backbone conformations (6 torsions: psi1, phi2, psi2, phi3, psi3, phi4), rad.
STATE_TORSIONS = np.radians(
    [
        [140.0, -70.0, 140.0, -70.0, 140.0, -70.0],  # extended / PPII
        [-40.0, -60.0, -40.0, -60.0, -40.0, -60.0],  # helical
        [140.0, 60.0, 40.0, -70.0, 140.0, 60.0],  # left-handed turn
    ]
)


def peptide_frame(tmp_path: Path) -> md.Trajectory:
    """The embedded AKIR frame as a one-frame trajectory (written once to read it with mdtraj)."""
    path = tmp_path / "akir_frame.pdb"
    if not path.exists():
        path.write_text(AKIR_FRAME_PDB)
    return md.load(str(path))


def markov_chain(
    transition_matrix: np.ndarray, n_steps: int, rng: np.random.Generator, start: int = 0
) -> np.ndarray:
    """State sequence (n_steps,) of a discrete Markov chain."""
    cumulative = np.cumsum(transition_matrix, axis=1)
    states = np.empty(n_steps, dtype=np.int64)
    states[0] = start
    draws = rng.random(n_steps)
    for t in range(1, n_steps):
        states[t] = min(np.searchsorted(cumulative[states[t - 1]], draws[t]), len(transition_matrix) - 1)
    return states


def peptide_trajectory(
    frame: md.Trajectory,
    states: np.ndarray,
    rng: np.random.Generator,
    noise_deg: float = 10.0,
    timestep_ps: float = 10.0,
    noise_memory: float = 0.0,
) -> md.Trajectory:
    """Frames whose backbone torsions are STATE_TORSIONS[states] plus noise, at `timestep_ps`.

    The noise is AR(1) with lag-1 correlation `noise_memory` (0 = independent per frame) and
    stationary standard deviation `noise_deg`, a stand-in for fast librations.
    """
    shocks = rng.standard_normal((len(states), 6)) * np.sqrt(1.0 - noise_memory**2)
    noise = np.empty_like(shocks)
    noise[0] = rng.standard_normal(6)
    for t in range(1, len(states)):
        noise[t] = noise_memory * noise[t - 1] + shocks[t]
    angles = STATE_TORSIONS[states] + np.radians(noise_deg) * noise
    angles = (angles + np.pi) % (2 * np.pi) - np.pi
    base = md.Trajectory(np.repeat(frame.xyz[:1], len(states), axis=0), frame.topology)
    moved = set_backbone_torsions(base, angles)
    moved.time = np.arange(1, len(states) + 1) * timestep_ps
    return moved


def write_peptide(stem: Path, traj: md.Trajectory) -> None:
    """stem.pdb (frame 0) and stem.xtc (all frames, with time stamps)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    traj[0].save_pdb(str(stem.with_suffix(".pdb")))
    traj.save_xtc(str(stem.with_suffix(".xtc")))
