"""mdgen.simulate from a PDB file end to end on the villin headpiece (PDB 1VII, pdbfixer's test.pdb):
PDBFixer preparation, replicas, the ATLAS layout, skip/stale/resume, and one-line errors on bad input."""

import json
import os
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path

import mdtraj
import numpy as np
import pdbfixer
import pytest
from mdtraj.formats import XTCTrajectoryFile

import mdgen.md.protein_simulation as simulate_proteins_module
from mdgen.data.sim_dir_layouts import detect_layout, discover_entries
from mdgen.md.protein_simulation import (
    ProteinInputError,
    prepare_structure,
    simulate_proteins,
    verify_protein,
)
from mdgen.md.simulation import SimulationProtocol, SimulationSetupError, StaleOutputError

# Real OpenMM MD of villin (~40 s for the module): make test-full, not the fast suite.
pytestmark = pytest.mark.slow

VILLIN_PDB = Path(pdbfixer.__file__).parent / "tests" / "data" / "test.pdb"
VILLIN_SEQUENCE = "MLSDEDFKAVFGMTRSAFANLPLWKQQNLKKEKGLF"  # 1VII SEQRES, read off the file's header
BASE_SEED = 5
# 3 frames 0.1 ps apart per replica after 0.02 ps of equilibration: 110 steps of a 596-atom system.
TINY = SimulationProtocol(
    solvent="implicit_obc2",
    production_ns=0.0003,
    temperature_K=300.0,
    save_interval_ps=0.1,
    equilibration_ps=0.02,
    minimization_max_iterations=20,
    checkpoint_interval_ps=0.1,
    platform="CPU",
    threads=1,
)


