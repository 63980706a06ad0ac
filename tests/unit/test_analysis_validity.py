"""Physical validity: a clean real frame passes; planted clashes and chain breaks are caught."""

import mdtraj as md
import numpy as np
import pytest

from eval_peptide import peptide_frame
from mdgen.analysis.validity import frame_failures, measure_covalent_geometry, validity_scores
from mdgen.evaluation.baselines import _downstream_atoms, _rotate


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


# ---- boundaries: every threshold tested 0.01 Å on both sides (METHOD 12) --------------------------------
#
# Small synthetic topologies isolate one threshold each; every expected value below is worked out by hand
# from METHOD 12 (Bondi radii C 1.70, N 1.55, O 1.52, S 1.80 Å; overlap 0.4 Å; N/O pairs down to 2.5 Å),
# not read from the module's constants, so a wrong radius, overlap, range end or comparison is caught.

EPS_A = 0.01
ELEMENTS = {"C": md.element.carbon, "N": md.element.nitrogen, "O": md.element.oxygen, "S": md.element.sulfur}


def _trajectory(topology: md.Topology, positions_A: dict[int, tuple[float, float, float]]) -> md.Trajectory:
    xyz = np.array([positions_A[i] for i in range(topology.n_atoms)], dtype=np.float64)[None] / 10.0
    return md.Trajectory(xyz.astype(np.float32), topology)


def _two_molecules(first: str, second: str, distance_A: float) -> md.Trajectory:
    """Two chains of one residue each: atom `first` bonded to a carbon, atom `second` bonded to a carbon;
    `first` and `second` are `distance_A` apart on the x axis, both carbons 3 Å further out (the only
    close pair is the tested one; different molecules count as infinitely many bonds apart)."""
    topology = md.Topology()
    atoms = []
    for element in (first, second):
        residue = topology.add_residue("UNK", topology.add_chain())
        tested = topology.add_atom(f"{element}1", ELEMENTS[element], residue)
        carbon = topology.add_atom("C2", md.element.carbon, residue)
        topology.add_bond(tested, carbon)
        atoms += [tested, carbon]
    positions = {
        0: (0.0, 0.0, 0.0),
        1: (-3.0, 0.0, 0.0),
        2: (distance_A, 0.0, 0.0),
        3: (distance_A + 3.0, 0, 0),
    }
    return _trajectory(topology, positions)


# Clash distance r1 + r2 - 0.4 Å by hand; N/O pairs 2.5 Å (hydrogen bonds) whatever their radii say.
CLASH_DISTANCES_A = [
    ("C", "C", 3.00),
    ("C", "N", 2.85),
    ("C", "O", 2.82),
    ("C", "S", 3.10),
    ("N", "S", 2.95),
    ("O", "S", 2.92),
    ("S", "N", 2.95),  # both orders: the pair's element test must be symmetric
    ("S", "O", 2.92),
    ("O", "C", 2.82),
    ("S", "S", 3.20),
    ("N", "N", 2.50),
    ("N", "O", 2.50),
    ("O", "O", 2.50),
]


@pytest.mark.parametrize(("first", "second", "limit_A"), CLASH_DISTANCES_A)
def test_clash_limit_of_each_element_pair_on_both_sides(first, second, limit_A):
    """Catches: a wrong Bondi radius, overlap other than 0.4 Å, the hydrogen-bond exception applied to
    S or C (or not to N/O), a wrong hydrogen-bond distance."""
    assert frame_failures(_two_molecules(first, second, limit_A - EPS_A))["clash"][0]
    assert not frame_failures(_two_molecules(first, second, limit_A + EPS_A))["clash"][0]


def _carbon_chain(close_A: float, bonds_apart: int) -> md.Trajectory:
    """Five carbons C0-C1-C2-C3-C4 bonded in a row (one residue, one chain); C0 and C`bonds_apart` are
    `close_A` apart and every other pair at least 3.4 Å apart."""
    topology = md.Topology()
    residue = topology.add_residue("UNK", topology.add_chain())
    atoms = [topology.add_atom(f"C{i}", md.element.carbon, residue) for i in range(5)]
    for a, b in zip(atoms[:-1], atoms[1:]):
        topology.add_bond(a, b)
    # C1..C3 on a wide arc, C4 back near the start; then the partner of C0 is moved next to it.
    positions = {
        0: (0.0, 0.0, 0.0),
        1: (0.0, 4.0, 0.0),
        2: (4.0, 6.0, 0.0),
        3: (8.0, 4.0, 0.0),
        4: (8.0, 0.0, 0.0),
    }
    positions[bonds_apart] = (close_A, 0.0, 0.0)
    if bonds_apart == 3:
        positions[4] = (close_A + 4.0, -4.0, 0.0)
    return _trajectory(topology, positions)


