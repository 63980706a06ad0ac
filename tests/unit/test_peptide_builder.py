"""The peptide builder: ideal backbone geometry, all 20 residues, zwitterionic termini, bad input."""

import mdtraj
import numpy as np
import openmm.app as app
import pytest

from mdgen.md.peptide_builder import (
    EXTENDED_PHI_DEG,
    EXTENDED_PSI_DEG,
    PROLINE_PHI_DEG,
    backbone_pdb_text,
    build_peptide,
    check_sequence,
    extended_backbone,
    place_atom,
)

ALL_20 = "ARNDCQEGHILKMFPSTWYV"
# Heavy atoms per residue inside a chain (no OXT).
HEAVY_ATOMS = dict(zip(ALL_20, [5, 11, 8, 8, 6, 9, 9, 4, 10, 8, 8, 9, 8, 11, 7, 6, 7, 14, 12, 7]))


@pytest.fixture(scope="module")
def forcefield():
    return app.ForceField("amber14-all.xml", "implicit/obc2.xml")


@pytest.fixture(scope="module")
def all_residues_peptide(forcefield):
    return build_peptide(ALL_20, forcefield)


def _dihedral_deg(a, b, c, d) -> float:
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / np.linalg.norm(b1)
    v, w = b0 - b0.dot(b1) * b1, b2 - b2.dot(b1) * b1
    return float(np.degrees(np.arctan2(np.cross(b1, v).dot(w), v.dot(w))))


def test_place_atom_reproduces_bond_angle_and_torsion():
    a, b, c = np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 0.0])
    d = place_atom(a, b, c, bond_Å=1.5, angle_deg=109.5, torsion_deg=-60.0)
    cb, cd = b - c, d - c
    assert np.linalg.norm(cd) == pytest.approx(1.5)
    assert np.degrees(np.arccos(cb.dot(cd) / np.linalg.norm(cb) / 1.5)) == pytest.approx(109.5)
    assert _dihedral_deg(a, b, c, d) == pytest.approx(-60.0)


def test_extended_backbone_has_requested_torsions():
    backbone = extended_backbone("GAPAS")  # (5, 4, 3) Å: N, CA, C, O
    n, ca, c = backbone[:, 0], backbone[:, 1], backbone[:, 2]
    phis = [_dihedral_deg(c[i - 1], n[i], ca[i], c[i]) for i in range(1, 5)]
    psis = [_dihedral_deg(n[i], ca[i], c[i], n[i + 1]) for i in range(4)]
    omegas = [_dihedral_deg(ca[i], c[i], n[i + 1], ca[i + 1]) for i in range(4)]
    expected_phis = [EXTENDED_PHI_DEG, PROLINE_PHI_DEG, EXTENDED_PHI_DEG, EXTENDED_PHI_DEG]
    np.testing.assert_allclose(phis, expected_phis, atol=1e-6)
    np.testing.assert_allclose(psis, EXTENDED_PSI_DEG, atol=1e-6)
    np.testing.assert_allclose(np.abs(omegas), 180.0, atol=1e-6)
    peptide_bonds_Å = np.linalg.norm(n[1:] - c[:-1], axis=-1)
    np.testing.assert_allclose(peptide_bonds_Å, 1.329, atol=1e-6)


def test_backbone_pdb_text_parses_with_residue_names():
    pdb = backbone_pdb_text("GWPK")
    assert pdb.count("ATOM") == 4 * 4 + 3 + 2  # N, CA, C, O; CB except glycine; proline CG, CD
    assert [line[17:20] for line in pdb.splitlines() if " CA " in line] == ["GLY", "TRP", "PRO", "LYS"]


def test_all_20_residues_build_with_complete_heavy_atoms(all_residues_peptide):
    residues = list(all_residues_peptide.topology.residues())
    assert len(residues) == 20
    for letter, residue in zip(ALL_20, residues):
        heavy = [atom.name for atom in residue.atoms() if atom.element.symbol != "H"]
        expected = HEAVY_ATOMS[letter] + (1 if residue is residues[-1] else 0)  # C-terminal OXT
        assert len(heavy) == expected, f"{letter}: {heavy}"
    assert "OXT" in {atom.name for atom in residues[-1].atoms()}
    assert all("OXT" not in {atom.name for atom in residue.atoms()} for residue in residues[:-1])


