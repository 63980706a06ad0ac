"""MD of real proteins from PDB files, written in the ATLAS layout (``python -m mdgen.simulate pdb_files=...``).

Per protein ``NAME`` (the PDB file's stem unless named) the finished output is::

    OUT/NAME/NAME.pdb                    heavy atoms (incl. OXT) of the prepared input structure
    OUT/NAME/NAME_prod_R{i}_fit.xtc      replica i = 1..replicas, heavy atoms, a frame every
                                         save_interval_ps from t = 0, superposed on NAME.pdb
    OUT/NAME/info.json                   ``ProteinSimulationRecord``: input, preparation, protocol,
                                         every replica's seed, frames and ns/day

which is what ``mdgen.data.sim_dir_layouts`` reads as the ``atlas`` layout (entries ``NAME_R1`` ..).

Preparation (``prepare_structure``, PDBFixer): heterogens and water removed, non-protein chains
dropped, non-standard residues replaced by their standard parents, missing internal residues modelled
(missing terminal residues are not added: the chain stays as resolved), missing heavy atoms (incl.
the C-terminal OXT) and hydrogens at pH 7 added. Every replica starts from this one structure with its
own seed (``peptide_seed(base_seed, "NAME_R{i}")``), is minimised, equilibrated and run by the peptide
machinery of ``mdgen.md.simulation`` (checkpoints, resume, per-run locks, verification).

Work happens in ``OUT/NAME.tmp-replicas/`` (``prepared.pdb``, ``preparation.json`` and one finished or
resumable run directory per replica), held under the flock of its ``.simulate.lock`` for the whole
command. When every replica is finished the ATLAS directory is assembled in ``OUT/NAME.tmp-assemble/``
and renamed to ``OUT/NAME/``; only then is the staging directory removed. So ``OUT/NAME/`` is always
complete, an interrupted command resumes where it stopped, and ``mdgen.data.sim_dir_layouts`` skips both
staging names (they contain ``.tmp-``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mdtraj
import numpy as np

from mdgen.errors import UserError
from mdgen.md.simulation import (
    INFO_FILE,
    CorruptOutputError,
    PeptideSimulationRecord,
    RunInput,
    RunJob,
    SimulationProtocol,
    SimulationSetupError,
    StaleOutputError,
    _trajectory_problem,
    corrupt_finished_output,
    make_out_dir,
    peptide_lock,
    peptide_seed,
    protocol_differences,
    run_jobs,
    select_platform,
    verified_pdb_atoms,
    verify_finished,
)

STAGING_SUFFIX = ".tmp-replicas"
ASSEMBLY_SUFFIX = ".tmp-assemble"
PREPARED_FILE = "prepared.pdb"
PREPARATION_FILE = "preparation.json"
ATLAS_REPLICAS = 3
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_PROTEIN_RESIDUES = frozenset(
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL".split()
)


class ProteinInputError(UserError):
    """A protein input file is missing, unreadable or holds no protein chain; the message names it."""


def replica_name(name: str, replica: int) -> str:
    """Run (and staging directory) name of one replica, e.g. ``villin_R2``."""
    return f"{name}_R{replica}"


def atlas_trajectory_name(name: str, replica: int) -> str:
    return f"{name}_prod_R{replica}_fit.xtc"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Preparation


def prepare_structure(pdb_file: Path, out_path: Path, ph: float = 7.0) -> dict:
    """Clean ``pdb_file`` with PDBFixer and write the all-atom result (with hydrogens) to ``out_path``.

    Returns what was done (JSON-ready): counts of removed heterogens/chains, replaced residues, added
    residues and atoms, the resulting one-letter sequence per chain. Raises ProteinInputError (one
    line, naming the file) when the file cannot be parsed or has no protein residue.
    """
    import openmm.app as app
    from pdbfixer import PDBFixer

    pdb_file = Path(pdb_file)
    if not pdb_file.is_file():
        raise ProteinInputError(f"{pdb_file}: file not found")
    try:
        fixer = PDBFixer(filename=str(pdb_file))
    except Exception as error:  # PDBFixer/OpenMM raise many types for malformed files
        raise ProteinInputError(f"{pdb_file}: cannot be read as a PDB file ({_one_line(error)})") from error
    if fixer.topology.getNumAtoms() == 0:
        raise ProteinInputError(f"{pdb_file}: holds no atoms")
    residues_before = [residue.name for residue in fixer.topology.residues()]

    fixer.findNonstandardResidues()
    replaced = [f"{residue.name}{residue.id}->{parent}" for residue, parent in fixer.nonstandardResidues]
    fixer.replaceNonstandardResidues()
    fixer.removeHeterogens(keepWater=False)
    removed_heterogens = len(residues_before) - fixer.topology.getNumResidues()
    non_protein = [
        index
        for index, chain in enumerate(fixer.topology.chains())
        if not any(residue.name in _PROTEIN_RESIDUES for residue in chain.residues())
    ]
    if len(non_protein) == fixer.topology.getNumChains():
        raise ProteinInputError(
            f"{pdb_file}: no protein chain (residues: {', '.join(sorted(set(residues_before))[:10])})"
        )
    fixer.removeChains(non_protein)

    fixer.findMissingResidues()
    chains = list(fixer.topology.chains())
    terminal_gaps = [
        key for key in fixer.missingResidues if key[1] in (0, len(list(chains[key[0]].residues())))
    ]
    for key in terminal_gaps:  # keep the chain as resolved: only internal gaps are modelled
        del fixer.missingResidues[key]
    added_residues = sum(len(residues) for residues in fixer.missingResidues.values())
    fixer.findMissingAtoms()
    missing_heavy = sum(len(atoms) for atoms in fixer.missingAtoms.values()) + sum(
        len(atoms) for atoms in fixer.missingTerminals.values()
    )
    try:
        fixer.addMissingAtoms(seed=0)
        fixer.addMissingHydrogens(ph)
    except Exception as error:
        raise ProteinInputError(f"{pdb_file}: PDBFixer cannot complete it ({_one_line(error)})") from error

    partial = out_path.with_name(out_path.name + ".partial")
    with open(partial, "w") as handle:
        app.PDBFile.writeFile(fixer.topology, fixer.positions, handle, keepIds=False)
    os.replace(partial, out_path)
    sequences = {
        chain.id: "".join(_one_letter(residue.name) for residue in chain.residues())
        for chain in fixer.topology.chains()
    }
    return {
        "tool": "PDBFixer",
        "ph": ph,
        "replaced_nonstandard_residues": replaced,
        "removed_heterogen_and_water_residues": removed_heterogens,
        "removed_non_protein_chains": len(non_protein),
        "added_internal_residues": added_residues,
        "not_added_terminal_residues": len(terminal_gaps),
        "added_heavy_atoms": missing_heavy,
        "num_atoms_with_hydrogens": fixer.topology.getNumAtoms(),
        "chains": sequences,
    }


def _one_letter(residue_name: str) -> str:
    from mdgen.md.peptide_builder import STANDARD_RESIDUES_1TO3

    return {three: one for one, three in STANDARD_RESIDUES_1TO3.items()}.get(residue_name, "X")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


# ---------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class ProteinSimulationRecord:
    """What OUT/NAME/info.json holds."""

    name: str
    input_pdb: str
    input_sha256: str
    preparation: dict
    num_residues: int
    num_heavy_atoms: int
    replicas: int
    temperature_K: float
    production_ns: float
    frame_interval_ps: float
    num_frames: int  # per replica
    forcefield_files: list[str]
    solvent: str
    timestep_fs: float
    hydrogen_mass_amu: float | None
    production_ns_per_day: float  # mean over replicas (each one process)
    superposed_on: str
    replica_records: dict[str, dict]  # "R1": PeptideSimulationRecord fields (seed, wall_s, ns/day, ...)
    files: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")

    def replica(self, replica: int) -> PeptideSimulationRecord:
        return PeptideSimulationRecord(**self.replica_records[f"R{replica}"])


def verify_protein(out_dir: Path, name: str) -> ProteinSimulationRecord:
    """The record of a finished protein after checking its files against it (CorruptOutputError if not)."""
    directory = Path(out_dir) / name

    def corrupt(problem: str) -> CorruptOutputError:
        return corrupt_finished_output(directory, name, problem)

    try:
        record = ProteinSimulationRecord(**json.loads((directory / INFO_FILE).read_text()))
        replicas = [record.replica(i) for i in range(1, record.replicas + 1)]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as error:
        raise corrupt(f"its {INFO_FILE} is not a protein simulate record ({error})") from error
    if record.name != name:
        raise corrupt(f"its {INFO_FILE} describes {record.name!r}")
    atoms = verified_pdb_atoms(directory, name, record.num_heavy_atoms)
    for index, replica in enumerate(replicas, start=1):
        file_name = atlas_trajectory_name(name, index)
        problem = _trajectory_problem(
            directory / file_name, replica.num_frames, replica.coarse_interval_ps, 0.0, atoms
        )
        if problem:
            raise corrupt(f"{file_name} {problem}")
    return record


def _protein_differences(
    record: ProteinSimulationRecord, request: ProteinRequest, protocol: SimulationProtocol, base_seed: int
) -> str:
    """How a finished protein differs from this request ("" when it matches)."""
    problems = []
    if record.replicas != request.replicas:
        problems.append(f"replicas={record.replicas} (requested {request.replicas})")
    if record.input_sha256 != file_sha256(request.pdb_file):
        problems.append(f"input {record.input_pdb} (another file's content than {request.pdb_file})")
    for index in range(1, min(record.replicas, request.replicas) + 1):
        seed = peptide_seed(base_seed, replica_name(request.name, index))
        differences = protocol_differences(record.replica(index), protocol, seed)
        if differences:
            problems.append(f"R{index}: {differences}")
            break
    return "; ".join(problems)


# ---------------------------------------------------------------------------------------------------
# Many proteins


@dataclass(frozen=True)
class ProteinRequest:
    name: str
    pdb_file: Path
    replicas: int

    @property
    def runs(self) -> list[str]:
        return [replica_name(self.name, i) for i in range(1, self.replicas + 1)]


def protein_requests(
    pdb_files: list[str | Path], names: list[str] | None, replicas: int
) -> list[ProteinRequest]:
    """Check the inputs (files exist, names valid and distinct) before anything is written."""
    if not pdb_files:
        raise SimulationSetupError(
            "pdb_files is empty: give at least one PDB file, e.g. pdb_files=[villin.pdb]"
        )
    if replicas < 1:
        raise SimulationSetupError(f"replicas={replicas} must be >= 1 (ATLAS: {ATLAS_REPLICAS})")
    paths = [Path(str(path)).expanduser() for path in pdb_files]
    if names is None:
        names = [path.stem for path in paths]
    elif len(names) != len(paths):
        raise SimulationSetupError(f"names has {len(names)} entries for {len(paths)} pdb_files")
    for path in paths:
        if not path.is_file():
            raise ProteinInputError(f"{path}: file not found")
    bad = [str(name) for name in names if not _NAME.match(str(name))]
    if bad:
        raise SimulationSetupError(
            f"protein names {bad} are not usable as file names (letters, digits, _ and -; give names=[...])"
        )
    duplicates = sorted({str(n) for n in names if list(names).count(n) > 1})
    if duplicates:
        raise SimulationSetupError(f"duplicate protein names {duplicates}; give distinct names=[...]")
    return [ProteinRequest(str(name), path, replicas) for name, path in zip(names, paths, strict=True)]


def simulate_proteins(
    pdb_files: list[str | Path],
    out_dir: str | Path,
    protocol: SimulationProtocol,
    names: list[str] | None = None,
    replicas: int = ATLAS_REPLICAS,
    base_seed: int = 0,
    n_jobs: int = 1,
    show_progress: bool = True,
) -> list[ProteinSimulationRecord]:
    """Prepare each PDB file, run its replicas (n_jobs in parallel over all replicas) and write the
    ATLAS layout; finished proteins are verified and skipped, interrupted ones resume.

    Before any simulation starts, every finished protein is verified and checked to match this
    request (protocol, seeds, replicas, input file content), and every other one locked; a problem is
    one UserError and nothing is changed.
    """
    requests = protein_requests(pdb_files, names, replicas)
    if protocol.fine_length_ps > 0:
        raise SimulationSetupError("fine_length_ps > 0 is not part of the ATLAS layout; use 0 for pdb_files")
    if n_jobs < 1:
        raise SimulationSetupError(f"n_jobs={n_jobs} must be >= 1")
    select_platform(protocol.platform)
    out_dir = make_out_dir(out_dir)
    todo = _unfinished(requests, out_dir, protocol, base_seed)
    with ExitStack() as locks:
        for request in todo:
            locks.enter_context(peptide_lock(out_dir / f"{request.name}{STAGING_SUFFIX}"))
        todo = [r for r in todo if not (out_dir / r.name / INFO_FILE).is_file()]  # finished meanwhile
        preparations = {r.name: _prepared(out_dir / f"{r.name}{STAGING_SUFFIX}", r) for r in todo}
        jobs = [
            RunJob(
                out_dir / f"{request.name}{STAGING_SUFFIX}",
                RunInput(run, out_dir / f"{request.name}{STAGING_SUFFIX}" / PREPARED_FILE),
                peptide_seed(base_seed, run),
            )
            for request in todo
            for run in request.runs
        ]
        if jobs:
            run_jobs(jobs, protocol, n_jobs, show_progress, what="protein replicas")
        for request in todo:
            _assemble(out_dir, request, preparations[request.name])
    return [verify_protein(out_dir, request.name) for request in requests]


def _unfinished(
    requests: list[ProteinRequest], out_dir: Path, protocol: SimulationProtocol, base_seed: int
) -> list[ProteinRequest]:
    todo, problems = [], []
    for request in requests:
        directory = out_dir / request.name
        if (directory / INFO_FILE).is_file():
            record = verify_protein(out_dir, request.name)
            differences = _protein_differences(record, request, protocol, base_seed)
            if differences:
                problems.append(f"{directory} was made with other settings: {differences}")
        elif directory.exists():
            raise SimulationSetupError(
                f"{directory} exists but has no {INFO_FILE}: not written by simulate; move it away"
            )
        else:
            todo.append(request)
    if problems:
        raise StaleOutputError(
            "; ".join(problems) + "; kept as they are: use another out_dir or move them away"
        )
    return todo


def _prepared(staging: Path, request: ProteinRequest) -> dict:
    """The preparation record of staging/prepared.pdb, preparing it first if needed."""
    record_path = staging / PREPARATION_FILE
    sha256 = file_sha256(request.pdb_file)
    if record_path.is_file() and (staging / PREPARED_FILE).is_file():
        record = json.loads(record_path.read_text())
        if record.get("input_sha256") != sha256:
            raise StaleOutputError(
                f"{staging} holds a run prepared from another {request.pdb_file.name} (content changed); "
                f"delete {staging} to start again"
            )
        return record
    record = prepare_structure(request.pdb_file, staging / PREPARED_FILE) | {
        "input_pdb": str(request.pdb_file),
        "input_sha256": sha256,
    }
    partial = record_path.with_name(record_path.name + ".partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(partial, record_path)
    return record


def _assemble(out_dir: Path, request: ProteinRequest, preparation: dict) -> None:
    """Build OUT/NAME.tmp-assemble/ from the finished replicas, rename it to OUT/NAME/, drop the staging."""
    name, staging = request.name, out_dir / f"{request.name}{STAGING_SUFFIX}"
    records = [verify_finished(staging, run) for run in request.runs]
    structures = {(staging / run / f"{run}.pdb").read_bytes() for run in request.runs}
    if len(structures) != 1:
        raise RuntimeError(f"{staging}: the replicas' reference structures differ; they must share one")
    assembly = out_dir / f"{name}{ASSEMBLY_SUFFIX}"
    if assembly.exists():
        shutil.rmtree(assembly)
    assembly.mkdir()
    shutil.copyfile(staging / request.runs[0] / f"{request.runs[0]}.pdb", assembly / f"{name}.pdb")
    for index, run in enumerate(request.runs, start=1):
        shutil.copyfile(staging / run / f"{run}.xtc", assembly / atlas_trajectory_name(name, index))
    first = records[0]
    topology = mdtraj.load_topology(str(assembly / f"{name}.pdb"))
    ProteinSimulationRecord(
        name=name,
        input_pdb=preparation["input_pdb"],
        input_sha256=preparation["input_sha256"],
        preparation={k: v for k, v in preparation.items() if k not in ("input_pdb", "input_sha256")},
        num_residues=topology.n_residues,
        num_heavy_atoms=topology.n_atoms,
        replicas=request.replicas,
        temperature_K=first.temperature_K,
        production_ns=first.production_ns,
        frame_interval_ps=first.coarse_interval_ps,
        num_frames=first.num_frames,
        forcefield_files=first.forcefield_files,
        solvent=first.solvent,
        timestep_fs=first.timestep_fs,
        hydrogen_mass_amu=first.hydrogen_mass_amu,
        production_ns_per_day=round(float(np.mean([r.production_ns_per_day for r in records])), 1),
        superposed_on=f"{name}.pdb (the prepared input structure, all heavy atoms), every replica",
        replica_records={f"R{i}": asdict(r) for i, r in enumerate(records, start=1)},
        files={"topology": f"{name}.pdb"}
        | {f"R{i}": atlas_trajectory_name(name, i) for i in range(1, request.replicas + 1)},
    ).write(assembly / INFO_FILE)
    os.replace(assembly, out_dir / name)
    shutil.rmtree(staging)  # its lock stays held (open descriptor) until the command's ExitStack closes
