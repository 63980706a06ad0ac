"""Build an uncapped, zwitterionic peptide (all atoms, with hydrogens) from its one-letter sequence.

No network and no PyMOL. Steps:
1. NeRF places an ideal extended backbone (N, CA, C, O; phi -120, psi +130, omega 180 deg; proline
   phi -65 deg), each CB (fixes L chirality) and the proline ring from standard bond lengths and angles.
2. PDBFixer completes the other side-chain atoms and the C-terminal OXT (moved trans to O).
3. OpenMM's Modeller adds hydrogens at pH 7 (NH3+ / COO- termini, standard protonation states).
4. A short vacuum minimisation in the given force field removes strain left by PDBFixer.
Every stochastic step is seeded, so a sequence always gives the same structure.
"""

from __future__ import annotations

import io
import random
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import openmm
import openmm.app as app
from openmm import unit

from mdgen.errors import UserError

STANDARD_RESIDUES_1TO3 = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
    "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
    "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}  # fmt: skip

# Ideal trans-peptide geometry (Engh & Huber): bond lengths in Å, angles in degrees.
N_CA_Å, CA_C_Å, C_N_Å, C_O_Å = 1.458, 1.525, 1.329, 1.231
N_CA_C_DEG, CA_C_N_DEG, C_N_CA_DEG, CA_C_O_DEG = 111.2, 116.2, 121.7, 120.5
# CB fixes each residue's chirality (L: dihedral C-N-CA-CB = -122.6 deg). PDBFixer keeps given atoms
# fixed, so placing CB here stops its side-chain relaxation from flipping a CA (seen for proline).
CA_CB_Å, N_CA_CB_DEG, C_N_CA_CB_DEG = 1.530, 110.5, -122.6
# PDBFixer closes the proline ring badly (CD clashes with the previous C and the minimiser then
# inverts CA), so CG and CD are placed here too: a C-gamma-endo pucker, chi1 = +30, chi2 = -35 deg.
CB_CG_PRO_Å, CA_CB_CG_PRO_DEG, PRO_CHI1_DEG = 1.495, 104.5, 30.0
CG_CD_PRO_Å, CB_CG_CD_PRO_DEG, PRO_CHI2_DEG = 1.507, 105.5, -35.0

# Extended beta-strand start: relaxes quickly in MD and never clashes with itself.
EXTENDED_PHI_DEG, EXTENDED_PSI_DEG, TRANS_OMEGA_DEG = -120.0, 130.0, 180.0
# Proline's ring pins phi near -65 deg; at -120 its CD would clash with the previous residue's C.
PROLINE_PHI_DEG = -65.0

PH = 7.0
# PDBFixer (Langevin steps) and addHydrogens (random jitter) are stochastic; a fixed seed, and the
# deterministic Reference platform, make builds repeatable.
BUILD_SEED = 1
# PDBFixer relaxes new atoms in a crude force field; a short minimisation in the real one (no solvent,
# no cutoff) gives ideal covalent geometry before any solvation.
RELAX_MAX_ITERATIONS = 500


@dataclass(frozen=True)
class BuiltPeptide:
    """An all-atom peptide ready for ``ForceField.createSystem``."""

    sequence: str
    topology: app.Topology
    positions: unit.Quantity  # (N, 3) nm


def check_sequence(sequence: str) -> str:
    """Return the sequence upper-cased; raise UserError (a ValueError) naming any non-standard letter."""
    if not sequence:
        raise UserError("empty peptide sequence")
    upper = sequence.upper()
    bad = sorted({letter for letter in upper if letter not in STANDARD_RESIDUES_1TO3})
    if bad:
        raise UserError(
            f"sequence {sequence!r} contains non-standard residue letter(s) {bad}; "
            f"allowed: {''.join(sorted(STANDARD_RESIDUES_1TO3))}"
        )
    return upper


