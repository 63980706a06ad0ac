"""Residue tables for the 20 standard amino acids in AlphaFold conventions (numpy only).

Everything geometric here is derived at import time from a small internal-coordinate table
(bond lengths and angles after Engh & Huber 1991, fixed dihedrals of rings, planar groups and
branch points) by building each residue once with all torsions at zero and reading off, per
rigid group, its default frame and the ideal ("literature") coordinates of its atoms.

Rigid groups (AlphaFold): 0 backbone (N, CA, C, CB), 1 pre-omega, 2 phi (no heavy atoms),
3 psi (O), 4..7 chi1..chi4. Group frames follow one rule: origin on the axis-end atom, x along
the rotation axis, the torsion's first atom in the xy-plane (y > 0). The psi group is the
exception that defines AlphaFold's psi: its y axis points away from N, so psi_AF2 =
dihedral(N, CA, C, O) - pi. Units: Å and radians (the table below is in degrees for reading).
"""

from __future__ import annotations

import numpy as np

RESTYPES = "ARNDCQEGHILKMFPSTWYV"
NUM_AMINO_ACIDS = len(RESTYPES)  # 20 standard residues (also the width of the design simplex)
UNKNOWN_AATYPE = NUM_AMINO_ACIDS  # index 20
NUM_AATYPES = NUM_AMINO_ACIDS + 1  # 20 standard + unknown

RESTYPE_1TO3 = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
    "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
    "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}  # fmt: skip
RESTYPE_3TO1 = {three: one for one, three in RESTYPE_1TO3.items()}
RESNAMES3 = tuple(RESTYPE_1TO3[one] for one in RESTYPES) + ("UNK",)  # indexed by aatype

BACKBONE_ATOMS = ("N", "CA", "C", "O")
TORSION_NAMES = ("omega", "phi", "psi", "chi1", "chi2", "chi3", "chi4")
RIGID_GROUP_NAMES = ("backbone", "pre_omega", "phi", "psi", "chi1", "chi2", "chi3", "chi4")
NUM_TORSIONS = 7
NUM_RIGID_GROUPS = 8
CHI1_GROUP = 4

ATOM37_NAMES = (
    "N", "CA", "C", "CB", "O", "CG", "CG1", "CG2", "OG", "OG1", "SG", "CD", "CD1", "CD2", "ND1",
    "ND2", "OD1", "OD2", "SD", "CE", "CE1", "CE2", "CE3", "NE", "NE1", "NE2", "OE1", "OE2", "CH2",
    "NH1", "NH2", "OH", "CZ", "CZ2", "CZ3", "NZ", "OXT",
)  # fmt: skip
ATOM37_INDEX = {name: i for i, name in enumerate(ATOM37_NAMES)}

_SIDECHAIN_ATOMS = {
    "ALA": ("CB",),
    "ARG": ("CB", "CG", "CD", "NE", "CZ", "NH1", "NH2"),
    "ASN": ("CB", "CG", "OD1", "ND2"),
    "ASP": ("CB", "CG", "OD1", "OD2"),
    "CYS": ("CB", "SG"),
    "GLN": ("CB", "CG", "CD", "OE1", "NE2"),
    "GLU": ("CB", "CG", "CD", "OE1", "OE2"),
    "GLY": (),
    "HIS": ("CB", "CG", "ND1", "CD2", "CE1", "NE2"),
    "ILE": ("CB", "CG1", "CG2", "CD1"),
    "LEU": ("CB", "CG", "CD1", "CD2"),
    "LYS": ("CB", "CG", "CD", "CE", "NZ"),
    "MET": ("CB", "CG", "SD", "CE"),
    "PHE": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ"),
    "PRO": ("CB", "CG", "CD"),
    "SER": ("CB", "OG"),
    "THR": ("CB", "OG1", "CG2"),
    "TRP": ("CB", "CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"),
    "TYR": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ", "OH"),
    "VAL": ("CB", "CG1", "CG2"),
    "UNK": (),
}


def _pad14(names: tuple[str, ...]) -> tuple[str, ...]:
    return names + ("",) * (14 - len(names))


ATOM14_NAMES = {res: _pad14(BACKBONE_ATOMS + side) for res, side in _SIDECHAIN_ATOMS.items()}

