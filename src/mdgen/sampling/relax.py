"""Optional restrained energy minimisation of decoded frames (`relax=true` of `python -m mdgen.sample`).

Each frame is minimised on its own in the force field of `mdgen.simulate` (amber14-all + OBC2 implicit
solvent, native GBSAOBCForce, no cutoff), with every heavy atom held by a harmonic restraint to its
decoded position:
  1. the C-terminal OXT is placed (trans to O, in the carboxylate plane); hydrogens are added at pH 7
     by OpenMM's Modeller for the first frame of a sequence (one System then serves every frame of that
     sequence) and carried to later frames in the local frame of their heavy atoms (addHydrogens per
     frame would cost 4x the minimisation; the minimiser relaxes them anyway);
  2. at most `max_iterations` L-BFGS iterations (OpenMM's LocalEnergyMinimizer);
  3. hydrogens and OXT are dropped again; the frame keeps its atom14 layout.
Restraints keep the frame what the model generated (an MD frame moves by about 0.1 Å), while covalent
and van der Waals terms remove clashes and stretched bonds. Every frame is relaxed and kept: none is
dropped, replaced or resampled. A frame whose minimisation fails (non-finite energy) is kept as decoded
and counted in `RelaxUsage.failed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import openmm
import openmm.app as app
from openmm import unit

from mdgen import constants as rc
from mdgen.md.peptide_builder import place_atom, seeded_python_random
from mdgen.md.simulation import SOLVENT_PRESETS, replace_custom_obc2_with_native

_NM_PER_A = 0.1
_PH = 7.0
_HYDROGEN_SEED = (
    1  # addHydrogens jitters new atoms with `random`: seeded, a frame always relaxes the same way
)
_C_OXT_A, _CA_C_OXT_DEG = 1.25, 117.0  # carboxylate geometry (amber14 C-O2 bond, CA-C-O2 angle)
_N, _CA, _C, _O = 0, 1, 2, 3  # atom14 slots


@dataclass(frozen=True)
class RelaxSettings:
    """How hard heavy atoms are held and how long the minimiser may run (per frame)."""

    restraint_kj_per_mol_A2: float = 10.0  # harmonic k of each heavy atom (0.5 k d²); 10 ≈ 2.4 kcal/mol/Å²
    max_iterations: int = 200  # L-BFGS iterations per frame (the cost bound)
    tolerance_kj_per_mol_nm: float = 10.0  # stop earlier when the largest force is below this
    solvent: str = "implicit_obc2"  # a preset of mdgen.md.simulation (mdgen.simulate's default)
    platform: str = "CPU"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.restraint_kj_per_mol_A2 <= 0 or self.max_iterations < 1:
            raise ValueError(f"relax needs restraint_kj_per_mol_A2 > 0 and max_iterations >= 1, got {self}")
        if self.solvent not in SOLVENT_PRESETS or SOLVENT_PRESETS[self.solvent].explicit_water:
            raise ValueError(f"relax solvent={self.solvent!r} must be an implicit preset of mdgen.simulate")


@dataclass(frozen=True)
class RelaxUsage:
    """Running totals: frames relaxed, their wall time, and how far atoms moved."""

    frames: int = 0
    wall_s: float = 0.0
    failed: int = 0  # minimisations that gave non-finite coordinates (frame kept as decoded)
    sum_rmsd_A: float = 0.0  # heavy-atom RMSD relaxed vs decoded, summed over frames

    def __add__(self, other: RelaxUsage) -> RelaxUsage:
        return RelaxUsage(
            self.frames + other.frames,
            self.wall_s + other.wall_s,
            self.failed + other.failed,
            self.sum_rmsd_A + other.sum_rmsd_A,
        )

    def summary(self) -> dict[str, float | int | None]:
        """The record written to sampling_summary.json."""
        return {
            "frames": self.frames,
            "wall_s": self.wall_s,
            "s_per_frame": self.wall_s / self.frames if self.frames else None,
            "mean_heavy_atom_rmsd_A": self.sum_rmsd_A / self.frames if self.frames else None,
            "failed": self.failed,
        }


def _heavy_topology(aatype: np.ndarray) -> tuple[app.Topology, list[tuple[int, int]]]:
    """OpenMM topology of the heavy atoms of `aatype` (L,) plus OXT, and each atom's (residue, atom14 slot)
    (slot -1 = OXT)."""
    topology = app.Topology()
    chain = topology.addChain("A")
    slots = []
    residues = []
    for position, a in enumerate(aatype):
        resname = rc.RESNAMES3[int(a)]
        residue = topology.addResidue(resname, chain, id=str(position + 1))
        residues.append(residue)
        for slot, name in enumerate(rc.ATOM14_NAMES[resname]):
            if name:
                topology.addAtom(name, app.Element.getBySymbol(name[0]), residue)
                slots.append((position, slot))
    topology.addAtom("OXT", app.Element.getBySymbol("O"), residues[-1])
    slots.append((len(aatype) - 1, -1))
    topology.createStandardBonds()
    return topology, slots


def _oxt_position(last_residue: np.ndarray) -> np.ndarray:
    """(3,) Å: OXT in the plane of CA, C, O, on the other side of the CA-C axis than O."""
    n, ca, c, o = (last_residue[i].astype(np.float64) for i in (_N, _CA, _C, _O))
    o_dihedral = np.degrees(_dihedral(n, ca, c, o))
    return place_atom(n, ca, c, _C_OXT_A, _CA_C_OXT_DEG, o_dihedral + 180.0)


def _dihedral(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / np.linalg.norm(b1)
    v, w = b0 - b0.dot(b1) * b1, b2 - b2.dot(b1) * b1
    return float(np.arctan2(np.cross(b1, v).dot(w), v.dot(w)))


class _SequenceSystem:
    """One sequence's all-atom System with restraints, its Context, and the heavy-atom bookkeeping."""

    def __init__(self, aatype: np.ndarray, first_frame: np.ndarray, settings: RelaxSettings):
        self.aatype = aatype
        self.settings = settings
        self.forcefield = app.ForceField(*SOLVENT_PRESETS[settings.solvent].forcefield_files)
        self.heavy_topology, self.slots = _heavy_topology(aatype)
        modeller = self._with_hydrogens(first_frame)
        self.topology = modeller.topology
        is_hydrogen = np.array([a.element.symbol == "H" for a in self.topology.atoms()])
        self.heavy = np.nonzero(~is_hydrogen)[0]
        if len(self.heavy) != len(self.slots):
            raise RuntimeError(
                f"relax: {len(self.heavy)} heavy atoms after addHydrogens, expected {len(self.slots)}"
            )
        self.hydrogens = _HydrogenPlacement(
            self.topology, np.array(modeller.positions.value_in_unit(unit.nanometer))
        )

        system = self.forcefield.createSystem(self.topology, nonbondedMethod=app.NoCutoff, constraints=None)
        if SOLVENT_PRESETS[settings.solvent].native_obc2:
            replace_custom_obc2_with_native(system)
        restraint = openmm.CustomExternalForce("0.5*k*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
        restraint.addGlobalParameter("k", settings.restraint_kj_per_mol_A2 * 100.0)  # kJ/mol/nm²
        for name in ("x0", "y0", "z0"):
            restraint.addPerParticleParameter(name)
        for index in self.heavy:
            restraint.addParticle(int(index), [0.0, 0.0, 0.0])
        system.addForce(restraint)
        self.restraint = restraint
        platform = openmm.Platform.getPlatformByName(settings.platform)
        properties = {"Threads": str(settings.threads)} if settings.platform == "CPU" else {}
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform, properties)

    def _heavy_positions_A(self, atom14: np.ndarray) -> np.ndarray:
        """(N_heavy, 3) Å in topology order (OXT placed) from atom14 (L, 14, 3) Å."""
        rows = [atom14[r, s] if s >= 0 else _oxt_position(atom14[-1]) for r, s in self.slots]
        return np.asarray(rows, dtype=np.float64)

    def _with_hydrogens(self, atom14: np.ndarray) -> app.Modeller:
        """Heavy atoms of atom14 plus hydrogens at pH 7 (OpenMM picks protonation variants)."""
        positions = self._heavy_positions_A(atom14) * _NM_PER_A
        modeller = app.Modeller(self.heavy_topology, [openmm.Vec3(*p) for p in positions] * unit.nanometer)
        with seeded_python_random(_HYDROGEN_SEED):
            modeller.addHydrogens(self.forcefield, pH=_PH)
        return modeller

    def relax(self, atom14: np.ndarray) -> np.ndarray | None:
        """atom14 (L, 14, 3) Å -> relaxed atom14 (same layout; None when minimisation failed)."""
        positions = np.zeros((self.topology.getNumAtoms(), 3))
        positions[self.heavy] = self._heavy_positions_A(atom14) * _NM_PER_A
        positions = self.hydrogens.place(positions)
        for particle, index in enumerate(self.heavy):
            self.restraint.setParticleParameters(particle, int(index), positions[index].tolist())
        self.restraint.updateParametersInContext(self.context)
        self.context.setPositions(positions)
        openmm.LocalEnergyMinimizer.minimize(
            self.context, self.settings.tolerance_kj_per_mol_nm, self.settings.max_iterations
        )
        relaxed = (
            self.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        )
        heavy = np.asarray(relaxed)[self.heavy] / _NM_PER_A  # (N_heavy, 3) Å
        if not np.isfinite(heavy).all():
            return None
        out = atom14.copy()
        for (residue, slot), xyz in zip(self.slots, heavy):
            if slot >= 0:
                out[residue, slot] = xyz
        return out


