"""Physical validity: a clean real frame passes; planted clashes and chain breaks are caught."""

import mdtraj as md
import numpy as np
import pytest

from eval_peptide import peptide_frame
from mdgen.evaluation.baselines import _downstream_atoms, _rotate
from mdgen.evaluation.validity import frame_failures, measure_covalent_geometry, validity_scores


def _atom(traj: md.Trajectory, residue: int, name: str) -> int:
    return next(a.index for a in traj.topology.residue(residue).atoms if a.name == name)


def _place_at_distance(traj: md.Trajectory, moving: int, anchor: int, distance_A: float) -> md.Trajectory:
    """Copy of traj with atom `moving` put `distance_A` from `anchor`, on the side facing away from the molecule."""
    xyz = traj.xyz.copy()
    direction = xyz[0, anchor] - xyz[0].mean(axis=0)
    xyz[0, moving] = xyz[0, anchor] + direction / np.linalg.norm(direction) * distance_A / 10
    return md.Trajectory(xyz, traj.topology)


@pytest.fixture
def frame(tmp_path):
    return peptide_frame(tmp_path)


def test_clean_real_frame_is_valid(frame):
    scores = validity_scores(frame, measure_covalent_geometry(frame))
    assert scores.valid_fraction == 1.0
    assert scores.clash_rate == scores.ca_break_rate == scores.cn_break_rate == 0.0
    assert scores.bond_length_deviation_A == pytest.approx(0.0, abs=1e-5)


def test_planted_clash_is_caught(frame):
    clashing = _place_at_distance(
        frame, _atom(frame, 2, "CD1"), _atom(frame, 0, "CB"), 2.5
    )  # C-C needs 3.0 A
    failures = frame_failures(clashing)
    assert failures["clash"][0] and not failures["ca_break"][0] and not failures["cn_break"][0]
    scores = validity_scores(md.join([frame, clashing]), measure_covalent_geometry(frame))
    assert scores.valid_fraction == 0.5 and scores.clash_rate == 0.5
    assert scores.bond_length_deviation_A > 0.0  # CD1 moved, so its bond stretched


def test_polar_pairs_may_approach_to_hydrogen_bond_distance(frame):
    nz, o = _atom(frame, 1, "NZ"), _atom(frame, 3, "OXT")
    assert not frame_failures(_place_at_distance(frame, nz, o, 2.6))["clash"][0]
    assert frame_failures(_place_at_distance(frame, nz, o, 2.4))["clash"][0]


def test_broken_peptide_bond_is_a_chain_break(frame):
    xyz = frame.xyz.copy()
    last = [a.index for a in frame.topology.residue(3).atoms]
    xyz[0, last] += np.array([0.2, 0.0, 0.0])  # move the last residue 2 A away
    failures = frame_failures(md.Trajectory(xyz, frame.topology))
    assert failures["cn_break"][0] and failures["ca_break"][0]
    assert (
        validity_scores(md.Trajectory(xyz, frame.topology), measure_covalent_geometry(frame)).valid_fraction
        == 0.0
    )


def test_cis_peptide_bond_is_allowed_only_before_proline(frame):
    c, n = _atom(frame, 1, "C"), _atom(frame, 2, "N")
    moving = _downstream_atoms(frame.topology, c, n)
    origin = frame.xyz[:, n]
    axis = (origin - frame.xyz[:, c]) / np.linalg.norm(origin - frame.xyz[:, c])
    xyz = frame.xyz.copy()
    xyz[:, moving] = _rotate(xyz[:, moving] - origin[:, None], axis, np.array([np.pi])) + origin[:, None]
    cis = md.Trajectory(xyz, frame.topology)
    ca_ca = md.compute_distances(cis, [[_atom(frame, 1, "CA"), _atom(frame, 2, "CA")]])[0, 0] * 10
    assert 2.7 < ca_ca < 3.3
    assert frame_failures(cis)["ca_break"][0]
    frame.topology.residue(2).name = "PRO"  # same coordinates, now a cis-proline
    assert not frame_failures(cis)["ca_break"][0]
