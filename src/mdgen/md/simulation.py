"""Run MD of short peptides with OpenMM and write them in the published tetrapeptide layout.

Per peptide ``NAME`` (the sequence) the finished output is::

    OUT/NAME/NAME.pdb        heavy atoms (incl. OXT) of production frame 0
    OUT/NAME/NAME.xtc        production, heavy atoms, one frame every save_interval_ps, t = 0, 10, ... ps
    OUT/NAME/NAME_fine.xtc   first fine_length_ps of the same run every fine_interval_fs (when enabled)
    OUT/NAME/info.json       the protocol record (``PeptideSimulationRecord``)

Frames are superposed on production frame 0 (all heavy atoms), as the published data is.
Work happens in ``OUT/NAME.tmp/``, renamed to ``OUT/NAME/`` only when complete, so a directory
without the ``.tmp`` suffix is always finished. An interrupted run resumes from the last OpenMM
checkpoint in ``NAME.tmp/`` with its XTC files cut back to the checkpoint's frame counts.

Several runs on one OUT are safe: a process works on a peptide only while it holds the exclusive
``flock`` of ``NAME.tmp/.simulate.lock``. The kernel releases it when the holder dies, however it
died, so the lock of a killed run is taken over without any stale-lock guessing; a live holder makes
the peptide "busy" (one line, nothing touched). Workers of ``n_jobs > 1`` die with the parent
(``mdgen.data.workers``). A finished peptide is checked before it is skipped (``verify_finished``:
frame counts against info.json, evenly increasing time, atoms against the PDB); a corrupt one is
reported, never deleted, and one made with other settings (length, temperature, seed, ...) is refused
rather than passed off as the requested run.
"""

from __future__ import annotations

import fcntl
import json
import math
import multiprocessing
import os
import queue
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mdtraj
import numpy as np
import openmm
import openmm.app as app
from mdtraj.formats import XTCTrajectoryFile
from openmm import unit

from mdgen.data.workers import die_with_parent
from mdgen.errors import UserError
from mdgen.md.peptide_builder import build_peptide, check_sequence

INFO_FILE = "info.json"
RESUME_FILE = "resume.npz"
SYSTEM_FILE = "system.xml"
START_FILE = "start_all_atoms.pdb"
LOCK_FILE = ".simulate.lock"  # in NAME.tmp/; flock-ed by the process working on the peptide
WORK_SUFFIX = ".tmp"
_TIME_TOLERANCE = 1e-2  # relative, on the spacing of XTC time stamps (stored as float32)


class SimulationSetupError(UserError):
    """The requested simulation cannot be run as asked (options, sequences, out_dir); names the problem."""


class PeptideBusyError(UserError):
    """Another live process holds a peptide's lock: it is being simulated right now."""


class CorruptOutputError(UserError):
    """A peptide marked finished (info.json) whose files disagree with it; it is reported, not deleted."""


class StaleOutputError(UserError):
    """A finished peptide simulated with other settings than requested: kept, never passed off as new."""


@dataclass(frozen=True)
class SolventModel:
    """A force-field + solvent preset."""

    name: str
    forcefield_files: tuple[str, ...]
    description: str
    explicit_water: bool = False
    padding_nm: float = 1.0  # explicit only: water around the peptide
    cutoff_nm: float = 1.0  # explicit only: PME real-space cutoff
    pressure_bar: float = 1.0  # explicit only: barostat added after equilibration (NPT production)
    # OpenMM's amber14 implicit/obc2.xml builds a CustomGBForce; the same model as a native
    # GBSAOBCForce is about 4x faster on the CPU platform, so the OBC2 preset swaps it in (same energies).
    native_obc2: bool = False


SOLVENT_PRESETS: dict[str, SolventModel] = {
    # The published implicit-solvent tetrapeptide set.
    "implicit": SolventModel(
        "implicit", ("amber14-all.xml", "implicit/gbn2.xml"), "GBn2 implicit (GBSAGBn2)"
    ),
    # ../shared/data's protocol: native GBSAOBCForce, about 4x faster than GBn2 on CPU.
    "implicit_obc2": SolventModel(
        "implicit_obc2",
        ("amber14-all.xml", "implicit/obc2.xml"),
        "OBC2 implicit (GBSAOBCForce)",
        native_obc2=True,
    ),
    # The published explicit-solvent set.
    "explicit": SolventModel(
        "explicit",
        ("amber14-all.xml", "amber14/tip3pfb.xml"),
        "TIP3P-FB explicit water, PME",
        explicit_water=True,
    ),
}

PLATFORM_AUTO = "auto"