class _HydrogenPlacement:
    """Puts each hydrogen where it sat in a reference structure, relative to the local frame of its heavy
    atom P: origin P, x toward P's heavy neighbour A, y toward a third atom B (A's other neighbour when P
    has one heavy neighbour), so rotamers of NH3+, OH and CH3 groups follow their heavy atoms."""

    def __init__(self, topology: app.Topology, reference_nm: np.ndarray):
        neighbours: dict[int, list[int]] = {atom.index: [] for atom in topology.atoms()}
        for a, b in topology.bonds():
            neighbours[a.index].append(b.index)
            neighbours[b.index].append(a.index)
        is_hydrogen = {atom.index: atom.element.symbol == "H" for atom in topology.atoms()}
        heavy_neighbours = {i: [j for j in n if not is_hydrogen[j]] for i, n in neighbours.items()}
        rows = []
        for atom in topology.atoms():
            if not is_hydrogen[atom.index]:
                continue
            (parent,) = heavy_neighbours[atom.index]
            first = heavy_neighbours[parent][0]
            others = [j for j in heavy_neighbours[parent] if j != first]
            if not others:
                others = [j for j in heavy_neighbours[first] if j != parent]
            rows.append((atom.index, parent, first, others[0]))
        self.index, self.parent, self.first, self.second = np.array(rows, dtype=np.int64).T
        self.local = np.einsum(
            "nij,ni->nj", self._frames(reference_nm), reference_nm[self.index] - reference_nm[self.parent]
        )

    def _frames(self, positions: np.ndarray) -> np.ndarray:
        """(n_H, 3, 3) rotations (columns = axes) of each hydrogen's local frame."""
        x = positions[self.first] - positions[self.parent]
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        y = positions[self.second] - positions[self.parent]
        y -= (y * x).sum(-1, keepdims=True) * x
        y /= np.linalg.norm(y, axis=-1, keepdims=True) + 1e-12
        return np.stack([x, y, np.cross(x, y)], axis=-1)

    def place(self, positions: np.ndarray) -> np.ndarray:
        """positions (N, 3) nm with heavy atoms set -> a copy with every hydrogen placed."""
        out = positions.copy()
        out[self.index] = positions[self.parent] + np.einsum(
            "nij,nj->ni", self._frames(positions), self.local
        )
        return out