def place_atom(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, bond_Å: float, angle_deg: float, torsion_deg: float
):
    """NeRF: the point d with |cd| = bond, angle(b, c, d) = angle and dihedral(a, b, c, d) = torsion."""
    angle, torsion = np.deg2rad(angle_deg), np.deg2rad(torsion_deg)
    bc = (c - b) / np.linalg.norm(c - b)
    normal = np.cross(b - a, bc)
    normal /= np.linalg.norm(normal)
    # Local frame at c: x along bc, z along the plane normal.
    frame = np.stack([bc, np.cross(normal, bc), normal], axis=1)
    local = bond_Å * np.array(
        [-np.cos(angle), np.sin(angle) * np.cos(torsion), np.sin(angle) * np.sin(torsion)]
    )
    return c + frame @ local


def extended_backbone(sequence: str) -> np.ndarray:
    """Ideal extended backbone coordinates (L, 4, 3) Å in the order N, CA, C, O."""
    n = np.array([0.0, 0.0, 0.0])
    ca = np.array([N_CA_Å, 0.0, 0.0])
    angle = np.deg2rad(180.0 - N_CA_C_DEG)
    c = ca + CA_C_Å * np.array([np.cos(angle), np.sin(angle), 0.0])
    residues = []
    for index, letter in enumerate(sequence):
        if index > 0:
            prev_n, prev_ca, prev_c = residues[-1][:3]
            n = place_atom(prev_n, prev_ca, prev_c, C_N_Å, CA_C_N_DEG, EXTENDED_PSI_DEG)
            ca = place_atom(prev_ca, prev_c, n, N_CA_Å, C_N_CA_DEG, TRANS_OMEGA_DEG)
            phi_deg = PROLINE_PHI_DEG if letter == "P" else EXTENDED_PHI_DEG
            c = place_atom(prev_c, n, ca, CA_C_Å, N_CA_C_DEG, phi_deg)
        # O is trans to the next N: torsion N-CA-C-O = psi + 180.
        o = place_atom(n, ca, c, C_O_Å, CA_C_O_DEG, EXTENDED_PSI_DEG + 180.0)
        residues.append(np.stack([n, ca, c, o]))
    return np.stack(residues)