@dataclass(frozen=True)
class SimulationProtocol:
    """Everything that decides a trajectory except its seed. All times carry their unit in the name."""

    solvent: str = "implicit_obc2"
    production_ns: float = 1.0
    temperature_K: float = 350.0
    friction_per_ps: float = 0.3
    timestep_fs: float = 2.0
    constraints: str = "HBonds"
    hydrogen_mass_amu: float | None = None  # None = standard masses; 1.5 (HMR) allows 4 fs steps
    minimization_max_iterations: int = 1000
    equilibration_ps: float = 20.0  # NVT after minimisation, before production
    save_interval_ps: float = 10.0
    fine_interval_fs: float = 100.0
    fine_length_ps: float = 0.0  # 0 = no NAME_fine.xtc
    checkpoint_interval_ps: float = 100.0
    platform: str = PLATFORM_AUTO  # auto | Reference | CPU | CUDA | OpenCL
    threads: int = 1  # CPU platform threads per peptide
    note: str = ""  # free text copied into info.json (e.g. why HMR was chosen)

    def __post_init__(self):
        # YAML and the command line give ints for "4" or "2"; info.json should say 4.0 fs like the shared data.
        for name, declared in self.__annotations__.items():
            value = getattr(self, name)
            if declared.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        if self.solvent not in SOLVENT_PRESETS:
            raise SimulationSetupError(
                f"unknown solvent preset {self.solvent!r}; choose one of {sorted(SOLVENT_PRESETS)}"
            )
        if self.constraints not in ("HBonds", "AllBonds", "HAngles", "None"):
            raise SimulationSetupError(f"constraints={self.constraints!r} is not an OpenMM constraint type")
        if self.production_ns <= 0 or self.timestep_fs <= 0:
            raise SimulationSetupError(
                f"production_ns={self.production_ns} and timestep_fs={self.timestep_fs} must be > 0"
            )
        for label, interval_fs in self._intervals_fs().items():
            self.steps_in(interval_fs, label)  # raises when not a whole number of steps
        self.frames_in(self.production_ns * 1000.0, self.save_interval_ps, "production_ns")
        if self.fine_length_ps > 0:
            self.frames_in(self.fine_length_ps, self.fine_interval_fs / 1000.0, "fine_length_ps")

    def _intervals_fs(self) -> dict[str, float]:
        intervals = {
            "save_interval_ps": self.save_interval_ps * 1000.0,
            "checkpoint_interval_ps": self.checkpoint_interval_ps * 1000.0,
            "equilibration_ps": self.equilibration_ps * 1000.0,
        }
        if self.fine_length_ps > 0:
            intervals["fine_interval_fs"] = self.fine_interval_fs
        return intervals

    def steps_in(self, duration_fs: float, label: str = "duration") -> int:
        steps = duration_fs / self.timestep_fs
        if abs(steps - round(steps)) > 1e-6:
            raise SimulationSetupError(
                f"{label} = {duration_fs} fs is not a whole number of {self.timestep_fs} fs steps"
            )
        return round(steps)

    @staticmethod
    def frames_in(length_ps: float, interval_ps: float, label: str) -> int:
        frames = length_ps / interval_ps
        if abs(frames - round(frames)) > 1e-6 or round(frames) < 1:
            raise SimulationSetupError(
                f"{label}: {length_ps} ps is not a positive whole number of {interval_ps} ps frames"
            )
        return round(frames)

    @property
    def num_frames(self) -> int:
        """Production frames, at t = 0, save_interval_ps, ..., (num_frames - 1) * save_interval_ps."""
        return self.frames_in(self.production_ns * 1000.0, self.save_interval_ps, "production_ns")

    @property
    def num_fine_frames(self) -> int:
        if self.fine_length_ps <= 0:
            return 0
        return self.frames_in(self.fine_length_ps, self.fine_interval_fs / 1000.0, "fine_length_ps")

    @property
    def last_frame_ps(self) -> float:
        """Production time of the last frame written: the run stops there (no steps after it)."""
        last_coarse_ps = (self.num_frames - 1) * self.save_interval_ps
        last_fine_ps = (self.num_fine_frames - 1) * self.fine_interval_fs / 1000.0
        return max(last_coarse_ps, last_fine_ps)


@dataclass(frozen=True)
class PeptideSimulationRecord:
    """What ``info.json`` holds: the keys of ../shared/data/tetrapeptides/*/info.json plus more."""

    sequence: str
    forcefield: str
    solvent: str
    temperature_K: float
    friction_per_ps: float
    timestep_fs: float
    constraints: str
    equilibration_ps: float
    production_ns: float
    coarse_interval_ps: float
    fine_interval_fs: float
    fine_length_ps: float
    termini: str
    platform: str
    seed: int
    wall_s: float
    openmm: str
    # Beyond the shared-data keys:
    solvent_preset: str
    forcefield_files: list[str]
    hydrogen_mass_amu: float | None
    minimization_max_iterations: int
    pressure_bar: float | None
    threads: int
    num_frames: int
    num_fine_frames: int
    first_frame_time_ps: float
    num_heavy_atoms: int
    superposed_on: str
    production_ns_per_day: float
    resumed_times: int
    note: str
    files: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")


def peptide_seed(base_seed: int, name: str) -> int:
    """Seed of one peptide: base_seed + CRC32(name), so it does not depend on the order of the list.

    Kept in [1, 2**31 - 1] because OpenMM reads seed 0 as "pick a random seed".
    """
    return 1 + (base_seed + zlib.crc32(name.encode())) % (2**31 - 2)


def is_finished(out_dir: Path, name: str) -> bool:
    return (Path(out_dir) / name / INFO_FILE).is_file()


def corrupt_finished_output(directory: Path, name: str, problem: str) -> CorruptOutputError:
    """The error for a finished output directory whose files disagree with its info.json."""
    return CorruptOutputError(
        f"{directory} is marked finished ({INFO_FILE}) but {problem}; it was left untouched: move it "
        f"away to simulate {name} again"
    )


def verified_pdb_atoms(directory: Path, name: str, num_heavy_atoms: int) -> int:
    """Atoms of a finished DIRECTORY/NAME.pdb, which must be `num_heavy_atoms` (CorruptOutputError if not)."""
    try:
        atoms = mdtraj.load_topology(str(directory / f"{name}.pdb")).n_atoms
    except Exception as error:  # mdtraj raises many types for missing or corrupt files
        raise corrupt_finished_output(directory, name, f"{name}.pdb cannot be read ({error})") from error
    if atoms != num_heavy_atoms:
        raise corrupt_finished_output(
            directory, name, f"{name}.pdb has {atoms} atoms, {INFO_FILE} says {num_heavy_atoms}"
        )
    return atoms