# Chi torsions as atom quadruples; chi k rotates every atom downstream of the bond (atom 2, atom 3).
_CHI_ATOMS_BY_RESNAME = {
    "ALA": (),
    "ARG": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD"), ("CB", "CG", "CD", "NE"), ("CG", "CD", "NE", "CZ")),
    "ASN": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "OD1")),
    "ASP": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "OD1")),
    "CYS": (("N", "CA", "CB", "SG"),),
    "GLN": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD"), ("CB", "CG", "CD", "OE1")),
    "GLU": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD"), ("CB", "CG", "CD", "OE1")),
    "GLY": (),
    "HIS": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "ND1")),
    "ILE": (("N", "CA", "CB", "CG1"), ("CA", "CB", "CG1", "CD1")),
    "LEU": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD1")),
    "LYS": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD"), ("CB", "CG", "CD", "CE"), ("CG", "CD", "CE", "NZ")),
    "MET": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "SD"), ("CB", "CG", "SD", "CE")),
    "PHE": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD1")),
    "PRO": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD")),
    "SER": (("N", "CA", "CB", "OG"),),
    "THR": (("N", "CA", "CB", "OG1"),),
    "TRP": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD1")),
    "TYR": (("N", "CA", "CB", "CG"), ("CA", "CB", "CG", "CD1")),
    "VAL": (("N", "CA", "CB", "CG1"),),
    "UNK": (),
}  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Ideal geometry. Backbone after Engh & Huber (1991); the residue frame puts CA at the origin,
# C on +x and N in the xy-plane (METHOD 2.1).
_N_CA = 1.458
_CA_C = 1.525
_N_CA_C_DEG = 111.2
_C_O = 1.231
_CA_C_O_DEG = 120.1

# CB: (CA-CB length, angle N-CA-CB, angle C-CA-CB); L-chirality puts CB at z < 0.
_CB_GEOMETRY = {"ALA": (1.520, 110.4, 110.5), "ILE": (1.540, 111.5, 109.1), "THR": (1.540, 111.5, 109.1),
                "VAL": (1.540, 111.5, 109.1), "PRO": (1.530, 103.0, 111.7)}  # fmt: skip
_CB_GEOMETRY_DEFAULT = (1.530, 110.5, 110.1)