@pytest.fixture(scope="module")
def villin(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("proteins")
    records = simulate_proteins(
        [VILLIN_PDB], out_dir, TINY, names=["villin"], replicas=2, base_seed=BASE_SEED, show_progress=False
    )
    return out_dir, records[0]


def _input_heavy_atoms() -> mdtraj.Trajectory:
    structure = mdtraj.load(str(VILLIN_PDB))
    return structure.atom_slice(structure.topology.select("not element H"))


def test_atlas_layout_and_nothing_else(villin):
    """Catches: staging or assembly directories left behind, wrong file names for the ATLAS reader."""
    out_dir, _ = villin
    assert os.listdir(out_dir) == ["villin"]
    assert sorted(os.listdir(out_dir / "villin")) == [
        "info.json", "villin.pdb", "villin_prod_R1_fit.xtc", "villin_prod_R2_fit.xtc",
    ]  # fmt: skip
    assert detect_layout(out_dir) == "atlas"
    entries = discover_entries(out_dir, replicas=(1, 2))
    assert [(e.name, e.trajectory_path.name) for e in entries] == [
        ("villin_R1", "villin_prod_R1_fit.xtc"),
        ("villin_R2", "villin_prod_R2_fit.xtc"),
    ]
    assert all(e.topology_path == out_dir / "villin" / "villin.pdb" for e in entries)


def test_structure_is_the_cleaned_input_heavy_atoms(villin):
    """NAME.pdb holds the input's heavy atoms at the input's coordinates (not a minimised or MD frame):
    catches hydrogens written, OXT lost, residues dropped, or the wrong structure saved."""
    out_dir, record = villin
    written = mdtraj.load(str(out_dir / "villin" / "villin.pdb"))
    source = _input_heavy_atoms()
    assert "".join(r.code for r in written.topology.residues) == VILLIN_SEQUENCE
    assert written.n_atoms == source.n_atoms == record.num_heavy_atoms
    assert all(a.element.symbol != "H" for a in written.topology.atoms)
    assert [a.name for a in written.topology.atoms if a.name == "OXT"] == ["OXT"]
    written_ca = written.xyz[0, written.topology.select("name CA")]
    source_ca = source.xyz[0, source.topology.select("name CA")]
    np.testing.assert_allclose(written_ca, source_ca, atol=2e-4)  # nm; PDB files keep 0.001 A


def test_frames_time_stamps_and_superposition(villin):
    """3 frames 0.1 ps apart per replica, each superposed on NAME.pdb (its heavy-atom centroid equals the
    reference's, as an optimal fit makes it); the replicas have their own seeds, so they differ."""
    out_dir, record = villin
    reference = mdtraj.load(str(out_dir / "villin" / "villin.pdb"))
    last_frames = []
    for replica in (1, 2):
        path = out_dir / "villin" / f"villin_prod_R{replica}_fit.xtc"
        with XTCTrajectoryFile(str(path)) as handle:
            xyz, time_ps, _, _ = handle.read()
        np.testing.assert_allclose(time_ps, [0.0, 0.1, 0.2], atol=1e-5)
        assert xyz.shape == (3, reference.n_atoms, 3)
        np.testing.assert_allclose(xyz.mean(1), np.repeat(reference.xyz[0].mean(0)[None], 3, 0), atol=1e-3)
        frames = mdtraj.Trajectory(xyz, reference.topology)
        rmsd_nm = mdtraj.rmsd(frames, mdtraj.Trajectory(reference.xyz.copy(), reference.topology))  # centres
        assert np.all(rmsd_nm < 0.3)  # a stable fold near its start, not a scrambled atom order
        last_frames.append(xyz[-1])
    assert np.abs(last_frames[0] - last_frames[1]).max() > 1e-3


def test_info_json_records_protocol_seeds_and_speed(villin):
    out_dir, record = villin
    info = json.loads((out_dir / "villin" / "info.json").read_text())
    assert info["temperature_K"] == 300.0 and info["replicas"] == 2 and info["num_frames"] == 3
    assert info["forcefield_files"] == ["amber14-all.xml", "implicit/obc2.xml"]
    assert info["preparation"]["chains"] == {"A": VILLIN_SEQUENCE}
    assert info["input_sha256"] and info["input_pdb"] == str(VILLIN_PDB)
    for replica in (1, 2):
        expected_seed = 1 + (BASE_SEED + zlib.crc32(f"villin_R{replica}".encode())) % (2**31 - 2)
        assert info["replica_records"][f"R{replica}"]["seed"] == expected_seed
        assert info["replica_records"][f"R{replica}"]["production_ns_per_day"] > 0
    assert info["production_ns_per_day"] > 0
    assert verify_protein(out_dir, "villin") == record


def test_finished_protein_is_skipped_and_other_settings_refused(villin, monkeypatch):
    """A rerun must neither simulate nor re-prepare; a hotter request must not pass the old run off."""
    out_dir, record = villin

    def must_not_run(*args, **kwargs):
        raise AssertionError("ran again")

    monkeypatch.setattr(simulate_proteins_module, "run_jobs", must_not_run)
    monkeypatch.setattr(simulate_proteins_module, "prepare_structure", must_not_run)
    again = simulate_proteins(
        [VILLIN_PDB], out_dir, TINY, names=["villin"], replicas=2, base_seed=BASE_SEED, show_progress=False
    )
    assert again == [record]
    with pytest.raises(StaleOutputError, match=r"temperature_K=300.0 \(requested 350.0\)"):
        simulate_proteins(
            [VILLIN_PDB], out_dir, replace(TINY, temperature_K=350.0), names=["villin"], replicas=2,
            base_seed=BASE_SEED, show_progress=False,
        )  # fmt: skip
    with pytest.raises(StaleOutputError, match=r"replicas=2 \(requested 3\)"):
        simulate_proteins(
            [VILLIN_PDB],
            out_dir,
            TINY,
            names=["villin"],
            replicas=3,
            base_seed=BASE_SEED,
            show_progress=False,
        )


def test_killed_before_assembly_resumes_without_simulating_again(tmp_path, monkeypatch):
    """Atomicity: nothing appears under OUT/NAME until it is complete; the rerun only assembles."""
    protocol = replace(TINY, production_ns=0.0001)  # one frame: no production steps
    real_assemble = simulate_proteins_module._assemble

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate_proteins_module, "_assemble", killed)
    with pytest.raises(KeyboardInterrupt):
        simulate_proteins([VILLIN_PDB], tmp_path, protocol, names=["v"], replicas=1, show_progress=False)
    assert os.listdir(tmp_path) == ["v.tmp-replicas"]
    assert (tmp_path / "v.tmp-replicas" / "v_R1" / "info.json").is_file()

    monkeypatch.setattr(simulate_proteins_module, "_assemble", real_assemble)
    monkeypatch.setattr(simulate_proteins_module, "prepare_structure", killed)  # must reuse prepared.pdb
    monkeypatch.setattr("mdgen.md.simulation._simulate_locked", killed)  # the replica is finished
    [record] = simulate_proteins(
        [VILLIN_PDB], tmp_path, protocol, names=["v"], replicas=1, show_progress=False
    )
    assert os.listdir(tmp_path) == ["v"] and record.num_frames == 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