def ideal_cb(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The L-amino-acid CB position (3,) Å for one residue's N, CA, C."""
    return place_atom(c, n, ca, CA_CB_Å, N_CA_CB_DEG, C_N_CA_CB_DEG)


def seed_atoms(letter: str, backbone: np.ndarray) -> dict[str, np.ndarray]:
    """Atoms placed before PDBFixer for one residue: backbone (4, 3) Å, CB (not Gly), Pro ring."""
    n, ca, c, o = backbone
    atoms = {"N": n, "CA": ca, "C": c, "O": o}
    if letter != "G":
        atoms["CB"] = ideal_cb(n, ca, c)
    if letter == "P":
        atoms["CG"] = place_atom(n, ca, atoms["CB"], CB_CG_PRO_Å, CA_CB_CG_PRO_DEG, PRO_CHI1_DEG)
        atoms["CD"] = place_atom(ca, atoms["CB"], atoms["CG"], CG_CD_PRO_Å, CB_CG_CD_PRO_DEG, PRO_CHI2_DEG)
    return atoms


def backbone_pdb_text(sequence: str) -> str:
    """PDB text of one chain holding the ``seed_atoms`` of every residue."""
    sequence = check_sequence(sequence)
    coords = extended_backbone(sequence)
    lines, serial = [], 1
    for res_index, (letter, residue_xyz) in enumerate(zip(sequence, coords), start=1):
        for atom_name, (x, y, z) in seed_atoms(letter, residue_xyz).items():
            lines.append(
                f"ATOM  {serial:5d}  {atom_name:<3s} {STANDARD_RESIDUES_1TO3[letter]} A{res_index:4d}    "
                f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           {atom_name[0]:>2s}"
            )
            serial += 1
    lines += ["TER", "END"]
    return "\n".join(lines) + "\n"


def build_peptide(sequence: str, forcefield: app.ForceField) -> BuiltPeptide:
    """All-atom zwitterionic peptide: side chains and OXT from PDBFixer, hydrogens at pH 7, then relaxed."""
    from pdbfixer import PDBFixer  # heavy import; only needed here

    sequence = check_sequence(sequence)
    fixer = PDBFixer(pdbfile=io.StringIO(backbone_pdb_text(sequence)))
    fixer.platform = openmm.Platform.getPlatformByName("Reference")  # CPU-platform sums vary run to run
    fixer.findMissingResidues()
    fixer.findMissingAtoms()
    fixer.addMissingAtoms(seed=BUILD_SEED)
    place_oxt_trans_to_o(fixer.topology, fixer.positions)
    modeller = app.Modeller(fixer.topology, fixer.positions)
    with seeded_python_random(BUILD_SEED):  # addHydrogens jitters new H atoms with `random`
        modeller.addHydrogens(forcefield, pH=PH, platform=openmm.Platform.getPlatformByName("Reference"))
    positions = relax(modeller.topology, modeller.positions, forcefield)
    built_sequence = "".join(
        _three_to_one(residue.name, sequence) for residue in modeller.topology.residues()
    )
    if built_sequence != sequence:
        raise RuntimeError(f"built peptide {built_sequence!r} does not match requested {sequence!r}")
    return BuiltPeptide(sequence=sequence, topology=modeller.topology, positions=positions)


def place_oxt_trans_to_o(topology: app.Topology, positions: list) -> None:
    """Move the C-terminal OXT (PDBFixer can put it on top of O) to its ideal place, in place.

    Done after PDBFixer rather than seeding OXT so that OXT stays the residue's last atom, as in the
    published PDB files.
    """
    last = list(topology.residues())[-1]
    atoms = {atom.name: atom.index for atom in last.atoms()}
    if "OXT" not in atoms:
        raise RuntimeError(f"PDBFixer added no OXT to C-terminal residue {last.name}{last.id}")
    n, ca, c, o = (
        np.array(positions[atoms[name]].value_in_unit(unit.angstrom)) for name in ("N", "CA", "C", "O")
    )
    psi_deg = _dihedral_deg(n, ca, c, o) + 180.0  # O sits at psi + 180 deg
    oxt = place_atom(n, ca, c, C_O_Å, CA_C_O_DEG, psi_deg)
    positions[atoms["OXT"]] = openmm.Vec3(*oxt) * unit.angstrom


def _dihedral_deg(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / np.linalg.norm(b1)
    v, w = b0 - b0.dot(b1) * b1, b2 - b2.dot(b1) * b1
    return float(np.degrees(np.arctan2(np.cross(b1, v).dot(w), v.dot(w))))


@contextmanager
def seeded_python_random(seed: int):
    """Seed Python's global `random` inside the block and restore the caller's state afterwards."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def relax(topology: app.Topology, positions: unit.Quantity, forcefield: app.ForceField) -> unit.Quantity:
    """Energy-minimise the bare peptide in vacuum (no cutoff, no constraints) on the Reference platform.

    Implicit-solvent forces are dropped: they dominate the cost and do not change covalent geometry.
    """
    system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None)
    solvent_forces = [
        index
        for index, force in enumerate(system.getForces())
        if isinstance(force, (openmm.CustomGBForce, openmm.GBSAOBCForce))
    ]
    for index in reversed(solvent_forces):
        system.removeForce(index)
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=RELAX_MAX_ITERATIONS)
    return context.getState(getPositions=True).getPositions()


def _three_to_one(resname: str, sequence: str) -> str:
    # addHydrogens renames protonation variants (HID/HIE/HIP, CYX, ...); map them back.
    variants = {"HID": "H", "HIE": "H", "HIP": "H", "CYX": "C", "ASH": "D", "GLH": "E", "LYN": "K"}
    for letter, three in STANDARD_RESIDUES_1TO3.items():
        if three == resname:
            return letter
    if resname in variants:
        return variants[resname]
    raise RuntimeError(f"unexpected residue {resname!r} while building {sequence!r}")