# Side-chain atoms after CB: (atom, (a, b, c), |c-atom| Å, angle b-c-atom deg, dihedral a-b-c-atom deg).
# The dihedral is None for a chi's fourth atom (a, b, c must then be that chi's first three atoms):
# the chi is the free torsion and is zero in the reference build.
_SIDECHAIN_INTERNAL_COORDINATES = {
    "ALA": (),
    "ARG": (
        ("CG", ("N", "CA", "CB"), 1.520, 114.1, None),
        ("CD", ("CA", "CB", "CG"), 1.520, 111.3, None),
        ("NE", ("CB", "CG", "CD"), 1.460, 112.0, None),
        ("CZ", ("CG", "CD", "NE"), 1.329, 124.2, None),
        ("NH1", ("CD", "NE", "CZ"), 1.326, 120.0, 0.0),  # IUPAC: NH1 is cis to CD
        ("NH2", ("CD", "NE", "CZ"), 1.326, 120.0, 180.0),
    ),
    "ASN": (
        ("CG", ("N", "CA", "CB"), 1.516, 112.6, None),
        ("OD1", ("CA", "CB", "CG"), 1.231, 120.8, None),
        ("ND2", ("OD1", "CB", "CG"), 1.328, 116.4, 180.0),
    ),
    "ASP": (
        ("CG", ("N", "CA", "CB"), 1.516, 112.6, None),
        ("OD1", ("CA", "CB", "CG"), 1.249, 118.4, None),
        ("OD2", ("OD1", "CB", "CG"), 1.249, 118.4, 180.0),
    ),
    "CYS": (("SG", ("N", "CA", "CB"), 1.808, 114.0, None),),
    "GLN": (
        ("CG", ("N", "CA", "CB"), 1.520, 114.1, None),
        ("CD", ("CA", "CB", "CG"), 1.516, 112.6, None),
        ("OE1", ("CB", "CG", "CD"), 1.231, 120.8, None),
        ("NE2", ("OE1", "CG", "CD"), 1.328, 116.4, 180.0),
    ),
    "GLU": (
        ("CG", ("N", "CA", "CB"), 1.520, 114.1, None),
        ("CD", ("CA", "CB", "CG"), 1.516, 112.6, None),
        ("OE1", ("CB", "CG", "CD"), 1.249, 118.4, None),
        ("OE2", ("OE1", "CG", "CD"), 1.249, 118.4, 180.0),
    ),
    "GLY": (),
    "HIS": (
        ("CG", ("N", "CA", "CB"), 1.497, 113.6, None),
        ("ND1", ("CA", "CB", "CG"), 1.378, 122.7, None),
        ("CD2", ("ND1", "CB", "CG"), 1.354, 131.0, 180.0),
        ("CE1", ("CB", "CG", "ND1"), 1.321, 109.0, 180.0),
        ("NE2", ("CG", "ND1", "CE1"), 1.321, 111.7, 0.0),
    ),
    "ILE": (
        ("CG1", ("N", "CA", "CB"), 1.530, 110.4, None),
        ("CG2", ("CG1", "CA", "CB"), 1.521, 110.5, -122.6),  # (2S,3S)
        ("CD1", ("CA", "CB", "CG1"), 1.513, 113.8, None),
    ),
    "LEU": (
        ("CG", ("N", "CA", "CB"), 1.530, 116.3, None),
        ("CD1", ("CA", "CB", "CG"), 1.521, 110.7, None),
        ("CD2", ("CD1", "CB", "CG"), 1.521, 110.7, 122.6),  # IUPAC (as in remediated PDB entries)
    ),
    "LYS": (
        ("CG", ("N", "CA", "CB"), 1.520, 114.1, None),
        ("CD", ("CA", "CB", "CG"), 1.520, 111.3, None),
        ("CE", ("CB", "CG", "CD"), 1.520, 111.3, None),
        ("NZ", ("CG", "CD", "CE"), 1.489, 111.9, None),
    ),
    "MET": (
        ("CG", ("N", "CA", "CB"), 1.520, 114.1, None),
        ("SD", ("CA", "CB", "CG"), 1.803, 112.7, None),
        ("CE", ("CB", "CG", "SD"), 1.791, 100.9, None),
    ),
    # Aromatic six-rings as regular hexagons (1.39 Å, 120°) so that they close exactly.
    "PHE": (
        ("CG", ("N", "CA", "CB"), 1.502, 113.8, None),
        ("CD1", ("CA", "CB", "CG"), 1.390, 120.0, None),
        ("CD2", ("CD1", "CB", "CG"), 1.390, 120.0, 180.0),
        ("CE1", ("CB", "CG", "CD1"), 1.390, 120.0, 180.0),
        ("CE2", ("CB", "CG", "CD2"), 1.390, 120.0, 180.0),
        ("CZ", ("CG", "CD1", "CE1"), 1.390, 120.0, 0.0),
    ),
    "PRO": (
        ("CG", ("N", "CA", "CB"), 1.495, 104.5, None),
        ("CD", ("CA", "CB", "CG"), 1.507, 105.5, None),
    ),
    "SER": (("OG", ("N", "CA", "CB"), 1.417, 111.1, None),),
    "THR": (
        ("OG1", ("N", "CA", "CB"), 1.433, 109.6, None),
        ("CG2", ("OG1", "CA", "CB"), 1.521, 110.5, -122.6),  # (2S,3R)
    ),
    "TRP": (
        ("CG", ("N", "CA", "CB"), 1.498, 113.6, None),
        ("CD1", ("CA", "CB", "CG"), 1.365, 126.9, None),
        ("CD2", ("CD1", "CB", "CG"), 1.433, 126.8, 180.0),
        ("NE1", ("CB", "CG", "CD1"), 1.374, 110.2, 180.0),
        ("CE2", ("CG", "CD1", "NE1"), 1.370, 108.9, 0.0),
        ("CE3", ("CD1", "CG", "CD2"), 1.398, 133.9, 180.0),
        ("CZ2", ("CG", "CD2", "CE2"), 1.394, 122.4, 180.0),
        ("CZ3", ("CG", "CD2", "CE3"), 1.382, 118.7, 180.0),
        ("CH2", ("CD2", "CE2", "CZ2"), 1.368, 117.5, 0.0),
    ),
    "TYR": (
        ("CG", ("N", "CA", "CB"), 1.512, 113.8, None),
        ("CD1", ("CA", "CB", "CG"), 1.390, 120.0, None),
        ("CD2", ("CD1", "CB", "CG"), 1.390, 120.0, 180.0),
        ("CE1", ("CB", "CG", "CD1"), 1.390, 120.0, 180.0),
        ("CE2", ("CB", "CG", "CD2"), 1.390, 120.0, 180.0),
        ("CZ", ("CG", "CD1", "CE1"), 1.390, 120.0, 0.0),
        ("OH", ("CD1", "CE1", "CZ"), 1.376, 120.0, 180.0),
    ),
    "VAL": (
        ("CG1", ("N", "CA", "CB"), 1.521, 110.5, None),
        ("CG2", ("CG1", "CA", "CB"), 1.521, 110.5, 122.6),  # IUPAC (as in remediated PDB entries)
    ),
    "UNK": (),
}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _place_atom(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle_deg: float, dihedral_deg: float
):
    """Position d with |cd| = bond, angle(b, c, d) and dihedral(a, b, c, d) given (natural extension)."""
    angle, dihedral = np.radians(angle_deg), np.radians(dihedral_deg)
    bc = _unit(c - b)
    normal = _unit(np.cross(b - a, bc))
    in_plane = np.cross(normal, bc)
    local = np.array([-np.cos(angle), np.sin(angle) * np.cos(dihedral), np.sin(angle) * np.sin(dihedral)])
    return c + bond * (local[0] * bc + local[1] * in_plane + local[2] * normal)