WATER_ONLY = (
    "HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\n"
    "HETATM    2  O   HOH A   2       3.000   0.000   0.000  1.00  0.00           O\n"
    "END\n"
)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        ("this is not a PDB file\n", "holds no atoms|cannot be read"),
        (WATER_ONLY, "no protein chain"),
    ],
    ids=["missing", "garbage", "water-only"],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "input.pdb"
    if content is not None:
        _write(path, content)
    with pytest.raises(ProteinInputError, match=message) as error:
        prepare_structure(path, tmp_path / "prepared.pdb")
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "prepared.pdb").exists()


def test_requests_are_checked_before_anything_is_written(tmp_path):
    """Missing file, unusable or duplicate names: refused with nothing created under out_dir."""
    out_dir = tmp_path / "out"
    with pytest.raises(ProteinInputError, match="nope.pdb: file not found"):
        simulate_proteins([tmp_path / "nope.pdb"], out_dir, TINY)
    with pytest.raises(SimulationSetupError, match="duplicate protein names"):
        simulate_proteins([VILLIN_PDB, VILLIN_PDB], out_dir, TINY)
    with pytest.raises(SimulationSetupError, match="not usable as file names"):
        simulate_proteins([VILLIN_PDB], out_dir, TINY, names=["a/b"])
    with pytest.raises(SimulationSetupError, match="fine_length_ps"):
        simulate_proteins([VILLIN_PDB], out_dir, replace(TINY, fine_length_ps=1.0))
    assert not out_dir.exists()


def test_nonstandard_residues_and_heterogens_are_cleaned(tmp_path):
    """1VII with its Met1 renamed MSE (selenomethionine, a non-standard residue PDBFixer maps to MET)
    and a water and a sulfate added: the prepared structure has MET, no HOH/SO4, hydrogens added."""
    lines = VILLIN_PDB.read_text().splitlines(keepends=True)
    edited = [
        (line[:17] + "MSE" + line[20:]).replace("ATOM  ", "HETATM")
        if line.startswith("ATOM") and line[17:20] == "MET" and line[22:26].strip() == "41"
        else line
        for line in lines
        if not line.startswith(("END", "CONECT", "MASTER"))
    ]
    edited += [
        "HETATM 9001  O   HOH B   1      30.000  30.000  30.000  1.00  0.00           O\n",
        "HETATM 9002  S   SO4 C   1      40.000  30.000  30.000  1.00  0.00           S\n",
        "END\n",
    ]
    source = _write(tmp_path / "edited.pdb", "".join(edited))
    report = prepare_structure(source, tmp_path / "prepared.pdb")
    prepared = mdtraj.load(str(tmp_path / "prepared.pdb"))
    names = [r.name for r in prepared.topology.residues]
    assert names[0] == "MET" and "HOH" not in names and "SO4" not in names and len(names) == 36
    assert report["replaced_nonstandard_residues"] == ["MSE41->MET"]
    assert report["removed_heterogen_and_water_residues"] == 2
    assert prepared.topology.select("element H").size > 0


@pytest.mark.slow
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    command = [
        sys.executable, "-m", "mdgen.simulate", f"pdb_files=[{tmp_path / 'missing.pdb'}]",
        f"out_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'hydra'}",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "missing.pdb: file not found" in result.stderr
