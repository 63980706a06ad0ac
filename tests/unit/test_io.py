"""read_trajectory / write_trajectory on the committed MD fixtures and on broken inputs."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from mdgen import constants as rc
from mdgen.geometry import torsion_angles
from mdgen.io import (
    Trajectory,
    TrajectoryError,
    read_trajectory,
    rename_prochiral_atoms_to_iupac,
    write_trajectory,
)


@pytest.fixture(scope="module")
def trajectory_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "trajectories"


@pytest.fixture(scope="module")
def flrh(trajectory_dir: Path) -> Trajectory:
    return read_trajectory(trajectory_dir / "FLRH.pdb", trajectory_dir / "FLRH.xtc")


def _improper(atoms: np.ndarray) -> float:
    """Sign-carrying triple product of the four points (same sign as their dihedral)."""
    p1, p2, p3, p4 = atoms
    return float(np.dot(p2 - p1, np.cross(p3 - p2, p4 - p3)))


# --- reading ----------------------------------------------------------------------------------------


def test_read_fixture_shapes_sequence_and_time(flrh: Trajectory, trajectory_dir: Path):
    assert flrh.atom14.shape == (50, 4, 14, 3) and flrh.atom14.dtype == np.float32
    assert flrh.sequence == "FLRH" and flrh.aatype.tolist() == rc.aatype_from_sequence("FLRH").tolist()
    assert flrh.residue_index.tolist() == [0, 1, 2, 3]
    assert flrh.timestep_ps == pytest.approx(200.0)
    assert (flrh.atom14_mask == rc.ATOM14_MASK[flrh.aatype]).all()
    assert (flrh.atom14[:, ~flrh.atom14_mask] == 0).all()
    assert flrh.source == str(trajectory_dir / "FLRH.xtc")


def test_read_drops_oxt_and_logs_it(trajectory_dir: Path, caplog):
    with caplog.at_level(logging.INFO, logger="mdgen.io"):
        traj = read_trajectory(trajectory_dir / "IPGD.pdb", trajectory_dir / "IPGD.xtc")
    pdb_atoms = md.load_topology(trajectory_dir / "IPGD.pdb").n_atoms
    assert int(traj.atom14_mask.sum()) == pdb_atoms - 1
    assert [r.message for r in caplog.records if "OXT" in r.message] == [
        f"{trajectory_dir / 'IPGD.pdb'}: dropped 0 hydrogen and 1 OXT atoms"
    ]


def test_read_coordinates_match_mdtraj_in_angstrom(flrh: Trajectory, trajectory_dir: Path):
    reference = md.load(trajectory_dir / "FLRH.xtc", top=trajectory_dir / "FLRH.pdb")
    his = list(reference.topology.residues)[3]
    ne2 = next(a.index for a in his.atoms if a.name == "NE2")
    assert np.allclose(
        flrh.atom14[:, 3, rc.ATOM14_NAMES["HIS"].index("NE2")], reference.xyz[:, ne2] * 10, atol=1e-4
    )


def test_read_renames_leucine_methyls_to_iupac(flrh: Trajectory, trajectory_dir: Path):
    """The source MD names Leu CD1/CD2 the other way round; after reading, chi2 follows IUPAC."""
    names = rc.ATOM14_NAMES["LEU"]
    quad = [names.index(a) for a in ("CD1", "CB", "CG", "CD2")]
    raw = md.load(trajectory_dir / "FLRH.xtc", top=trajectory_dir / "FLRH.pdb")
    leu = {a.name: a.index for a in list(raw.topology.residues)[1].atoms}
    assert _improper(raw.xyz[0, [leu[a] for a in ("CD1", "CB", "CG", "CD2")]]) < 0
    assert all(_improper(frame[1, quad]) > 0 for frame in flrh.atom14)


def test_mdtraj_renaming_matches_read_trajectory_chi2(flrh: Trajectory, trajectory_dir: Path):
    """Evaluation reads with mdtraj: after renaming, mdtraj's Leu chi2 equals mdgen's chi2."""
    raw = md.load(trajectory_dir / "FLRH.xtc", top=trajectory_dir / "FLRH.pdb")
    renamed = rename_prochiral_atoms_to_iupac(raw)
    atom14 = torch.from_numpy(flrh.atom14).double()
    torsions, _ = torsion_angles(atom14, torch.from_numpy(flrh.aatype).expand(len(atom14), -1))
    mdgen_chi2 = torch.atan2(torsions[:, 1, 4, 0], torsions[:, 1, 4, 1]).numpy()  # Leu is residue 1
    for traj, should_agree in ((renamed, True), (raw, False)):
        indices, angles = md.compute_chi2(traj)
        leu = [i for i, quad in enumerate(indices) if traj.topology.atom(quad[0]).residue.index == 1][0]
        difference = np.angle(np.exp(1j * (angles[:, leu] - mdgen_chi2)))
        assert (np.abs(difference).max() < 1e-3) == should_agree


def test_stride_and_topology_only(trajectory_dir: Path):
    strided = read_trajectory(trajectory_dir / "RTVD.pdb", trajectory_dir / "RTVD.xtc", stride=2)
    full = read_trajectory(trajectory_dir / "RTVD.pdb", trajectory_dir / "RTVD.xtc")
    assert strided.num_frames == 25 and strided.timestep_ps == pytest.approx(400.0)
    assert np.array_equal(strided.atom14, full.atom14[::2])
    single = read_trajectory(trajectory_dir / "RTVD.pdb")
    assert single.num_frames == 1 and math.isnan(single.timestep_ps)


def test_read_dcd(tmp_path: Path, trajectory_dir: Path, flrh: Trajectory):
    md.load(trajectory_dir / "FLRH.xtc", top=trajectory_dir / "FLRH.pdb").save_dcd(str(tmp_path / "FLRH.dcd"))
    traj = read_trajectory(trajectory_dir / "FLRH.pdb", tmp_path / "FLRH.dcd")
    assert np.allclose(traj.atom14, flrh.atom14, atol=1e-3)


def test_read_h5(tmp_path: Path, trajectory_dir: Path, flrh: Trajectory):
    pytest.importorskip("tables", reason="mdtraj needs PyTables for .h5")
    md.load(trajectory_dir / "FLRH.xtc", top=trajectory_dir / "FLRH.pdb").save_hdf5(str(tmp_path / "FLRH.h5"))
    traj = read_trajectory(trajectory_dir / "FLRH.pdb", tmp_path / "FLRH.h5")
    assert np.allclose(traj.atom14, flrh.atom14, atol=1e-3) and traj.timestep_ps == pytest.approx(200.0)


# --- writing ----------------------------------------------------------------------------------------


def test_write_read_round_trip(tmp_path: Path, flrh: Trajectory):
    pdb_path, xtc_path = write_trajectory(
        tmp_path / "out" / "FLRH", flrh.atom14, flrh.aatype, timestep_ps=50.0
    )
    assert (pdb_path, xtc_path) == (tmp_path / "out" / "FLRH.pdb", tmp_path / "out" / "FLRH.xtc")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["FLRH.pdb", "FLRH.xtc"]  # no temp files
    back = read_trajectory(pdb_path, xtc_path)
    assert np.abs(back.atom14 - flrh.atom14).max() <= 0.01  # XTC stores 0.001 nm
    assert back.sequence == "FLRH" and (back.atom14_mask == flrh.atom14_mask).all()
    assert back.timestep_ps == pytest.approx(50.0)

    written = md.load(xtc_path, top=pdb_path)
    assert np.allclose(written.time, np.arange(50) * 50.0)
    pdb_residues = list(md.load_topology(pdb_path).residues)
    assert [(r.name, r.resSeq, r.chain.chain_id) for r in pdb_residues] == [
        ("PHE", 1, "A"), ("LEU", 2, "A"), ("ARG", 3, "A"), ("HIS", 4, "A")
    ]  # fmt: skip
    assert [a.name for a in pdb_residues[2].atoms] == [n for n in rc.ATOM14_NAMES["ARG"] if n]
    assert np.allclose(md.load(pdb_path).xyz[0] * 10, flrh.atom14[0][flrh.atom14_mask], atol=1e-3)


def test_write_accepts_torch_and_a_partial_mask(tmp_path: Path, flrh: Trajectory):
    mask = flrh.atom14_mask.copy()
    mask[:, 4:] = False  # backbone only
    pdb_path, xtc_path = write_trajectory(
        tmp_path / "bb",
        torch.from_numpy(flrh.atom14),
        torch.from_numpy(flrh.aatype),
        timestep_ps=1.0,
        atom14_mask=mask,
    )
    written = md.load(xtc_path, top=pdb_path)
    assert written.n_atoms == 16 and {a.name for a in written.topology.atoms} == {"N", "CA", "C", "O"}
    with pytest.raises(TrajectoryError, match=r"bb\.pdb: residue PHE1 lacks side-chain atoms \['CB', 'CG'"):
        read_trajectory(pdb_path, xtc_path)
    back = read_trajectory(pdb_path, xtc_path, allow_missing_sidechain_atoms=True)
    assert (back.atom14_mask == mask).all() and np.abs(
        back.atom14 - flrh.atom14 * mask[..., None]
    ).max() <= 0.01


def test_write_replaces_existing_files(tmp_path: Path, flrh: Trajectory):
    write_trajectory(tmp_path / "x", flrh.atom14, flrh.aatype, timestep_ps=1.0)
    write_trajectory(tmp_path / "x", flrh.atom14[:3], flrh.aatype, timestep_ps=1.0)
    assert md.load(tmp_path / "x.xtc", top=tmp_path / "x.pdb").n_frames == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a, aa, m: (np.where(np.arange(50)[:, None, None, None] == 7, np.nan, a), aa, m),
            "non-finite",
        ),
        (lambda a, aa, m: (a, np.full_like(aa, rc.UNKNOWN_AATYPE), m), "unknown residue"),
        (lambda a, aa, m: (a, aa, np.ones_like(m)), "atom14_mask"),
        (lambda a, aa, m: (a[0], aa, m), "expected atom14"),
    ],
)
def test_write_rejects_bad_input(tmp_path: Path, flrh: Trajectory, change, message):
    atom14, aatype, mask = change(flrh.atom14, flrh.aatype, flrh.atom14_mask)
    with pytest.raises(TrajectoryError, match=message) as error:
        write_trajectory(tmp_path / "bad", atom14, aatype, timestep_ps=1.0, atom14_mask=mask)
    assert "bad" in str(error.value)
    assert list(tmp_path.iterdir()) == []


# --- broken inputs ----------------------------------------------------------------------------------


def _edited_pdb(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text, f"fixture {source} changed: {old!r} not found"
    path = tmp_path / source.name
    path.write_text(text.replace(old, new, 1))
    return path


def test_missing_file(tmp_path: Path, trajectory_dir: Path):
    with pytest.raises(TrajectoryError, match=r"nothere\.xtc: file not found"):
        read_trajectory(trajectory_dir / "FLRH.pdb", tmp_path / "nothere.xtc")
    with pytest.raises(TrajectoryError, match=r"nothere\.pdb: file not found"):
        read_trajectory(tmp_path / "nothere.pdb")


def test_atom_count_mismatch_names_both_files(trajectory_dir: Path):
    with pytest.raises(TrajectoryError) as error:
        read_trajectory(trajectory_dir / "FLRH.pdb", trajectory_dir / "IPGD.xtc")
    message = str(error.value)
    assert "FLRH.pdb has 41 atoms" in message and "IPGD.xtc has 28" in message


@pytest.mark.parametrize("resname", ["MSE", "XYZ"])
def test_unknown_residue(tmp_path: Path, trajectory_dir: Path, resname: str):
    pdb = _edited_pdb(tmp_path, trajectory_dir / "IPGD.pdb", "GLY A   3", f"{resname} A   3")
    pdb.write_text(pdb.read_text().replace("GLY A   3", f"{resname} A   3"))  # every GLY atom line
    with pytest.raises(TrajectoryError, match=rf"IPGD\.pdb: non-standard residue {resname}3"):
        read_trajectory(pdb, trajectory_dir / "IPGD.xtc")


def test_atom_not_in_atom14_layout(tmp_path: Path, trajectory_dir: Path):
    pdb = _edited_pdb(tmp_path, trajectory_dir / "IPGD.pdb", " CB  ASP A   4", " CX  ASP A   4")
    with pytest.raises(TrajectoryError, match=r"IPGD\.pdb: atom CX does not belong to residue ASP4"):
        read_trajectory(pdb, trajectory_dir / "IPGD.xtc")


def test_missing_backbone_atom(tmp_path: Path, trajectory_dir: Path):
    lines = (trajectory_dir / "IPGD.pdb").read_text().splitlines(keepends=True)
    pdb = tmp_path / "IPGD.pdb"
    pdb.write_text("".join(line for line in lines if " O   GLY A   3" not in line))
    with pytest.raises(TrajectoryError, match=r"IPGD\.pdb: residue GLY3 lacks backbone atoms \['O'\]"):
        read_trajectory(pdb)


def test_nan_coordinates(tmp_path: Path, trajectory_dir: Path):
    traj = md.load(trajectory_dir / "IPGD.xtc", top=trajectory_dir / "IPGD.pdb")[:5]
    traj.xyz[3, 2] = np.nan
    traj.save_dcd(str(tmp_path / "nan.dcd"))  # DCD stores raw floats, so the NaN survives
    with pytest.raises(TrajectoryError, match=r"nan\.dcd: non-finite .* frame 3"):
        read_trajectory(trajectory_dir / "IPGD.pdb", tmp_path / "nan.dcd")


def test_unsupported_suffix_and_bad_stride(tmp_path: Path, trajectory_dir: Path):
    other = tmp_path / "IPGD.trr"
    shutil.copyfile(trajectory_dir / "IPGD.xtc", other)
    with pytest.raises(TrajectoryError, match=r"IPGD\.trr: unsupported trajectory format"):
        read_trajectory(trajectory_dir / "IPGD.pdb", other)
    with pytest.raises(TrajectoryError, match="stride must be >= 1"):
        read_trajectory(trajectory_dir / "IPGD.pdb", trajectory_dir / "IPGD.xtc", stride=0)