def test_termini_are_zwitterionic_and_forcefield_matches(forcefield, all_residues_peptide):
    first = {atom.name for atom in next(all_residues_peptide.topology.residues()).atoms()}
    assert {"H1", "H2", "H3"} <= first or {"H", "H2", "H3"} <= first  # NH3+
    # createSystem fails unless every residue matches an amber14 template (charged termini included).
    system = forcefield.createSystem(all_residues_peptide.topology)
    nonbonded = next(f for f in system.getForces() if f.__class__.__name__ == "NonbondedForce")
    total_charge = sum(nonbonded.getParticleParameters(i)[0]._value for i in range(system.getNumParticles()))
    # pH 7: R, K +1; D, E -1; H neutral; NH3+ and COO- cancel. ALL_20 holds one each of R, K, D, E.
    assert total_charge == pytest.approx(0.0, abs=1e-6)


def test_built_structure_is_clash_free(all_residues_peptide):
    xyz_nm = np.asarray(all_residues_peptide.positions.value_in_unit(all_residues_peptide.positions.unit))
    topology = mdtraj.Topology.from_openmm(all_residues_peptide.topology)
    heavy = topology.select("element != H")
    bonded = {(min(a.index, b.index), max(a.index, b.index)) for a, b in topology.bonds}
    distances_nm = np.linalg.norm(xyz_nm[heavy, None] - xyz_nm[None, heavy], axis=-1)
    for i, j in zip(*np.nonzero(np.triu(distances_nm < 0.2, k=1))):
        pair = (heavy[i], heavy[j])
        assert pair in bonded, f"heavy atoms {pair} only {distances_nm[i, j]:.3f} nm apart"


def test_every_chiral_alpha_carbon_is_l(all_residues_peptide):
    xyz_nm = np.asarray(all_residues_peptide.positions.value_in_unit(all_residues_peptide.positions.unit))
    for residue in all_residues_peptide.topology.residues():
        if residue.name == "GLY":
            continue
        atoms = {atom.name: xyz_nm[atom.index] for atom in residue.atoms()}
        n, ca, c, cb = (atoms[name] for name in ("N", "CA", "C", "CB"))
        # L-amino acids: (N - CA) x (C - CA) points to the side of CB.
        assert np.cross(n - ca, c - ca).dot(cb - ca) > 0, residue


def test_threonine_and_isoleucine_beta_carbons_have_natural_chirality(all_residues_peptide):
    xyz_nm = np.asarray(all_residues_peptide.positions.value_in_unit(all_residues_peptide.positions.unit))
    second_branch = {"THR": "OG1", "ILE": "CG1"}
    for residue in all_residues_peptide.topology.residues():
        if residue.name not in second_branch:
            continue
        atoms = {atom.name: xyz_nm[atom.index] for atom in residue.atoms()}
        ca, cb, branch, cg2 = (atoms[name] for name in ("CA", "CB", second_branch[residue.name], "CG2"))
        # Sign taken from real MD of RTVD and AKIR (../shared/data): Thr 2S,3R and Ile 2S,3S.
        assert np.cross(ca - cb, branch - cb).dot(cg2 - cb) > 0, residue


def test_build_is_repeatable(forcefield):
    first, second = build_peptide("GPWE", forcefield), build_peptide("GPWE", forcefield)
    np.testing.assert_allclose(
        first.positions.value_in_unit(first.positions.unit),
        second.positions.value_in_unit(second.positions.unit),
    )


@pytest.mark.parametrize("sequence, letter", [("AXGK", "X"), ("GB", "B"), ("AA1", "1")])
def test_non_standard_letter_is_named(sequence, letter):
    with pytest.raises(ValueError, match=rf"{sequence}.*'{letter}'"):
        check_sequence(sequence)


def test_empty_sequence_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        check_sequence("")