def _place_cb(n: np.ndarray, c: np.ndarray, length: float, n_ca_cb_deg: float, c_ca_cb_deg: float):
    """CB from its two bond angles at CA (CA at the origin); the root with z < 0 is the L-enantiomer."""
    u_n, u_c = _unit(n), _unit(c)
    # Solve u.u_n = cos(a1), u.u_c = cos(a2), |u| = 1 in the basis (u_n, u_c, u_n x u_c).
    gram = np.array([[1.0, u_n @ u_c], [u_n @ u_c, 1.0]])
    coef = np.linalg.solve(gram, np.cos(np.radians([n_ca_cb_deg, c_ca_cb_deg])))
    in_plane = coef[0] * u_n + coef[1] * u_c
    normal = _unit(np.cross(u_n, u_c))
    normal_toward_negative_z = normal if normal[2] < 0 else -normal
    direction = in_plane + np.sqrt(1.0 - in_plane @ in_plane) * normal_toward_negative_z
    return length * direction


def _rigid_from_axes(origin: np.ndarray, x_direction: np.ndarray, xy_direction: np.ndarray) -> np.ndarray:
    """4x4 local->global frame at `origin`: x along `x_direction`, `xy_direction` in the xy-plane, y > 0."""
    e_x = _unit(x_direction)
    e_y = _unit(xy_direction - (xy_direction @ e_x) * e_x)
    frame = np.eye(4)
    frame[:3, :3] = np.stack([e_x, e_y, np.cross(e_x, e_y)], axis=-1)
    frame[:3, 3] = origin
    return frame


def _reference_build(resname: str) -> dict[str, np.ndarray]:
    """All heavy atoms (no OXT) in the backbone frame with every torsion at zero (psi_AF2 = 0)."""
    angle = np.radians(_N_CA_C_DEG)
    pos = {
        "N": _N_CA * np.array([np.cos(angle), np.sin(angle), 0.0]),
        "CA": np.zeros(3),
        "C": np.array([_CA_C, 0.0, 0.0]),
    }
    pos["O"] = _place_atom(pos["N"], pos["CA"], pos["C"], _C_O, _CA_C_O_DEG, 180.0)
    if "CB" in _SIDECHAIN_ATOMS[resname]:
        pos["CB"] = _place_cb(pos["N"], pos["C"], *_CB_GEOMETRY.get(resname, _CB_GEOMETRY_DEFAULT))
    chi_fourth_atoms = {quad[3]: quad for quad in _CHI_ATOMS_BY_RESNAME[resname]}
    for atom, refs, bond, bond_angle, dihedral in _SIDECHAIN_INTERNAL_COORDINATES[resname]:
        if dihedral is None:
            if chi_fourth_atoms.get(atom, ())[:3] != refs:
                raise ValueError(
                    f"constants: {resname} {atom} has a free torsion but is not the 4th atom of a chi"
                )
            dihedral = 0.0
        pos[atom] = _place_atom(*(pos[r] for r in refs), bond, bond_angle, dihedral)
    return pos


def _parent_atom(resname: str, atom: str) -> str:
    for name, refs, *_ in _SIDECHAIN_INTERNAL_COORDINATES[resname]:
        if name == atom:
            return refs[2]
    raise KeyError(f"constants: {resname} {atom} has no internal coordinate")


def _rigid_group_of_atom(resname: str, atom: str) -> int:
    """Backbone/CB -> 0, O -> psi; a side-chain atom rides with the chi whose axis ends at its parent."""
    if atom in ("N", "CA", "C", "CB"):
        return 0
    if atom == "O":
        return 3
    parent = _parent_atom(resname, atom)
    for chi_index, quad in enumerate(_CHI_ATOMS_BY_RESNAME[resname]):
        if quad[2] == parent:
            return CHI1_GROUP + chi_index
    return _rigid_group_of_atom(resname, parent)