class FrameRelaxer:
    """Restrained minimisation of atom14 frames; one cached System per sequence.

    Args:
        settings: restraint strength, iteration bound, force field preset, OpenMM platform.
    """

    def __init__(self, settings: RelaxSettings | None = None):
        self.settings = settings or RelaxSettings()
        self.usage = RelaxUsage()
        self._systems: dict[tuple[int, ...], _SequenceSystem] = {}

    def relax(self, atom14: np.ndarray, aatype: np.ndarray) -> np.ndarray:
        """atom14 (..., L, 14, 3) Å, aatype (L,) of every frame -> relaxed copy (same shape, float32)."""
        aatype = np.asarray(aatype, dtype=np.int64)
        frames = np.asarray(atom14, dtype=np.float64).reshape(-1, *atom14.shape[-3:])
        mask = rc.ATOM14_MASK[aatype]  # (L, 14)
        out = frames.copy()
        for i, frame in enumerate(frames):
            start = time.perf_counter()
            system = self._system(aatype, frame)
            relaxed = system.relax(frame)
            failed = relaxed is None
            if not failed:
                out[i] = relaxed
            rmsd = float(np.sqrt(((out[i] - frame)[mask] ** 2).sum(-1).mean()))
            self.usage = self.usage + RelaxUsage(1, time.perf_counter() - start, int(failed), rmsd)
        return out.reshape(atom14.shape).astype(np.float32)

    def _system(self, aatype: np.ndarray, frame: np.ndarray) -> _SequenceSystem:
        key = tuple(int(a) for a in aatype)
        if key not in self._systems:
            if (aatype < 0).any() or (aatype >= rc.UNKNOWN_AATYPE).any():
                raise ValueError(f"relax needs the 20 standard residues, got aatype {aatype.tolist()}")
            self._systems[key] = _SequenceSystem(aatype, frame, self.settings)
        return self._systems[key]
