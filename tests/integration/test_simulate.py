"""mdgen.simulate end to end on a dipeptide: layout, frames, time stamps, resume, skip, CLI."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import mdtraj
import numpy as np
import openmm
import openmm.app as app
import pytest
from mdtraj.formats import XTCTrajectoryFile

from mdgen.md.peptide_builder import build_peptide
from mdgen.md.simulation import (
    SOLVENT_PRESETS,
    SimulationInterrupted,
    SimulationProtocol,
    SimulationSetupError,
    append_xtc,
    peptide_seed,
    replace_custom_obc2_with_native,
    simulate_peptide,
    simulate_peptides,
    truncate_xtc,
)

NAME = "GA"
HEAVY_ATOMS = 4 + 5 + 1  # Gly, Ala, OXT
SEED = 7
# 20 ps of production, a frame every 1 ps, the first 4 ps every 100 fs, checkpoints every 4 ps.
PROTOCOL = SimulationProtocol(
    solvent="implicit_obc2",
    production_ns=0.02,
    save_interval_ps=1.0,
    fine_interval_fs=100.0,
    fine_length_ps=4.0,
    equilibration_ps=1.0,
    minimization_max_iterations=100,
    checkpoint_interval_ps=4.0,
    platform="CPU",
    threads=1,
)
# The keys of ../shared/data/tetrapeptides/*/info.json (the fast suite must not read that data).
SHARED_INFO_KEYS = {
    "sequence", "forcefield", "solvent", "temperature_K", "friction_per_ps", "timestep_fs", "constraints",
    "equilibration_ps", "production_ns", "coarse_interval_ps", "fine_interval_fs", "fine_length_ps",
    "termini", "platform", "seed", "wall_s", "openmm",
}  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("sim")
    record = simulate_peptide(NAME, out_dir, PROTOCOL, SEED)
    return out_dir, record


def _load(out_dir, name, suffix=""):
    return mdtraj.load(str(out_dir / name / f"{name}{suffix}.xtc"), top=str(out_dir / name / f"{name}.pdb"))


def test_layout_is_the_published_one(finished):
    out_dir, _ = finished
    assert sorted(os.listdir(out_dir)) == [NAME]  # no NAME.tmp left behind
    assert sorted(os.listdir(out_dir / NAME)) == sorted(
        [f"{NAME}.pdb", f"{NAME}.xtc", f"{NAME}_fine.xtc", "info.json"]
    )


def test_only_heavy_atoms_are_written(finished):
    out_dir, _ = finished
    pdb = mdtraj.load(str(out_dir / NAME / f"{NAME}.pdb"))
    assert pdb.n_atoms == HEAVY_ATOMS
    assert all(atom.element.symbol != "H" for atom in pdb.topology.atoms)
    assert [atom.name for atom in pdb.topology.atoms][-1] == "OXT"


def test_frame_counts_and_time_stamps(finished):
    out_dir, _ = finished
    coarse, fine = _load(out_dir, NAME), _load(out_dir, NAME, "_fine")
    assert coarse.n_frames == 20
    np.testing.assert_allclose(coarse.time, np.arange(20) * 1.0, atol=1e-4)  # ps
    assert fine.n_frames == 40
    np.testing.assert_allclose(fine.time, np.arange(40) * 0.1, atol=1e-4)  # ps


def test_frames_are_superposed_on_the_first_and_pdb_is_frame_zero(finished):
    out_dir, _ = finished
    coarse, fine = _load(out_dir, NAME), _load(out_dir, NAME, "_fine")
    pdb = mdtraj.load(str(out_dir / NAME / f"{NAME}.pdb"))
    np.testing.assert_allclose(coarse.xyz[0], pdb.xyz[0], atol=2e-3)  # nm; XTC and PDB rounding
    np.testing.assert_allclose(fine.xyz[0], coarse.xyz[0], atol=2e-3)  # the same production frame
    assert np.abs(coarse.xyz[1:] - coarse.xyz[0]).max() > 0.01  # the peptide moved
    resuperposed = coarse[:].superpose(coarse, 0)
    np.testing.assert_allclose(resuperposed.xyz, coarse.xyz, atol=2e-3)  # already optimally superposed


def test_info_json_records_the_protocol(finished):
    out_dir, record = finished
    info = json.loads((out_dir / NAME / "info.json").read_text())
    assert SHARED_INFO_KEYS <= info.keys()
    assert info["seed"] == SEED and info["sequence"] == NAME
    assert info["num_frames"] == 20 and info["num_fine_frames"] == 40
    assert info["platform"] == "OpenMM CPU" and info["openmm"] == openmm.__version__
    assert info["solvent_preset"] == "implicit_obc2" and info["termini"] == "uncapped zwitterion"
    assert info["production_ns_per_day"] > 0 and info["resumed_times"] == 0
    assert info == json.loads(json.dumps(record.__dict__))


def test_finished_peptide_is_skipped(finished):
    out_dir, record = finished
    xtc = out_dir / NAME / f"{NAME}.xtc"
    mtime = xtc.stat().st_mtime_ns

    def must_not_run(_ps):
        raise AssertionError("a finished peptide was simulated again")

    assert simulate_peptide(NAME, out_dir, PROTOCOL, SEED, progress=must_not_run) == record
    assert xtc.stat().st_mtime_ns == mtime


def test_interrupted_run_resumes_to_the_same_trajectory(finished, tmp_path):
    """Crash at 10 ps (last checkpoint 8 ps), leave junk frames in the XTC, resume: same result as no crash."""
    reference_dir, _ = finished
    simulated_ps = []

    def crash_after_10_ps(ps):
        simulated_ps.append(ps)
        if sum(simulated_ps) >= 10.0:
            raise SimulationInterrupted("test crash")

    with pytest.raises(SimulationInterrupted):
        simulate_peptide(NAME, tmp_path, PROTOCOL, SEED, progress=crash_after_10_ps)
    work_dir = tmp_path / f"{NAME}.tmp"
    assert not (tmp_path / NAME).exists() and work_dir.is_dir()
    # Frames written after the checkpoint (as a crash between flush and checkpoint would leave them).
    append_xtc(
        work_dir / f"{NAME}.xtc", np.zeros((3, HEAVY_ATOMS, 3), np.float32), np.array([90.0, 91.0, 92.0])
    )

    with pytest.raises(
        SimulationSetupError, match=r"another protocol or seed: temperature_K=350\.0 \(now 300\.0\)"
    ):
        simulate_peptide(NAME, tmp_path, replace(PROTOCOL, temperature_K=300.0), SEED)

    record = simulate_peptide(NAME, tmp_path, PROTOCOL, SEED)
    assert record.resumed_times == 1
    resumed, reference = _load(tmp_path, NAME), _load(reference_dir, NAME)
    assert resumed.n_frames == 20
    np.testing.assert_allclose(resumed.time, np.arange(20) * 1.0, atol=1e-4)
    # OpenMM checkpoints restore positions, velocities and the integrator's random state.
    np.testing.assert_allclose(resumed.xyz, reference.xyz, atol=2e-3)
    np.testing.assert_allclose(
        _load(tmp_path, NAME, "_fine").xyz, _load(reference_dir, NAME, "_fine").xyz, atol=2e-3
    )


def test_crash_before_first_checkpoint_restarts_cleanly(tmp_path):
    work_dir = tmp_path / f"{NAME}.tmp"
    work_dir.mkdir()
    (work_dir / f"{NAME}.xtc").write_bytes(b"half-written")
    protocol = replace(PROTOCOL, production_ns=0.003, fine_length_ps=0.0)
    record = simulate_peptide(NAME, tmp_path, protocol, SEED)
    assert record.num_frames == 3 and _load(tmp_path, NAME).n_frames == 3
    assert not work_dir.exists()


def test_unfinished_directory_without_info_is_refused(tmp_path):
    (tmp_path / NAME).mkdir()
    with pytest.raises(SimulationSetupError, match="info.json"):
        simulate_peptide(NAME, tmp_path, PROTOCOL, SEED)


def test_truncate_xtc_keeps_leading_frames(tmp_path):
    path = tmp_path / "t.xtc"
    append_xtc(path, np.ones((5, 2, 3), np.float32), np.arange(5.0))
    truncate_xtc(path, 3)
    with XTCTrajectoryFile(str(path)) as handle:
        _, time_ps, _, _ = handle.read()
    np.testing.assert_allclose(time_ps, [0.0, 1.0, 2.0])
    with pytest.raises(SimulationSetupError, match="holds 3 frames"):
        truncate_xtc(path, 4)


def test_parallel_jobs_write_every_peptide(tmp_path):
    protocol = replace(PROTOCOL, production_ns=0.002, fine_length_ps=0.0, equilibration_ps=0.2)
    records = simulate_peptides(["GA", "AG"], tmp_path, protocol, base_seed=3, n_jobs=2, show_progress=False)
    assert [record.sequence for record in records] == ["GA", "AG"]
    assert [record.seed for record in records] == [peptide_seed(3, "GA"), peptide_seed(3, "AG")]
    assert sorted(os.listdir(tmp_path)) == ["AG", "GA"]


def test_cli_writes_the_layout(tmp_path):
    out_dir = tmp_path / "md"
    command = [
        sys.executable, "-m", "mdgen.simulate", "sequences=[AG]", f"out_dir={out_dir}", "length_ns=0.002",
        "save_interval_ps=1", "equilibration_ps=0.2", "platform=CPU", "progress=false",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True)
    assert sorted(os.listdir(out_dir / "AG")) == ["AG.pdb", "AG.xtc", "info.json"]
    assert _load(out_dir, "AG").n_frames == 2


def test_peptide_seed_depends_on_name_not_order():
    assert peptide_seed(0, "FLRH") == peptide_seed(0, "FLRH")
    assert peptide_seed(0, "FLRH") != peptide_seed(0, "AAAA")
    assert peptide_seed(1, "FLRH") != peptide_seed(0, "FLRH")
    assert all(peptide_seed(base, "FLRH") >= 1 for base in (0, 2**31 - 2 - 1, -5))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"solvent": "vacuum"}, "unknown solvent preset 'vacuum'"),
        ({"save_interval_ps": 0.003}, "save_interval_ps"),
        ({"production_ns": 0.0205}, "production_ns"),
        ({"constraints": "hbonds"}, "constraints"),
    ],
)
def test_protocol_rejects_inconsistent_values(change, message):
    with pytest.raises(SimulationSetupError, match=message):  # a UserError: one line from the CLI
        replace(PROTOCOL, **change)


def test_native_obc2_matches_openmm_custom_obc2():
    forcefield = app.ForceField(*SOLVENT_PRESETS["implicit_obc2"].forcefield_files)
    peptide = build_peptide("KWED", forcefield)
    custom = forcefield.createSystem(peptide.topology, nonbondedMethod=app.NoCutoff)
    native = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(custom))
    replace_custom_obc2_with_native(native)
    assert any(isinstance(force, openmm.GBSAOBCForce) for force in native.getForces())
    assert not any(isinstance(force, openmm.CustomGBForce) for force in native.getForces())

    def energy_and_forces(system):
        context = openmm.Context(
            system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
        )
        context.setPositions(peptide.positions)
        state = context.getState(getEnergy=True, getForces=True)
        return state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value  # kJ/mol, kJ/mol/nm

    custom_energy, custom_forces = energy_and_forces(custom)
    native_energy, native_forces = energy_and_forces(native)
    assert native_energy == pytest.approx(custom_energy, abs=1e-2)
    np.testing.assert_allclose(native_forces, custom_forces, atol=1e-2)


def test_protocol_stores_whole_numbers_as_floats():
    protocol = replace(PROTOCOL, timestep_fs=4, hydrogen_mass_amu=2, production_ns=1)
    assert isinstance(protocol.timestep_fs, float) and protocol.timestep_fs == 4.0
    assert isinstance(protocol.hydrogen_mass_amu, float) and isinstance(protocol.production_ns, float)
    assert isinstance(protocol.threads, int)


def test_committed_demo_set_matches_its_splits(repo_root):
    """data/demo is what make demo and the integration tests train on: every split entry is complete."""
    demo = repo_root / "data" / "demo"
    names = []
    for split in ("train", "val", "test"):
        lines = (demo / "splits" / f"demo_{split}.csv").read_text().split()
        assert lines[0] == "name,seqres"
        names += [line.split(",")[0] for line in lines[1:]]
    assert len(names) == len(set(names)) >= 6
    assert sorted(names) == sorted(path.name for path in (demo / "md").iterdir())
    for name in names:
        info = json.loads((demo / "md" / name / "info.json").read_text())
        assert info["num_frames"] == 200 and info["num_fine_frames"] == 2000
        assert info["hydrogen_mass_amu"] == 1.5 and "deliberate speed choice" in info["note"]
        coarse = _load(demo / "md", name)
        assert coarse.n_frames == 200 and coarse.time[-1] == pytest.approx(1990.0)
        assert all(atom.element.symbol != "H" for atom in coarse.topology.atoms)