def _group_frames_global(resname: str, pos: dict[str, np.ndarray]) -> np.ndarray:
    """(8, 4, 4) group frames in the backbone frame at zero torsions (absent chi groups: identity)."""
    frames = np.tile(np.eye(4), (NUM_RIGID_GROUPS, 1, 1))
    frames[2] = _rigid_from_axes(pos["N"], pos["N"] - pos["CA"], pos["C"] - pos["CA"])
    # psi: y points away from N, which is what makes psi_AF2 = dihedral(N, CA, C, O) - pi.
    frames[3] = _rigid_from_axes(pos["C"], pos["C"] - pos["CA"], pos["CA"] - pos["N"])
    for chi_index, (a1, a2, a3, _) in enumerate(_CHI_ATOMS_BY_RESNAME[resname]):
        frames[CHI1_GROUP + chi_index] = _rigid_from_axes(pos[a3], pos[a3] - pos[a2], pos[a1] - pos[a2])
    return frames


def _build_tables():
    atom14_mask = np.zeros((NUM_AATYPES, 14), dtype=bool)
    atom14_group = np.zeros((NUM_AATYPES, 14), dtype=np.int64)
    atom14_positions = np.zeros((NUM_AATYPES, 14, 3), dtype=np.float64)
    default_frames = np.tile(np.eye(4), (NUM_AATYPES, NUM_RIGID_GROUPS, 1, 1))
    chi_mask = np.zeros((NUM_AATYPES, 4), dtype=bool)
    chi_atom14_index = np.zeros((NUM_AATYPES, 4, 4), dtype=np.int64)
    for aatype, resname in enumerate(RESNAMES3):
        # UNK is built as a backbone-only residue so that unknown/designed positions still decode.
        build_name = "GLY" if resname == "UNK" else resname
        pos = _reference_build(build_name)
        frames = _group_frames_global(build_name, pos)
        names = ATOM14_NAMES[resname]
        for slot, atom in enumerate(names):
            if not atom:
                continue
            group = _rigid_group_of_atom(resname, atom)
            atom14_mask[aatype, slot] = True
            atom14_group[aatype, slot] = group
            inverse = np.linalg.inv(frames[group])
            atom14_positions[aatype, slot] = inverse[:3, :3] @ pos[atom] + inverse[:3, 3]
        # Groups 1-4 hang on the backbone, chi2-chi4 on the previous chi group.
        for group in range(1, NUM_RIGID_GROUPS):
            parent = 0 if group <= CHI1_GROUP else group - 1
            default_frames[aatype, group] = np.linalg.inv(frames[parent]) @ frames[group]
        for chi_index, quad in enumerate(_CHI_ATOMS_BY_RESNAME[resname]):
            chi_mask[aatype, chi_index] = True
            chi_atom14_index[aatype, chi_index] = [names.index(a) for a in quad]
    return atom14_mask, atom14_group, atom14_positions, default_frames, chi_mask, chi_atom14_index


(
    ATOM14_MASK,  # (21, 14) bool
    ATOM14_RIGID_GROUP,  # (21, 14) int64, group index 0..7 (0 for empty slots)
    _ATOM14_POSITIONS_F64,
    _DEFAULT_FRAMES_F64,
    CHI_ANGLES_MASK,  # (21, 4) bool
    CHI_ANGLES_ATOM14_INDEX,  # (21, 4, 4) int64, atom14 slots of each chi quadruple (0 where masked)
) = _build_tables()
ATOM14_LITERATURE_POSITIONS = _ATOM14_POSITIONS_F64.astype(np.float32)  # (21, 14, 3) Å in group frames
RIGID_GROUP_DEFAULT_FRAMES = _DEFAULT_FRAMES_F64.astype(np.float32)  # (21, 8, 4, 4) group -> parent group
CHI_ANGLES_ATOMS = tuple(_CHI_ATOMS_BY_RESNAME[name] for name in RESNAMES3)  # indexed by aatype

# atom14 slot -> atom37 index per aatype (-1 for empty slots), for writers and metrics.
ATOM14_TO_ATOM37 = np.array(
    [[ATOM37_INDEX[a] if a else -1 for a in ATOM14_NAMES[name]] for name in RESNAMES3], dtype=np.int64
)  # (21, 14)


def aatype_from_sequence(sequence: str) -> np.ndarray:
    """(L,) int64 aatype in RESTYPES order; raises ValueError naming any non-standard letter."""
    unknown = sorted({letter for letter in sequence if letter not in RESTYPES})
    if unknown:
        raise ValueError(f"sequence {sequence!r} has non-standard residue letter(s) {unknown}")
    return np.array([RESTYPES.index(letter) for letter in sequence], dtype=np.int64)
