"""Read MD trajectories into atom14 arrays and write atom14 back to PDB + XTC (mdtraj underneath).

Only heavy atoms of the 20 standard residues are kept: hydrogens and the C-terminal OXT are
dropped on read (logged once per file); anything else that does not fit the atom14 layout is an
error. Coordinates are float32 Å here and nm inside mdtraj.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import mdtraj as md
import numpy as np

from mdgen import constants as rc
from mdgen.errors import UserError
from mdgen.files import atomic_path
from mdgen.timesteps import timestep_from_stamps

logger = logging.getLogger(__name__)

TRAJECTORY_SUFFIXES = (".xtc", ".dcd", ".h5", ".pdb")
_UNTIMED_SUFFIXES = (".pdb", ".dcd")  # formats without time stamps
_NM_PER_ANGSTROM = 0.1
_DROPPED_ATOMS = frozenset({"OXT"})  # terminal carboxylate O: not part of atom14
# Prochiral methyls named by IUPAC: the dihedral over (first, b, c, last) is positive. Builders do not
# always follow it (the shared Leu MD swaps CD1/CD2), and the ideal side chain assumes it.
_IUPAC_POSITIVE_IMPROPERS = {"LEU": ("CD1", "CB", "CG", "CD2"), "VAL": ("CG1", "CA", "CB", "CG2")}
# Bond lengths (Å) a real structure's frame 0 has; the MD of data/demo/md and ../shared/data (350 K,
# every frame) spans N-CA 1.34-1.63, CA-C 1.40-1.70, C-N 1.21-1.47, CA-CA 3.53-4.13 (cis peptides: 2.9).
BACKBONE_BOND_LIMITS = {
    "N-CA": (1.15, 1.80),
    "CA-C": (1.20, 1.85),
    "C-N(i+1)": (1.00, 1.70),
    "CA-CA(i+1)": (2.60, 4.40),
}
BOND_LIMITS = (0.90, 2.50)  # any heavy-atom bond of the topology (real MD: 1.12-1.99; S-S 2.05)
MAX_ABS_COORDINATE = 1.0e4  # Å; larger is a unit or file error, not a molecule
_MIN_FRAME_AXIS = 0.5  # Å; shorter N-CA or CA-C defines no residue frame
_MIN_FRAME_SINE = 0.1  # |sin| of the N-CA-C angle; smaller: N, CA, C (nearly) on one line
_RESNAME_ALIASES = {
    # Protonation/force-field variants of standard residues (mdtraj maps most of these for PDB only).
    "HID": "HIS", "HIE": "HIS", "HIP": "HIS", "HSD": "HIS", "HSE": "HIS", "HSP": "HIS",
    "CYX": "CYS", "CYM": "CYS", "ASH": "ASP", "GLH": "GLU", "LYN": "LYS",
}  # fmt: skip


class TrajectoryError(UserError):
    """A trajectory file cannot be read or written as requested; the message names the file."""


@dataclass(frozen=True)
class Trajectory:
    atom14: np.ndarray  # (T, L, 14, 3) float32 Å; zero where atom14_mask is False
    atom14_mask: np.ndarray  # (L, 14) bool, atoms present in the file
    aatype: np.ndarray  # (L,) int64, RESTYPES order
    timestep_ps: float  # time between stored frames (stride included); nan when the file has no time
    # stamps (PDB, DCD) or one frame; uneven stamps raise mdgen.timesteps.TimeStepError
    sequence: str  # one-letter, length L
    residue_index: np.ndarray  # (L,) int64, 0-based position in the chain
    source: str  # the file the coordinates came from

    @property
    def num_frames(self) -> int:
        return self.atom14.shape[0]

    @property
    def num_residues(self) -> int:
        return self.atom14.shape[1]


def read_trajectory(
    topology_path: str | os.PathLike,
    trajectory_path: str | os.PathLike | None = None,
    stride: int = 1,
    *,
    allow_missing_sidechain_atoms: bool = False,
    check_bonds: bool = True,
) -> Trajectory:
    """PDB topology (+ XTC/DCD/H5/PDB trajectory; None reads the topology's models) -> Trajectory.

    A residue missing a backbone atom (N, CA, C, O) is always an error. A missing side-chain atom is
    an error too unless allow_missing_sidechain_atoms: torsions computed without atom14_mask would
    silently read the zero placeholder. When allowed, atom14_mask records what is present.

    Every frame must hold finite coordinates below 1e4 Å and a proper backbone frame per residue (N,
    CA, C apart and not on one line). With check_bonds, frame 0's bonds must also have the lengths of a
    real structure (``BACKBONE_BOND_LIMITS``; every bond of the topology within ``BOND_LIMITS``): a PDB
    and a trajectory of different peptides with the same atom count fail here. Pass False only for
    files this package generated itself (model samples, whose inter-residue geometry is not MD's).
    """
    topology_path = Path(topology_path)
    coordinates_path = topology_path if trajectory_path is None else Path(trajectory_path)
    if stride < 1:
        raise TrajectoryError(f"{coordinates_path}: stride must be >= 1, got {stride}")
    for path in dict.fromkeys((topology_path, coordinates_path)):
        if not path.is_file():
            raise TrajectoryError(f"{path}: file not found")
    if coordinates_path.suffix.lower() not in TRAJECTORY_SUFFIXES:
        raise TrajectoryError(
            f"{coordinates_path}: unsupported trajectory format (use {TRAJECTORY_SUFFIXES})"
        )

    topology = _load_topology(topology_path)
    num_file_atoms = _count_trajectory_atoms(coordinates_path)
    if num_file_atoms != topology.n_atoms:
        raise TrajectoryError(
            f"atom count mismatch: topology {topology_path} has {topology.n_atoms} atoms, "
            f"trajectory {coordinates_path} has {num_file_atoms}"
        )
    try:
        traj = md.load(str(coordinates_path), top=topology, stride=stride)
    except Exception as err:  # mdtraj raises many types for corrupt files; keep its message
        raise TrajectoryError(f"{coordinates_path}: cannot read trajectory ({err})") from err

    layout = _atom14_layout(topology, topology_path)
    if not allow_missing_sidechain_atoms:
        _check_complete_residues(layout, topology, topology_path)
    xyz = traj.xyz[:, layout.atom_indices] / _NM_PER_ANGSTROM  # (T, n_kept, 3) Å
    residue_names = [f"{residue.name}{residue.resSeq}" for residue in topology.residues]
    _check_coordinates(xyz, layout.residue_slots, residue_names, coordinates_path)
    atom14 = np.zeros((traj.n_frames, len(layout.aatype), 14, 3), dtype=np.float32)
    atom14[:, layout.residue_slots, layout.atom14_slots] = xyz
    # Frame 0 first: with the wrong topology, its bond lengths say so more plainly than a later frame.
    _check_backbone_frames(atom14[:1], residue_names, coordinates_path, check_angle=False)
    if check_bonds:
        _check_first_frame_bonds(
            atom14, xyz, layout, topology, residue_names, coordinates_path, topology_path
        )
    _check_backbone_frames(atom14, residue_names, coordinates_path)
    _rename_prochiral_atoms_to_iupac(atom14, layout, coordinates_path)
    return Trajectory(
        atom14=atom14,
        atom14_mask=layout.atom14_mask,
        aatype=layout.aatype,
        timestep_ps=_timestep_ps(traj, coordinates_path),
        sequence="".join(rc.RESTYPES[a] for a in layout.aatype),
        residue_index=np.arange(len(layout.aatype), dtype=np.int64),
        source=str(coordinates_path),
    )


def _check_coordinates(
    xyz: np.ndarray,  # (T, n_kept, 3) Å
    residue_slots: np.ndarray,  # (n_kept,)
    residue_names: list[str],
    path: Path,
) -> None:
    """NaN/inf or absurdly large coordinates: an error naming the first bad frame and residue."""
    with np.errstate(invalid="ignore"):
        checks = (
            (~np.isfinite(xyz).all(axis=-1), "non-finite (NaN/inf) coordinates"),
            (np.abs(np.nan_to_num(xyz)).max(axis=-1) > MAX_ABS_COORDINATE, "absurd coordinates"),
        )
    for bad, problem in checks:  # (T, n_kept) each
        if bad.any():
            frame, atom = (int(i) for i in np.argwhere(bad)[0])
            raise TrajectoryError(
                f"{path}: {problem} in frame {frame}, residue {residue_names[residue_slots[atom]]} "
                f"({np.round(xyz[frame, atom], 3).tolist()} Å; |x| must be < {MAX_ABS_COORDINATE:g} Å)"
            )


def _check_backbone_frames(
    atom14: np.ndarray, residue_names: list[str], path: Path, check_angle: bool = True
) -> None:
    """atom14 (T, L, 14, 3) Å: every residue of every frame needs N, CA, C that define a frame: N-CA
    and CA-C not collapsed to a point and (check_angle) the three atoms not on one line."""
    n, ca, c = (atom14[:, :, slot].astype(np.float64) for slot in range(3))  # (T, L, 3) each
    ca_n, ca_c = n - ca, c - ca
    n_ca = np.linalg.norm(ca_n, axis=-1)  # (T, L)
    ca_c_length = np.linalg.norm(ca_c, axis=-1)
    collapsed = (n_ca < _MIN_FRAME_AXIS) | (ca_c_length < _MIN_FRAME_AXIS)
    sine = np.linalg.norm(np.cross(ca_n, ca_c), axis=-1) / np.maximum(n_ca * ca_c_length, 1e-12)
    collinear = (sine < _MIN_FRAME_SINE) & check_angle
    for bad, problem in (
        (collapsed, "atoms collapsed onto one point"),
        (collinear, f"N, CA and C on one line (|sin N-CA-C| < {_MIN_FRAME_SINE})"),
    ):
        if bad.any():
            frame, residue = (int(i) for i in np.argwhere(bad)[0])
            raise TrajectoryError(
                f"{path}: degenerate frame {frame}, residue {residue_names[residue]}: {problem}, so no "
                f"residue frame (N-CA {n_ca[frame, residue]:.2f} Å, CA-C {ca_c_length[frame, residue]:.2f} Å)"
            )


def _check_first_frame_bonds(
    atom14: np.ndarray,  # (T, L, 14, 3) Å
    xyz: np.ndarray,  # (T, n_kept, 3) Å, the kept atoms in topology order
    layout: _Atom14Layout,
    topology: md.Topology,
    residue_names: list[str],
    path: Path,
    topology_path: Path,
) -> None:
    """Frame 0's bonds must be as long as a real structure's, else the files do not belong together."""
    n, ca, c = (atom14[0, :, slot].astype(np.float64) for slot in range(3))  # (L, 3) each
    lengths = {
        "N-CA": np.linalg.norm(n - ca, axis=-1),  # (L,)
        "CA-C": np.linalg.norm(ca - c, axis=-1),
        "C-N(i+1)": np.linalg.norm(c[:-1] - n[1:], axis=-1),  # (L - 1,)
        "CA-CA(i+1)": np.linalg.norm(ca[:-1] - ca[1:], axis=-1),
    }
    for bond, values in lengths.items():
        low, high = BACKBONE_BOND_LIMITS[bond]
        outside = np.nonzero((values < low) | (values > high))[0]
        if outside.size:
            residue = int(outside[0])
            raise TrajectoryError(
                f"{path}: frame 0, residue {residue_names[residue]}: {bond} bond is {values[residue]:.2f} Å, "
                f"outside {low}-{high} Å; is {topology_path} the topology of this trajectory?"
            )
    position_of = {int(atom): position for position, atom in enumerate(layout.atom_indices)}
    pairs = [
        (position_of[a.index], position_of[b.index])
        for a, b in topology.bonds
        if a.index in position_of and b.index in position_of
    ]
    if not pairs:
        return
    first, second = np.array(pairs).T
    bond_lengths = np.linalg.norm(xyz[0, first].astype(np.float64) - xyz[0, second], axis=-1)
    low, high = BOND_LIMITS
    outside = np.nonzero((bond_lengths < low) | (bond_lengths > high))[0]
    if outside.size:
        index = int(outside[0])
        names = [topology.atom(int(layout.atom_indices[i])).name for i in (first[index], second[index])]
        raise TrajectoryError(
            f"{path}: frame 0, residue {residue_names[layout.residue_slots[first[index]]]}: bond "
            f"{names[0]}-{names[1]} is {bond_lengths[index]:.2f} Å, outside {low}-{high} Å; "
            f"is {topology_path} the topology of this trajectory?"
        )


@dataclass(frozen=True)
class _Atom14Layout:
    aatype: np.ndarray  # (L,) int64
    atom14_mask: np.ndarray  # (L, 14) bool
    atom_indices: np.ndarray  # (n_kept,) topology atom indices of the kept heavy atoms
    residue_slots: np.ndarray  # (n_kept,) residue position of each kept atom
    atom14_slots: np.ndarray  # (n_kept,) atom14 slot of each kept atom


def _load_topology(path: Path) -> md.Topology:
    try:
        return md.load_topology(str(path))
    except Exception as err:
        raise TrajectoryError(f"{path}: cannot read topology ({err})") from err


def _count_trajectory_atoms(path: Path) -> int:
    try:
        suffix = path.suffix.lower()
        if suffix in (".pdb", ".h5"):
            return md.load_topology(str(path)).n_atoms
        with md.open(str(path)) as handle:  # .xtc / .dcd: first frame only
            return handle.read(n_frames=1)[0].shape[1]
    except Exception as err:
        raise TrajectoryError(f"{path}: cannot read trajectory ({err})") from err


def _atom14_layout(topology: md.Topology, path: Path) -> _Atom14Layout:
    aatype, atom_indices, residue_slots, atom14_slots = [], [], [], []
    num_hydrogens = num_oxt = 0
    for position, residue in enumerate(topology.residues):
        resname = _RESNAME_ALIASES.get(residue.name, residue.name)
        if resname not in rc.RESTYPE_3TO1:
            raise TrajectoryError(f"{path}: non-standard residue {residue.name}{residue.resSeq}")
        aatype.append(rc.RESTYPES.index(rc.RESTYPE_3TO1[resname]))
        names = rc.ATOM14_NAMES[resname]
        for atom in residue.atoms:
            if atom.element is not None and atom.element.symbol in ("H", "D"):
                num_hydrogens += 1
                continue
            if atom.name in _DROPPED_ATOMS:
                num_oxt += 1
                continue
            if atom.name not in names:
                raise TrajectoryError(
                    f"{path}: atom {atom.name} does not belong to residue {residue.name}{residue.resSeq} "
                    f"(atom14 layout {[n for n in names if n]})"
                )
            atom_indices.append(atom.index)
            residue_slots.append(position)
            atom14_slots.append(names.index(atom.name))
    if not aatype:
        raise TrajectoryError(f"{path}: topology has no residues")
    if num_hydrogens or num_oxt:
        logger.info("%s: dropped %d hydrogen and %d OXT atoms", path, num_hydrogens, num_oxt)

    mask = np.zeros((len(aatype), 14), dtype=bool)
    mask[residue_slots, atom14_slots] = True
    if len(atom_indices) != int(mask.sum()):
        raise TrajectoryError(f"{path}: an atom name occurs twice in one residue")
    _check_complete_backbone(mask, topology, path)
    return _Atom14Layout(
        aatype=np.array(aatype, dtype=np.int64),
        atom14_mask=mask,
        atom_indices=np.array(atom_indices, dtype=np.int64),
        residue_slots=np.array(residue_slots, dtype=np.int64),
        atom14_slots=np.array(atom14_slots, dtype=np.int64),
    )


def _check_complete_backbone(mask: np.ndarray, topology: md.Topology, path: Path) -> None:
    """Residue frames and psi need N, CA, C and O; a missing one is an error, never zeros."""
    for position, residue in enumerate(topology.residues):
        missing = [name for slot, name in enumerate(rc.BACKBONE_ATOMS) if not mask[position, slot]]
        if missing:
            raise TrajectoryError(
                f"{path}: residue {residue.name}{residue.resSeq} lacks backbone atoms {missing}"
            )


def _rename_prochiral_atoms_to_iupac(atom14: np.ndarray, layout: _Atom14Layout, path: Path) -> None:
    """Swap, in place, Leu CD1/CD2 and Val CG1/CG2 where frame 0 shows the non-IUPAC naming."""
    swapped = []
    for position, a in enumerate(layout.aatype):
        quad = _IUPAC_POSITIVE_IMPROPERS.get(rc.RESNAMES3[a])
        if quad is None:
            continue
        slots = [rc.ATOM14_NAMES[rc.RESNAMES3[a]].index(name) for name in quad]
        if not layout.atom14_mask[position, slots].all():
            continue
        if _has_negative_improper(atom14[0, position, slots]):
            atom14[:, position, [slots[0], slots[3]]] = atom14[:, position, [slots[3], slots[0]]]
            swapped.append(f"{rc.RESNAMES3[a]}{position + 1}")
    if swapped:
        logger.info("%s: renamed prochiral methyls to IUPAC in %s", path, ", ".join(swapped))


def _has_negative_improper(points: np.ndarray) -> bool:
    """points (4, 3): True when the dihedral over them is negative (non-IUPAC prochiral naming)."""
    p1, p2, p3, p4 = points
    return bool(np.dot(p2 - p1, np.cross(p3 - p2, p4 - p3)) < 0)


def rename_prochiral_atoms_to_iupac(traj: md.Trajectory) -> md.Trajectory:
    """Copy of an mdtraj trajectory with Leu CD1/CD2 and Val CG1/CG2 swapped to IUPAC where frame 0
    shows the other naming, so torsions computed from atom names (e.g. Leu chi2) agree with files
    that `write_trajectory` produced from `read_trajectory` (which applies the same rule)."""
    xyz = traj.xyz.copy()  # (T, N, 3) nm
    for residue in traj.topology.residues:
        quad = _IUPAC_POSITIVE_IMPROPERS.get(residue.name)
        atoms = {atom.name: atom.index for atom in residue.atoms}
        if quad is None or not all(name in atoms for name in quad):
            continue
        indices = [atoms[name] for name in quad]
        if _has_negative_improper(xyz[0, indices].astype(np.float64)):
            first, last = indices[0], indices[3]
            xyz[:, [first, last]] = xyz[:, [last, first]]
    return md.Trajectory(
        xyz,
        traj.topology,
        time=traj.time,
        unitcell_lengths=traj.unitcell_lengths,
        unitcell_angles=traj.unitcell_angles,
    )


def _check_complete_residues(layout: _Atom14Layout, topology: md.Topology, path: Path) -> None:
    missing = rc.ATOM14_MASK[layout.aatype] & ~layout.atom14_mask  # (L, 14)
    for position in np.nonzero(missing.any(axis=1))[0]:
        residue = topology.residue(int(position))
        names = [
            rc.ATOM14_NAMES[rc.RESNAMES3[layout.aatype[position]]][slot]
            for slot in np.nonzero(missing[position])[0]
        ]
        raise TrajectoryError(
            f"{path}: residue {residue.name}{residue.resSeq} lacks side-chain atoms {names} "
            "(complete it, e.g. with PDBFixer, or pass allow_missing_sidechain_atoms=True)"
        )


def _timestep_ps(traj: md.Trajectory, path: Path) -> float:
    """Spacing of the stored (already strided) frames from the file's time stamps; nan where the file has
    none (PDB models; DCD, where mdtraj reports frame numbers) or holds a single frame."""
    if path.suffix.lower() in _UNTIMED_SUFFIXES or traj.n_frames < 2:
        return float("nan")
    return timestep_from_stamps(traj.time, path)


def write_trajectory(
    stem: str | os.PathLike,
    atom14,
    aatype,
    *,
    timestep_ps: float,
    atom14_mask=None,
) -> tuple[Path, Path]:
    """Write `stem.pdb` (first frame, chain A, residues from 1) and `stem.xtc` (all frames).

    atom14 (T, L, 14, 3) Å and aatype (L,) (numpy or torch); atom14_mask (L, 14) selects written
    atoms (default: every atom of the residue type). XTC time of frame i is i * timestep_ps. Each
    file appears atomically (`mdgen.files.atomic_path`).
    """
    stem = Path(stem)
    atom14, aatype = _as_numpy(atom14).astype(np.float32), _as_numpy(aatype).astype(np.int64)
    if atom14.ndim != 4 or atom14.shape[2:] != (14, 3) or aatype.shape != atom14.shape[1:2]:
        raise TrajectoryError(
            f"{stem}: expected atom14 (T, L, 14, 3) and aatype (L,), got {atom14.shape}, {aatype.shape}"
        )
    if ((aatype < 0) | (aatype >= rc.UNKNOWN_AATYPE)).any():
        raise TrajectoryError(
            f"{stem}: cannot write unknown residue types (aatype outside 0..19): {aatype.tolist()}"
        )
    type_mask = rc.ATOM14_MASK[aatype]  # (L, 14)
    mask = type_mask if atom14_mask is None else _as_numpy(atom14_mask).astype(bool)
    if mask.shape != type_mask.shape or (mask & ~type_mask).any():
        raise TrajectoryError(
            f"{stem}: atom14_mask {mask.shape} sets atoms that the residue types do not have"
        )
    if not np.isfinite(atom14[:, mask]).all():
        raise TrajectoryError(f"{stem}: non-finite (NaN/inf) coordinates")
    if not timestep_ps > 0:
        raise TrajectoryError(f"{stem}: timestep_ps must be > 0, got {timestep_ps}")

    residue_slots, atom14_slots = np.nonzero(mask)  # row-major: residue order, then atom14 order
    traj = md.Trajectory(
        xyz=atom14[:, residue_slots, atom14_slots] * _NM_PER_ANGSTROM,
        topology=_topology_for(aatype, mask),
        time=np.arange(atom14.shape[0], dtype=np.float64) * timestep_ps,
    )
    pdb_path, xtc_path = Path(f"{stem}.pdb"), Path(f"{stem}.xtc")
    with atomic_path(pdb_path) as temporary:
        traj[0].save_pdb(str(temporary), force_overwrite=True)
    with atomic_path(xtc_path) as temporary:
        traj.save_xtc(str(temporary), force_overwrite=True)
    return pdb_path, xtc_path


def _topology_for(aatype: np.ndarray, mask: np.ndarray) -> md.Topology:
    topology = md.Topology()
    chain = topology.add_chain(chain_id="A")
    for position, a in enumerate(aatype):
        resname = rc.RESNAMES3[a]
        residue = topology.add_residue(resname, chain, resSeq=position + 1)
        for slot, name in enumerate(rc.ATOM14_NAMES[resname]):
            if mask[position, slot]:
                topology.add_atom(name, md.element.get_by_symbol(name[0]), residue)
    topology.create_standard_bonds()
    return topology


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)