def verify_finished(out_dir: str | Path, name: str) -> PeptideSimulationRecord:
    """The record of a finished peptide, after checking its files against it.

    info.json must be a simulate record of NAME; NAME.pdb must hold ``num_heavy_atoms`` atoms; NAME.xtc
    (and NAME_fine.xtc when recorded) ``num_frames`` (``num_fine_frames``) frames of as many atoms, time
    stamps rising from ``first_frame_time_ps`` by the recorded interval. Raises CorruptOutputError
    naming the first disagreement; nothing is changed or deleted.
    """
    directory = Path(out_dir) / name

    def corrupt(problem: str) -> CorruptOutputError:
        return corrupt_finished_output(directory, name, problem)

    try:
        record = PeptideSimulationRecord(**json.loads((directory / INFO_FILE).read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
        raise corrupt(f"its {INFO_FILE} is not a simulate record ({error})") from error
    if record.sequence != name:
        raise corrupt(f"its {INFO_FILE} describes {record.sequence!r}")
    pdb_atoms = verified_pdb_atoms(directory, name, record.num_heavy_atoms)
    trajectories = [(f"{name}.xtc", record.num_frames, record.coarse_interval_ps)]
    if record.num_fine_frames:
        trajectories.append((f"{name}_fine.xtc", record.num_fine_frames, record.fine_interval_fs / 1000.0))
    for file_name, num_frames, interval_ps in trajectories:
        problem = _trajectory_problem(
            directory / file_name, num_frames, interval_ps, record.first_frame_time_ps, pdb_atoms
        )
        if problem:
            raise corrupt(f"{file_name} {problem}")
    return record


def protocol_differences(record: PeptideSimulationRecord, protocol: SimulationProtocol, seed: int) -> str:
    """What a finished peptide's info.json says about how it was made, where this request differs
    ("" when it matches); the platform, threads and checkpoint interval do not count."""
    recorded = {
        "protocol": record.solvent_preset,
        "temperature_K": record.temperature_K,
        "friction_per_ps": record.friction_per_ps,
        "timestep_fs": record.timestep_fs,
        "constraints": record.constraints,
        "hydrogen_mass_amu": record.hydrogen_mass_amu,
        "minimization_max_iterations": record.minimization_max_iterations,
        "equilibration_ps": record.equilibration_ps,
        "length_ns": record.production_ns,
        "save_interval_ps": record.coarse_interval_ps,
        "fine_length_ps": record.fine_length_ps,
        "seed": record.seed,
    }
    requested = {
        "protocol": protocol.solvent,
        "temperature_K": protocol.temperature_K,
        "friction_per_ps": protocol.friction_per_ps,
        "timestep_fs": protocol.timestep_fs,
        "constraints": protocol.constraints,
        "hydrogen_mass_amu": protocol.hydrogen_mass_amu,
        "minimization_max_iterations": protocol.minimization_max_iterations,
        "equilibration_ps": protocol.equilibration_ps,
        "length_ns": protocol.production_ns,
        "save_interval_ps": protocol.save_interval_ps,
        "fine_length_ps": protocol.fine_length_ps,
        "seed": seed,
    }
    if protocol.fine_length_ps > 0:
        recorded["fine_interval_fs"], requested["fine_interval_fs"] = (
            record.fine_interval_fs,
            protocol.fine_interval_fs,
        )

    def same(a, b) -> bool:
        if isinstance(a, float) or isinstance(b, float):  # YAML may give 2 for 2.0; seeds stay exact
            return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
        return a == b

    return ", ".join(
        f"{key}={recorded[key]!r} (requested {requested[key]!r})"
        for key in recorded
        if not same(recorded[key], requested[key])
    )


def _check_same_protocol(
    out_dir: Path, name: str, record: PeptideSimulationRecord, protocol: SimulationProtocol, seed: int
) -> None:
    differences = protocol_differences(record, protocol, seed)
    if differences:
        raise StaleOutputError(
            f"{Path(out_dir) / name} is finished but was simulated with {differences}; it is kept as it is: "
            "move it away or choose another out_dir to simulate it with these settings"
        )


def _trajectory_problem(
    path: Path, num_frames: int, interval_ps: float, first_ps: float, num_atoms: int
) -> str | None:
    """Why an XTC file is not the finished trajectory info.json describes, or None."""
    try:
        with XTCTrajectoryFile(str(path), "r") as handle:
            xyz, time_ps, _, _ = handle.read()  # (T, N, 3) nm, (T,) ps
    except Exception as error:  # mdtraj raises many types for missing or corrupt files
        return f"cannot be read ({error})"
    if len(time_ps) != num_frames:
        return f"holds {len(time_ps)} frames, {INFO_FILE} says {num_frames}"
    if xyz.shape[1] != num_atoms:
        return f"has {xyz.shape[1]} atoms per frame, the PDB {num_atoms}"
    time_ps = time_ps.astype(np.float64)
    backwards = np.nonzero(np.diff(time_ps) <= 0)[0]
    if backwards.size:
        k = int(backwards[0])
        return f"time does not increase at frame {k + 1} ({time_ps[k]:g} ps, then {time_ps[k + 1]:g} ps)"
    expected = first_ps + interval_ps * np.arange(num_frames)
    tolerance = _TIME_TOLERANCE * interval_ps + 1e-6 * np.abs(expected).max()  # float32 stamps
    off = np.nonzero(np.abs(time_ps - expected) > tolerance)[0]
    if off.size:
        k = int(off[0])
        return f"frame {k} is at {time_ps[k]:g} ps, expected {expected[k]:g} ps ({interval_ps:g} ps apart)"
    return None


@contextmanager
def peptide_lock(work_dir: Path) -> Iterator[None]:
    """Hold the peptide's lock, ``flock`` of work_dir/.simulate.lock (created, with work_dir, if needed).

    Raises PeptideBusyError when a live process holds it. The kernel drops a lock when its process dies,
    so a lock left by a killed run is simply taken. The lock file travels with NAME.tmp when a finished
    peptide is renamed to NAME; a process that opened it just before checks after locking that the file
    is still the one at work_dir, and otherwise starts over (and then finds the peptide finished).
    """
    lock_path = work_dir / LOCK_FILE
    while True:
        work_dir.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # work_dir was renamed away between mkdir and open
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(descriptor)
            raise PeptideBusyError(
                f"{work_dir.name.removesuffix(WORK_SUFFIX)} is being simulated by {holder} (lock {lock_path} "
                "is held); wait for that run or stop it"
            ) from None
        try:
            still_there = os.path.samestat(os.fstat(descriptor), os.stat(lock_path))
        except FileNotFoundError:
            still_there = False
        if still_there:
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def lock_is_held(work_dir: Path) -> bool:
    """True while a live process holds the peptide's lock (probes it without creating anything)."""
    try:
        descriptor = os.open(work_dir / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def select_platform(requested: str) -> openmm.Platform:
    """The named OpenMM platform, or for 'auto' the one OpenMM rates fastest (CUDA > OpenCL > CPU > Reference)."""
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if requested == PLATFORM_AUTO:
        return max(
            (openmm.Platform.getPlatformByName(name) for name in names),
            key=lambda platform: platform.getSpeed(),
        )
    if requested not in names:
        raise SimulationSetupError(f"OpenMM platform {requested!r} is not available here; available: {names}")
    return openmm.Platform.getPlatformByName(requested)


def platform_properties(platform: openmm.Platform, threads: int) -> dict[str, str]:
    if platform.getName() == "CPU":
        return {"Threads": str(threads)}
    if platform.getName() in ("CUDA", "OpenCL"):
        return {"Precision": "mixed"}
    return {}


# ---------------------------------------------------------------------------------------------------
# System set-up


def create_system(
    protocol: SimulationProtocol, sequence: str, structure_pdb: Path | None = None
) -> tuple[app.Topology, unit.Quantity, openmm.System]:
    """Build the peptide (solvated for explicit presets) and its OpenMM system, without a barostat.

    With ``structure_pdb`` (a prepared all-atom PDB with hydrogens, e.g. from ``simulate_proteins``)
    that structure is simulated instead and ``sequence`` is only a name.
    """
    solvent = SOLVENT_PRESETS[protocol.solvent]
    forcefield = app.ForceField(*solvent.forcefield_files)
    if structure_pdb is None:
        peptide = build_peptide(sequence, forcefield)
        topology, positions = peptide.topology, peptide.positions
    else:
        structure = app.PDBFile(str(structure_pdb))
        topology, positions = structure.topology, structure.positions
    modeller = app.Modeller(topology, positions)
    options = {
        "constraints": getattr(app, protocol.constraints) if protocol.constraints != "None" else None,
        "rigidWater": True,
    }
    if protocol.hydrogen_mass_amu is not None:
        options["hydrogenMass"] = protocol.hydrogen_mass_amu * unit.amu
    if solvent.explicit_water:
        modeller.addSolvent(forcefield, model="tip3p", padding=solvent.padding_nm * unit.nanometer)
        options |= {"nonbondedMethod": app.PME, "nonbondedCutoff": solvent.cutoff_nm * unit.nanometer}
    else:
        options["nonbondedMethod"] = app.NoCutoff
    system = forcefield.createSystem(modeller.topology, **options)
    if solvent.native_obc2:
        replace_custom_obc2_with_native(system)
    return modeller.topology, modeller.positions, system


# Offset between the atomic radius and the "or" parameter of OpenMM's OBC2 CustomGBForce, nm.
OBC2_RADIUS_OFFSET_NM = 0.009


def replace_custom_obc2_with_native(system: openmm.System) -> None:
    """Swap the CustomGBForce made by implicit/obc2.xml for the equivalent native GBSAOBCForce.

    The custom force stores per atom (charge, or = radius - 0.009 nm, sr = scale * or); the native
    force takes (charge, radius nm, scale) and implements the same OBC2 (alpha 1, beta 0.8, gamma 4.85)
    Born radii, dielectrics 1 / 78.5 and ACE surface term (2.25936 kJ/mol/nm^2).
    """
    custom = [i for i, force in enumerate(system.getForces()) if isinstance(force, openmm.CustomGBForce)]
    if len(custom) != 1:
        raise RuntimeError(f"expected one CustomGBForce from implicit/obc2.xml, found {len(custom)}")
    custom_force = system.getForce(custom[0])
    names = [
        custom_force.getPerParticleParameterName(i) for i in range(custom_force.getNumPerParticleParameters())
    ]
    if names != ["charge", "or", "sr"]:
        raise RuntimeError(f"implicit/obc2.xml CustomGBForce has parameters {names}, expected charge/or/sr")
    native = openmm.GBSAOBCForce()
    native.setSolventDielectric(78.5)
    native.setSoluteDielectric(1.0)
    native.setNonbondedMethod(openmm.GBSAOBCForce.NoCutoff)
    for atom in range(custom_force.getNumParticles()):
        charge, offset_radius_nm, scaled_radius_nm = custom_force.getParticleParameters(atom)
        native.addParticle(
            charge, offset_radius_nm + OBC2_RADIUS_OFFSET_NM, scaled_radius_nm / offset_radius_nm
        )
    native.setForceGroup(custom_force.getForceGroup())
    system.removeForce(custom[0])
    system.addForce(native)


def heavy_atom_indices(topology: app.Topology) -> np.ndarray:
    """Peptide heavy atoms (water and ions excluded), in topology order."""
    water_and_ions = {"HOH", "WAT", "NA", "CL", "K", "Na+", "Cl-"}
    return np.array(
        [
            atom.index
            for atom in topology.atoms()
            if atom.residue.name not in water_and_ions
            and (atom.element is None or atom.element.symbol != "H")
        ],
        dtype=np.int64,
    )


def make_integrator(protocol: SimulationProtocol, seed: int) -> openmm.LangevinMiddleIntegrator:
    integrator = openmm.LangevinMiddleIntegrator(
        protocol.temperature_K * unit.kelvin,
        protocol.friction_per_ps / unit.picosecond,
        protocol.timestep_fs * unit.femtosecond,
    )
    integrator.setRandomNumberSeed(seed)
    return integrator


def add_barostat(system: openmm.System, protocol: SimulationProtocol, seed: int) -> None:
    barostat = openmm.MonteCarloBarostat(
        SOLVENT_PRESETS[protocol.solvent].pressure_bar * unit.bar, protocol.temperature_K * unit.kelvin
    )
    barostat.setRandomNumberSeed(seed)
    system.addForce(barostat)


# ---------------------------------------------------------------------------------------------------
# Trajectory files


def append_xtc(path: Path, xyz_nm: np.ndarray, time_ps: np.ndarray) -> None:
    """Append frames to an XTC file. XTC frames are self-contained, so files concatenate byte-wise."""
    chunk = path.with_suffix(".chunk.xtc")
    with XTCTrajectoryFile(str(chunk), "w") as handle:
        handle.write(xyz_nm.astype(np.float32), time=time_ps.astype(np.float32))
    with open(path, "ab") as out, open(chunk, "rb") as src:
        shutil.copyfileobj(src, out)
    chunk.unlink()


def truncate_xtc(path: Path, num_frames: int) -> None:
    """Keep the first num_frames frames of path (frames written after the last checkpoint are dropped)."""
    if num_frames == 0:
        path.unlink(missing_ok=True)
        return
    if not path.is_file():
        raise SimulationSetupError(
            f"{path}: missing, but the checkpoint says it holds {num_frames} frames; delete {path.parent}"
        )
    with XTCTrajectoryFile(str(path), "r") as handle:
        xyz, time_ps, _, _ = handle.read(n_frames=num_frames)
    if len(xyz) < num_frames:
        raise SimulationSetupError(
            f"{path}: holds {len(xyz)} frames, but the checkpoint says {num_frames}; delete the .tmp dir"
        )
    rewritten = path.with_suffix(".truncated.xtc")
    with XTCTrajectoryFile(str(rewritten), "w") as handle:
        handle.write(xyz, time=time_ps)
    os.replace(rewritten, path)


class FrameBuffer:
    """Heavy-atom frames waiting to be superposed on frame 0 and appended to one XTC file."""

    def __init__(self, path: Path, interval_ps: float, reference: mdtraj.Trajectory, num_written: int):
        self.path, self.interval_ps, self.reference = path, interval_ps, reference
        self.num_written = num_written  # frames already on disk
        self._xyz_nm: list[np.ndarray] = []

    @property
    def num_frames(self) -> int:
        return self.num_written + len(self._xyz_nm)

    def add(self, xyz_nm: np.ndarray) -> None:
        self._xyz_nm.append(xyz_nm)

    def flush(self) -> None:
        if not self._xyz_nm:
            return
        frames = mdtraj.Trajectory(np.stack(self._xyz_nm), self.reference.topology)
        frames.superpose(self.reference)
        time_ps = self.interval_ps * np.arange(self.num_written, self.num_frames)
        append_xtc(self.path, frames.xyz, time_ps)
        self.num_written = self.num_frames
        self._xyz_nm = []


# ---------------------------------------------------------------------------------------------------
# One peptide


class SimulationInterrupted(RuntimeError):
    """Raised by a progress callback to stop a run (tests use it to simulate a crash)."""


ProgressCallback = Callable[[float], None]  # called with production ps advanced since the last call


@dataclass
class _Progress:
    """Counters saved with every checkpoint."""

    step: int = 0  # production steps done
    coarse_frames: int = 0
    fine_frames: int = 0
    wall_s: float = 0.0  # all sessions, set-up included
    production_wall_s: float = 0.0
    resumed_times: int = 0
    run_identity: str = ""  # see ``run_identity``; a resume must match it


def run_identity(protocol: SimulationProtocol, seed: int) -> str:
    """What a checkpoint was made with; resuming under anything else would mix two protocols in one file."""
    changeable = {"threads", "note"}  # do not change the trajectory's meaning
    fields = {key: value for key, value in asdict(protocol).items() if key not in changeable}
    return json.dumps(fields | {"seed": seed}, sort_keys=True)


@dataclass(frozen=True)
class RunInput:
    """What one run simulates: a peptide built from its sequence, or a prepared all-atom structure.

    ``name`` is the run's directory and file stem. With ``structure_pdb`` (all atoms, hydrogens
    included; see ``simulate_proteins.prepare_structure``) that structure is simulated, and its heavy
    atoms, not production frame 0, are NAME.pdb and the frame every trajectory frame is superposed on
    (so replicas started from one structure share their reference, as ATLAS's ``_fit`` files do).
    """

    name: str
    structure_pdb: Path | None = None

    @property
    def termini(self) -> str:
        return (
            "uncapped zwitterion" if self.structure_pdb is None else "as prepared by PDBFixer (charged, pH 7)"
        )

    @property
    def superposed_on(self) -> str:
        if self.structure_pdb is None:
            return "production frame 0, all heavy atoms (mdtraj superpose)"
        return f"{self.name}.pdb = heavy atoms of the prepared input structure (mdtraj superpose, all heavy atoms)"


def simulate_peptide(
    sequence: str,
    out_dir: str | Path,
    protocol: SimulationProtocol,
    seed: int,
    progress: ProgressCallback | None = None,
) -> PeptideSimulationRecord:
    """Simulate one peptide into out_dir/NAME/; resume from out_dir/NAME.tmp/ if a checkpoint is there.

    A finished peptide (out_dir/NAME/info.json exists) is not re-run: its record is returned once
    ``verify_finished`` accepts its files. Raises PeptideBusyError if another process works on it.
    """
    return simulate_run(RunInput(check_sequence(sequence)), out_dir, protocol, seed, progress)


def simulate_run(
    run: RunInput,
    out_dir: str | Path,
    protocol: SimulationProtocol,
    seed: int,
    progress: ProgressCallback | None = None,
) -> PeptideSimulationRecord:
    """``simulate_peptide`` for any ``RunInput`` (same layout, locking, resume and checks)."""
    name = run.name
    out_dir = Path(out_dir)
    final_dir, work_dir = out_dir / name, out_dir / f"{name}{WORK_SUFFIX}"
    if not is_finished(out_dir, name):
        _refuse_foreign_directory(final_dir)
        with peptide_lock(work_dir):
            if not is_finished(out_dir, name):
                return _simulate_locked(run, out_dir, protocol, seed, progress)
            _remove_empty_work_dir(work_dir)  # another process finished it while this one took the lock
    record = verify_finished(out_dir, name)
    _check_same_protocol(out_dir, name, record, protocol, seed)
    return record


def _refuse_foreign_directory(final_dir: Path) -> None:
    if final_dir.exists():
        raise SimulationSetupError(
            f"{final_dir} exists but has no {INFO_FILE}: not written by simulate; move it away"
        )


def _remove_empty_work_dir(work_dir: Path) -> None:
    """Remove a work directory that holds nothing but the lock (made just to take the lock)."""
    if [child.name for child in work_dir.iterdir()] == [LOCK_FILE]:
        (work_dir / LOCK_FILE).unlink()
        work_dir.rmdir()


def _clear_work_dir(work_dir: Path) -> None:
    """Empty NAME.tmp/ of a run that died before its first checkpoint (the lock file stays)."""
    for child in work_dir.iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _simulate_locked(
    run: RunInput,
    out_dir: Path,
    protocol: SimulationProtocol,
    seed: int,
    progress: ProgressCallback | None,
) -> PeptideSimulationRecord:
    """The run itself; the caller holds the peptide's lock."""
    name = run.name
    final_dir, work_dir = out_dir / name, out_dir / f"{name}{WORK_SUFFIX}"
    session_start = time.perf_counter()
    platform = select_platform(protocol.platform)
    properties = platform_properties(platform, protocol.threads)
    resume_path = work_dir / RESUME_FILE
    if resume_path.is_file():
        context, topology, counters = _resume(work_dir, protocol, seed, platform, properties)
    else:
        _clear_work_dir(work_dir)  # a run that crashed before its first checkpoint: start again
        context, topology = _equilibrate(work_dir, protocol, run, seed, platform, properties)
        counters = _Progress(run_identity=run_identity(protocol, seed))

    heavy = heavy_atom_indices(topology)
    pdb_path = work_dir / f"{name}.pdb"
    if counters.step == 0:
        if run.structure_pdb is None:
            reference = _heavy_frame(context, topology, heavy)
        else:
            reference = _structure_heavy_atoms(run.structure_pdb, topology, heavy)
        reference.save_pdb(str(pdb_path))
    reference = mdtraj.load(str(pdb_path))
    coarse = FrameBuffer(
        work_dir / f"{name}.xtc", protocol.save_interval_ps, reference, counters.coarse_frames
    )
    fine = FrameBuffer(
        work_dir / f"{name}_fine.xtc", protocol.fine_interval_fs / 1000.0, reference, counters.fine_frames
    )

    _run_production(context, protocol, heavy, coarse, fine, counters, work_dir, session_start, progress)
    wall_s = counters.wall_s + time.perf_counter() - session_start
    record = _make_record(run, protocol, seed, platform, counters, len(heavy), wall_s)
    _finish(work_dir, final_dir, record)
    return record


def _make_record(
    run: RunInput,
    protocol: SimulationProtocol,
    seed: int,
    platform: openmm.Platform,
    counters: _Progress,
    num_heavy_atoms: int,
    wall_s: float,
) -> PeptideSimulationRecord:
    # Production only (set-up excluded), summed over sessions when the run was resumed.
    production_ns = counters.step * protocol.timestep_fs * 1e-6
    ns_per_day = (
        production_ns / counters.production_wall_s * 86400.0 if counters.production_wall_s > 0 else 0.0
    )
    solvent = SOLVENT_PRESETS[protocol.solvent]
    name = run.name
    return PeptideSimulationRecord(
        sequence=name,
        forcefield="amber14-all",
        solvent=solvent.description,
        temperature_K=protocol.temperature_K,
        friction_per_ps=protocol.friction_per_ps,
        timestep_fs=protocol.timestep_fs,
        constraints=protocol.constraints,
        equilibration_ps=protocol.equilibration_ps,
        production_ns=protocol.production_ns,
        coarse_interval_ps=protocol.save_interval_ps,
        fine_interval_fs=protocol.fine_interval_fs,
        fine_length_ps=protocol.fine_length_ps,
        termini=run.termini,
        platform=f"OpenMM {platform.getName()}",
        seed=seed,
        wall_s=round(wall_s, 1),
        openmm=openmm.__version__,
        solvent_preset=solvent.name,
        forcefield_files=list(solvent.forcefield_files),
        hydrogen_mass_amu=protocol.hydrogen_mass_amu,
        minimization_max_iterations=protocol.minimization_max_iterations,
        pressure_bar=solvent.pressure_bar if solvent.explicit_water else None,
        threads=protocol.threads if platform.getName() == "CPU" else 1,
        num_frames=counters.coarse_frames,
        num_fine_frames=counters.fine_frames,
        first_frame_time_ps=0.0,
        num_heavy_atoms=num_heavy_atoms,
        superposed_on=run.superposed_on,
        production_ns_per_day=round(ns_per_day, 1),
        resumed_times=counters.resumed_times,
        note=protocol.note,
        files={"topology": f"{name}.pdb", "trajectory": f"{name}.xtc"}
        | ({"fine_trajectory": f"{name}_fine.xtc"} if counters.fine_frames else {}),
    )


def _equilibrate(
    work_dir: Path,
    protocol: SimulationProtocol,
    run: RunInput,
    seed: int,
    platform: openmm.Platform,
    properties: dict[str, str],
) -> tuple[openmm.Context, app.Topology]:
    """Minimise and equilibrate (NVT); for explicit water then add the barostat for NPT production."""
    topology, positions, system = create_system(protocol, run.name, run.structure_pdb)
    integrator = make_integrator(protocol, seed)
    context = openmm.Context(system, integrator, platform, properties)
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=protocol.minimization_max_iterations)
    context.setVelocitiesToTemperature(protocol.temperature_K * unit.kelvin, seed)
    integrator.step(protocol.steps_in(protocol.equilibration_ps * 1000.0, "equilibration_ps"))
    if SOLVENT_PRESETS[protocol.solvent].explicit_water:
        add_barostat(system, protocol, seed)
        context.reinitialize(preserveState=True)
    # The system and topology are saved so a resume never depends on rebuilding them identically.
    (work_dir / SYSTEM_FILE).write_text(openmm.XmlSerializer.serialize(system))
    state = context.getState(getPositions=True)
    with open(work_dir / START_FILE, "w") as handle:
        app.PDBFile.writeFile(topology, state.getPositions(), handle)
    return context, topology


def _resume(
    work_dir: Path,
    protocol: SimulationProtocol,
    seed: int,
    platform: openmm.Platform,
    properties: dict[str, str],
) -> tuple[openmm.Context, app.Topology, _Progress]:
    saved = np.load(work_dir / RESUME_FILE)
    if saved["run_identity"].item() != run_identity(protocol, seed):
        saved_fields = json.loads(saved["run_identity"].item())
        current_fields = json.loads(run_identity(protocol, seed))
        changed = ", ".join(
            f"{key}={saved_fields.get(key)!r} (now {current_fields.get(key)!r})"
            for key in sorted(saved_fields.keys() | current_fields.keys())
            if saved_fields.get(key) != current_fields.get(key)
        )
        raise SimulationSetupError(
            f"{work_dir / RESUME_FILE} was made with another protocol or seed: {changed}; rerun with "
            f"the saved settings or delete {work_dir}"
        )
    system = openmm.XmlSerializer.deserialize((work_dir / SYSTEM_FILE).read_text())
    topology = app.PDBFile(str(work_dir / START_FILE)).topology
    context = openmm.Context(system, make_integrator(protocol, seed), platform, properties)
    context.loadCheckpoint(saved["checkpoint"].tobytes())
    counters = _Progress(**{key: saved[key].item() for key in _Progress.__dataclass_fields__})
    counters.resumed_times += 1
    name = work_dir.name.removesuffix(WORK_SUFFIX)
    truncate_xtc(work_dir / f"{name}.xtc", counters.coarse_frames)
    truncate_xtc(work_dir / f"{name}_fine.xtc", counters.fine_frames)
    return context, topology, counters


def _heavy_frame(context: openmm.Context, topology: app.Topology, heavy: np.ndarray) -> mdtraj.Trajectory:
    xyz_nm = _heavy_positions_nm(context, heavy)
    md_topology = mdtraj.Topology.from_openmm(topology).subset(heavy)
    return mdtraj.Trajectory(xyz_nm[None], md_topology)


def _structure_heavy_atoms(
    structure_pdb: Path, topology: app.Topology, heavy: np.ndarray
) -> mdtraj.Trajectory:
    """The heavy atoms of the prepared structure, in the simulated topology's order (the same file)."""
    xyz_nm = app.PDBFile(str(structure_pdb)).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    if heavy.max() >= len(xyz_nm):  # explicit water is appended after the structure's atoms
        raise RuntimeError(f"{structure_pdb}: {len(xyz_nm)} atoms, fewer than the simulated structure")
    md_topology = mdtraj.Topology.from_openmm(topology).subset(heavy)
    return mdtraj.Trajectory(xyz_nm[heavy][None].astype(np.float32), md_topology)


def _heavy_positions_nm(context: openmm.Context, heavy: np.ndarray) -> np.ndarray:
    # enforcePeriodicBox=False keeps the peptide whole in explicit water.
    state = context.getState(getPositions=True, enforcePeriodicBox=False)
    return state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)[heavy].astype(np.float32)


def _run_production(
    context: openmm.Context,
    protocol: SimulationProtocol,
    heavy: np.ndarray,
    coarse: FrameBuffer,
    fine: FrameBuffer,
    counters: _Progress,
    work_dir: Path,
    session_start: float,
    progress: ProgressCallback | None,
) -> None:
    """Step from counters.step to the last frame, recording frames and checkpointing as it goes."""
    coarse_every = protocol.steps_in(protocol.save_interval_ps * 1000.0)
    fine_every = protocol.steps_in(protocol.fine_interval_fs) if protocol.num_fine_frames else 0
    checkpoint_every = protocol.steps_in(protocol.checkpoint_interval_ps * 1000.0)
    last_step = protocol.steps_in(protocol.last_frame_ps * 1000.0, "last frame")
    integrator = context.getIntegrator()
    production_start = time.perf_counter()
    production_wall_before = counters.production_wall_s
    step = counters.step
    while True:
        # Frame k of a file is taken at step k * interval; the counters say which frame is due next.
        if coarse.num_frames < protocol.num_frames and step == coarse.num_frames * coarse_every:
            coarse.add(_heavy_positions_nm(context, heavy))
        if fine.num_frames < protocol.num_fine_frames and step == fine.num_frames * fine_every:
            fine.add(_heavy_positions_nm(context, heavy))
        if step == last_step or (step > counters.step and step % checkpoint_every == 0):
            counters.production_wall_s = production_wall_before + time.perf_counter() - production_start
            _checkpoint(context, coarse, fine, counters, step, work_dir, session_start)
        if step == last_step:
            return
        next_step = min(
            (step // coarse_every + 1) * coarse_every,
            (step // checkpoint_every + 1) * checkpoint_every,
            last_step,
        )
        if fine.num_frames < protocol.num_fine_frames:
            next_step = min(next_step, (step // fine_every + 1) * fine_every)
        integrator.step(next_step - step)
        if progress is not None:
            progress((next_step - step) * protocol.timestep_fs / 1000.0)
        step = next_step


def _checkpoint(
    context: openmm.Context,
    coarse: FrameBuffer,
    fine: FrameBuffer,
    counters: _Progress,
    step: int,
    work_dir: Path,
    session_start: float,
) -> None:
    """Flush frames, then atomically replace the resume file: it is the single source of truth."""
    coarse.flush()
    fine.flush()
    counters.step, counters.coarse_frames, counters.fine_frames = step, coarse.num_written, fine.num_written
    wall_s = counters.wall_s + time.perf_counter() - session_start
    values = asdict(counters) | {"wall_s": wall_s}
    partial = work_dir / "resume.partial.npz"
    np.savez(partial, checkpoint=np.frombuffer(context.createCheckpoint(), dtype=np.uint8), **values)
    os.replace(partial, work_dir / RESUME_FILE)


def _finish(work_dir: Path, final_dir: Path, record: PeptideSimulationRecord) -> None:
    """Install the finished peptide. The scratch files go only after the rename: a run killed before it
    still resumes from NAME.tmp/resume.npz (at its last step: nothing is simulated again)."""
    record.write(work_dir / INFO_FILE)
    os.replace(work_dir, final_dir)
    for scratch in (RESUME_FILE, SYSTEM_FILE, START_FILE, LOCK_FILE):  # the lock stays held until closed
        (final_dir / scratch).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------
# Many peptides


def simulate_peptides(
    sequences: Sequence[str],
    out_dir: str | Path,
    protocol: SimulationProtocol,
    base_seed: int = 0,
    n_jobs: int = 1,
    show_progress: bool = True,
) -> list[PeptideSimulationRecord]:
    """Simulate each sequence (n_jobs in parallel, spawned processes); finished peptides are skipped.

    Before any simulation starts, every finished peptide is verified (``verify_finished``) and every
    other one checked to be free (not locked by a live run, no foreign NAME/ directory): a problem
    is raised as one UserError naming all the peptides concerned, and nothing is changed.
    """
    if not sequences:
        raise SimulationSetupError("sequences is empty: give at least one peptide, e.g. sequences=[AAAA]")
    names = [check_sequence(str(sequence)) for sequence in sequences]
    if len(set(names)) != len(names):
        raise SimulationSetupError(f"duplicate sequences in {list(sequences)}")
    if n_jobs < 1:
        raise SimulationSetupError(f"n_jobs={n_jobs} must be >= 1")
    select_platform(protocol.platform)  # an unavailable platform is refused before anything starts
    out_dir = make_out_dir(out_dir)
    jobs = [RunJob(out_dir, RunInput(name), peptide_seed(base_seed, name)) for name in names]
    run_jobs(jobs, protocol, n_jobs, show_progress, what="peptides")
    return [verify_finished(out_dir, name) for name in names]


def make_out_dir(out_dir: str | Path) -> Path:
    """Create out_dir (and parents); a file in the way or a permission problem is a SimulationSetupError."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SimulationSetupError(f"out_dir {out_dir} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SimulationSetupError(
            f"out_dir {out_dir}: cannot create it ({error.strerror or error})"
        ) from error
    return out_dir


@dataclass(frozen=True)
class RunJob:
    """One run of ``run_jobs``: what to simulate, where (out_dir/NAME/) and with which seed."""

    out_dir: Path
    run: RunInput
    seed: int


def run_jobs(
    jobs: Sequence[RunJob], protocol: SimulationProtocol, n_jobs: int, show_progress: bool, what: str
) -> None:
    """Check every job before any starts (``_check_before_start``), then simulate the unfinished ones
    (n_jobs in parallel, spawned processes) with one progress bar."""
    from tqdm import tqdm

    todo = _check_before_start(jobs, protocol)
    bar = tqdm(
        total=round(len(todo) * protocol.last_frame_ps / 1000.0, 6),
        unit="ns",
        desc=f"MD of {len(todo)}/{len(jobs)} {what}",
        disable=not show_progress,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,  # keep nohup logs short
        miniters=1,  # else tqdm learns a large stride from the fast fine-frame updates
        bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} ns [{elapsed}<{remaining}]",
    )
    if n_jobs == 1 or len(todo) <= 1:
        for job in todo:
            simulate_run(job.run, job.out_dir, protocol, job.seed, lambda ps: bar.update(ps / 1000))
    else:
        _simulate_in_processes(todo, protocol, n_jobs, bar)
    bar.close()


def _check_before_start(jobs: Sequence[RunJob], protocol: SimulationProtocol) -> list[RunJob]:
    """The jobs still to simulate, once every finished one is verified (files and settings) and every
    other one is free."""
    corrupt, stale, busy, foreign, todo = [], [], [], [], []
    for job in jobs:
        out_dir, name = job.out_dir, job.run.name
        if is_finished(out_dir, name):
            try:
                record = verify_finished(out_dir, name)
                _check_same_protocol(out_dir, name, record, protocol, job.seed)
            except CorruptOutputError as error:
                corrupt.append(str(error))
            except StaleOutputError as error:
                stale.append(str(error))
        elif (out_dir / name).exists():
            foreign.append(str(out_dir / name))
        elif lock_is_held(out_dir / f"{name}{WORK_SUFFIX}"):
            busy.append(name)
        else:
            todo.append(job)
    if corrupt:
        raise CorruptOutputError("; ".join(corrupt))
    if stale:
        raise StaleOutputError("; ".join(stale))
    if foreign:
        raise SimulationSetupError(
            f"{', '.join(foreign)} exist(s) but hold no {INFO_FILE}: not written by simulate; move them away"
        )
    if busy:
        raise PeptideBusyError(
            f"{', '.join(busy)} are being simulated by another process right now (their "
            f"NAME{WORK_SUFFIX}/{LOCK_FILE} is held); wait for that run or stop it"
        )
    return todo


def _simulate_in_processes(jobs: list[RunJob], protocol: SimulationProtocol, n_jobs: int, bar) -> None:
    context = multiprocessing.get_context("spawn")  # fork would copy OpenMM's threads and locks
    ps_done = context.Queue()  # workers report production ps; this process draws one bar
    # Created (and so the workers spawned) from this thread, which lives as long as the run: the
    # workers' parent-death signal is tied to the thread that started them (mdgen.data.workers).
    with ProcessPoolExecutor(
        n_jobs, mp_context=context, initializer=_init_worker, initargs=(os.getpid(), ps_done)
    ) as pool:
        futures = {pool.submit(_simulate_worker, job, protocol): job.run.name for job in jobs}
        while not all(future.done() for future in futures):
            _drain_progress(ps_done, bar, wait_s=1.0)
        _drain_progress(ps_done, bar, wait_s=0.0)
        failures = {futures[f]: f.exception() for f in futures if f.exception() is not None}
    if failures:
        details = "; ".join(f"{name}: {error}" for name, error in sorted(failures.items()))
        if all(isinstance(error, UserError) for error in failures.values()):
            raise SimulationSetupError(f"simulation failed for {sorted(failures)}: {details}")
        raise RuntimeError(f"simulation failed for {sorted(failures)}: {details}") from next(
            error for error in failures.values() if not isinstance(error, UserError)
        )


def _drain_progress(ps_done, bar, wait_s: float) -> None:
    """Move every reported production ps onto the bar, waiting up to wait_s for the first."""
    try:
        ps = ps_done.get(timeout=wait_s) if wait_s > 0 else ps_done.get_nowait()
        while True:
            bar.update(ps / 1000.0)
            ps = ps_done.get_nowait()
    except queue.Empty:
        pass


_worker_progress = None  # in a worker process: the queue its production ps go to


def _init_worker(parent_pid: int, ps_done) -> None:
    global _worker_progress
    die_with_parent(parent_pid)  # an orphan would race the next run on the same peptide
    _worker_progress = ps_done


def _simulate_worker(job: RunJob, protocol: SimulationProtocol) -> None:
    simulate_run(job.run, job.out_dir, protocol, job.seed, progress=_worker_progress.put)