def test_only_pairs_more_than_three_bonds_apart_can_clash():
    """C0-C3 (three bonds) may overlap freely; C0-C4 (four bonds) clashes below 3.0 Å and not above.
    Catches: `MIN_BONDS_APART` off by one (3 or 5), `>` for `>=` on the bond count."""
    assert not frame_failures(_carbon_chain(2.0, bonds_apart=3))["clash"][0]
    assert frame_failures(_carbon_chain(3.0 - EPS_A, bonds_apart=4))["clash"][0]
    assert not frame_failures(_carbon_chain(3.0 + EPS_A, bonds_apart=4))["clash"][0]


def _dipeptide(ca_ca_A: float, c_n_A: float = 1.33, second: str = "ALA") -> md.Trajectory:
    """Backbone-only dipeptide N-CA-C / N-CA-C (residue 2 named `second`) with CA1-CA2 = ca_ca_A and
    C1-N2 = c_n_A; N2 sits off the CA-CA line so the two distances are set independently, and no pair
    more than three bonds apart comes within 3.3 Å (no clash)."""
    topology = md.Topology()
    chain = topology.add_chain()
    atoms = []
    for name in ("ALA", second):
        residue = topology.add_residue(name, chain)
        atoms += [topology.add_atom(a, ELEMENTS[a[0]], residue) for a in ("N", "CA", "C")]
    for a, b in zip(atoms[:-1], atoms[1:]):  # N1-CA1-C1-N2-CA2-C2
        topology.add_bond(a, b)
    c1 = np.array([1.0, 0.5, 0.0])
    positions = {
        0: (-1.0, 1.0, 0.0),  # N1
        1: (0.0, 0.0, 0.0),  # CA1
        2: tuple(c1),  # C1
        3: tuple(c1 + np.array([0.0, 0.0, c_n_A])),  # N2, straight above C1
        4: (ca_ca_A, 0.0, 0.0),  # CA2
        5: (ca_ca_A + 1.5, -0.5, 0.0),  # C2
    }
    return _trajectory(topology, positions)


def _flags(traj: md.Trajectory) -> tuple[bool, bool, bool]:
    failures = frame_failures(traj)
    return bool(failures["ca_break"][0]), bool(failures["cn_break"][0]), bool(failures["clash"][0])


@pytest.mark.parametrize(
    ("ca_ca_A", "second", "broken"),
    [
        (3.6 - EPS_A, "ALA", True),
        (3.6 + EPS_A, "ALA", False),
        (4.0 - EPS_A, "ALA", False),
        (4.0 + EPS_A, "ALA", True),
        (2.7 - EPS_A, "PRO", True),
        (2.7 + EPS_A, "PRO", False),
        (3.6 - EPS_A, "PRO", False),  # cis range before a proline only
        (4.0 - EPS_A, "PRO", False),
        (4.0 + EPS_A, "PRO", True),
        (2.7 + EPS_A, "ALA", True),
    ],
)
def test_ca_ca_range_on_both_sides_of_each_end(ca_ca_A, second, broken):
    """[3.6, 4.0] Å, or [2.7, 4.0] Å when the next residue is a proline. Catches: a shifted range end,
    the proline exception keyed on the wrong residue of the pair, the upper end dropped."""
    assert _flags(_dipeptide(ca_ca_A, second=second)) == (broken, False, False)


@pytest.mark.parametrize(
    ("c_n_A", "broken"),
    [(1.2 - EPS_A, True), (1.2 + EPS_A, False), (1.5 - EPS_A, False), (1.5 + EPS_A, True)],
)
def test_peptide_bond_range_on_both_sides_of_each_end(c_n_A, broken):
    """C(i)-N(i+1) in [1.2, 1.5] Å. Catches: a shifted range end, CA-CA limits applied to C-N."""
    assert _flags(_dipeptide(3.8, c_n_A=c_n_A)) == (False, broken, False)


def test_the_proline_exception_belongs_to_the_residue_after_the_bond():
    """Residue 1 a proline, residue 2 not: a cis-like CA-CA of 2.71 Å is still a break.
    Catches: `before_proline` taken from the first residue of the pair."""
    traj = _dipeptide(2.7 + EPS_A)
    traj.topology.residue(0).name = "PRO"
    assert _flags(traj) == (True, False, False)
