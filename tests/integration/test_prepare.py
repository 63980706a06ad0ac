"""prepare (library and `python -m mdgen.prepare`) -> cache -> MDGenDataModule batches, on committed fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mdtraj
import numpy as np
import pytest
import torch

from mdgen.data.cache import list_cached_entries, open_entry
from mdgen.data.datamodule import DataSetupError, MDGenDataModule
from mdgen.data.prepare import prepare_simulations
from mdgen.data.splits import SplitRow, write_split
from mdgen.trajectory_files import read_trajectory

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAJECTORIES = REPO_ROOT / "tests" / "fixtures" / "trajectories"
ATLAS = REPO_ROOT / "tests" / "fixtures" / "atlas"
BATCH_KEYS = {
    "name",
    "frame_start",
    "frame_interval_ps",
    "rots",
    "trans",
    "torsions",
    "torsion_mask",
    "aatype",
    "residue_mask",
    "residue_index",
}


def fixture_names() -> list[str]:
    return sorted(path.stem for path in TRAJECTORIES.glob("*.pdb"))


def run_module(module: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `python -m module overrides...` the way a user does (Hydra writes its logs under cwd)."""
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def copy_fixture(name: str, sim_dir: Path, new_name: str | None = None) -> None:
    new_name = new_name or name
    sim_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TRAJECTORIES / f"{name}.pdb", sim_dir / f"{new_name}.pdb")
    shutil.copyfile(TRAJECTORIES / f"{name}.xtc", sim_dir / f"{new_name}.xtc")


def load_fixture(name: str) -> mdtraj.Trajectory:
    return mdtraj.load(str(TRAJECTORIES / f"{name}.xtc"), top=str(TRAJECTORIES / f"{name}.pdb"))


def split_from_cache(path: Path, cache_dir: Path, names=None) -> Path:
    manifests = list_cached_entries(cache_dir)
    names = names or sorted(manifests)
    return write_split(path, [SplitRow(name, manifests[name].sequence) for name in names])


def assert_batch_contract(batch: dict, batch_size: int, num_frames: int, num_residues: int) -> None:
    b, t, l = batch_size, num_frames, num_residues
    assert set(batch) == BATCH_KEYS
    assert isinstance(batch["name"], list) and len(batch["name"]) == b
    expected = {
        "frame_start": ((b,), torch.int64),
        "frame_interval_ps": ((b,), torch.float32),
        "rots": ((b, t, l, 3, 3), torch.float32),
        "trans": ((b, t, l, 3), torch.float32),
        "torsions": ((b, t, l, 7, 2), torch.float32),
        "torsion_mask": ((b, l, 7), torch.float32),
        "aatype": ((b, l), torch.int64),
        "residue_mask": ((b, l), torch.float32),
        "residue_index": ((b, l), torch.int64),
    }
    for key, (shape, dtype) in expected.items():
        assert (tuple(batch[key].shape), batch[key].dtype) == (shape, dtype), key
    # Rotations are orthonormal and torsions are unit (sin, cos) pairs wherever they exist.
    eye = torch.eye(3).expand_as(batch["rots"])
    assert torch.allclose(batch["rots"] @ batch["rots"].transpose(-1, -2), eye, atol=1e-4)
    norms = batch["torsions"].norm(dim=-1)  # (B, T, L, 7)
    present = batch["torsion_mask"][:, None].expand_as(norms) > 0
    assert torch.allclose(norms[present], torch.ones(()), atol=1e-4)


@pytest.fixture(scope="module")
def fixture_cache(tmp_path_factory) -> Path:
    """The committed fixtures prepared once through the real CLI."""
    work_dir = tmp_path_factory.mktemp("cli")
    result = run_module(
        "mdgen.prepare", f"sim_dir={TRAJECTORIES}", f"out_dir={work_dir / 'cache'}", cwd=work_dir
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(fixture_names())} prepared, 0 up to date, 0 failed" in result.stdout
    return work_dir / "cache"


# ----------------------------------------------------------------------------------- CLI -> DataModule
def test_cli_cache_feeds_datamodule_batches_with_the_documented_contract(fixture_cache, tmp_path):
    names = fixture_names()
    assert sorted(list_cached_entries(fixture_cache)) == names
    interval = list_cached_entries(fixture_cache)[names[0]].interval_ps
    split = split_from_cache(tmp_path / "all.csv", fixture_cache)
    datamodule = MDGenDataModule(
        fixture_cache, split, split, num_frames=4, frame_interval_ps=2 * interval, batch_size=2, seed=0
    )
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert_batch_contract(batch, batch_size=2, num_frames=4, num_residues=4)
    assert torch.all(batch["frame_interval_ps"] == 2 * interval)
    assert batch["residue_mask"].eq(1).all()
    val_batch = next(iter(datamodule.val_dataloader()))
    assert_batch_contract(val_batch, batch_size=2, num_frames=4, num_residues=4)


def test_cached_features_match_the_trajectory(fixture_cache):
    name = fixture_names()[0]
    trajectory = read_trajectory(TRAJECTORIES / f"{name}.pdb", TRAJECTORIES / f"{name}.xtc")
    entry = open_entry(fixture_cache, name)
    assert entry.manifest.num_frames == trajectory.num_frames
    assert entry.manifest.sequence == trajectory.sequence
    np.testing.assert_allclose(entry.trans, trajectory.atom14[:, :, 1], atol=1e-5)  # origin = CA (Å)
    np.testing.assert_allclose(entry.atom14_frame0, trajectory.atom14[0])
    np.testing.assert_array_equal(entry.aatype, trajectory.aatype)
    assert entry.manifest.sources[1].size_bytes == (TRAJECTORIES / f"{name}.xtc").stat().st_size


# ----------------------------------------------------------------------------------- bad inputs
def make_bad_entry(problem: str, sim_dir: Path) -> None:
    """Write entry BAD in the flat layout of ``sim_dir`` with one kind of defect."""
    source = load_fixture(fixture_names()[0])
    if problem == "missing file":
        shutil.copyfile(TRAJECTORIES / f"{fixture_names()[0]}.pdb", sim_dir / "BAD.pdb")  # no BAD.xtc
    elif problem == "atom count mismatch":
        source[0].save_pdb(str(sim_dir / "BAD.pdb"))
        source.atom_slice(np.arange(source.n_atoms - 1)).save_xtc(str(sim_dir / "BAD.xtc"))
    elif problem == "non-standard residue":
        source.topology.residue(1).name = "XYZ"
        source[0].save_pdb(str(sim_dir / "BAD.pdb"))
        source.save_xtc(str(sim_dir / "BAD.xtc"))
    elif problem == "non-finite":
        source[0].save_pdb(str(sim_dir / "BAD.pdb"))
        source.xyz[3, 2] = np.nan  # XTC cannot hold NaN; DCD can (and has no time stamps)
        source.save_dcd(str(sim_dir / "BAD.dcd"))
    elif problem == "too few frames":
        source[0].save_pdb(str(sim_dir / "BAD.pdb"))
        source[:3].save_xtc(str(sim_dir / "BAD.xtc"))
    else:
        raise ValueError(problem)


BAD_INPUTS = ["missing file", "atom count mismatch", "non-standard residue", "non-finite", "too few frames"]


@pytest.mark.parametrize("problem", BAD_INPUTS)
def test_bad_entry_is_reported_by_name_and_the_others_are_prepared(tmp_path, problem):
    good = fixture_names()[1]
    copy_fixture(good, tmp_path / "sims")
    make_bad_entry(problem, tmp_path / "sims")
    summary = prepare_simulations(
        tmp_path / "sims", tmp_path / "cache", min_frames=5, timestep_ps=10.0, progress=False
    )
    assert not summary.ok
    assert list(summary.failures) == ["BAD"]
    assert problem in summary.failures["BAD"]
    assert f"FAILED BAD: {summary.failures['BAD']}" in summary.report()
    assert summary.prepared == [good]
    assert sorted(list_cached_entries(tmp_path / "cache")) == [good]


def test_cli_exit_status_is_nonzero_and_every_bad_entry_is_listed(tmp_path):
    good = fixture_names()[1]
    sims = tmp_path / "sims"
    copy_fixture(good, sims)
    for index, problem in enumerate(BAD_INPUTS):
        make_bad_entry(problem, sims)
        for path in sims.glob("BAD.*"):
            path.rename(sims / f"BAD{index}{path.suffix}")
    result = run_module(
        "mdgen.prepare",
        f"sim_dir={sims}",
        f"out_dir={tmp_path / 'cache'}",
        "min_frames=5",
        "timestep_ps=10.0",
        "progress=false",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert f"1 prepared, 0 up to date, {len(BAD_INPUTS)} failed" in result.stdout
    for index, problem in enumerate(BAD_INPUTS):
        (line,) = [line for line in result.stdout.splitlines() if f"FAILED BAD{index}:" in line]
        assert problem in line
    assert sorted(list_cached_entries(tmp_path / "cache")) == [good]


# ----------------------------------------------------------------------------------- incremental runs
def test_second_run_does_no_work_and_a_deleted_entry_is_redone(tmp_path):
    names = fixture_names()
    cache = tmp_path / "cache"
    first = prepare_simulations(TRAJECTORIES, cache, progress=False)
    assert (first.prepared, first.up_to_date) == (names, [])
    second = prepare_simulations(TRAJECTORIES, cache, progress=False)
    assert (len(second.prepared), second.up_to_date) == (0, names)
    shutil.rmtree(cache / names[1])
    third = prepare_simulations(TRAJECTORIES, cache, progress=False)
    assert third.prepared == [names[1]]
    assert third.up_to_date == [names[0], names[2]]


def test_changed_source_or_interval_is_prepared_again(tmp_path):
    name = fixture_names()[0]
    copy_fixture(name, tmp_path / "sims")
    cache = tmp_path / "cache"
    prepare_simulations(tmp_path / "sims", cache, progress=False)
    interval = list_cached_entries(cache)[name].interval_ps
    xtc = tmp_path / "sims" / f"{name}.xtc"
    os.utime(xtc, ns=(time.time_ns(), xtc.stat().st_mtime_ns + 10**9))
    assert prepare_simulations(tmp_path / "sims", cache, progress=False).prepared == [name]
    coarser = prepare_simulations(tmp_path / "sims", cache, interval_ps=2 * interval, progress=False)
    assert coarser.prepared == [name]
    manifest = list_cached_entries(cache)[name]
    assert manifest.interval_ps == pytest.approx(2 * interval)
    assert manifest.num_frames == (load_fixture(name).n_frames + 1) // 2


def test_interval_that_is_not_a_whole_multiple_fails_with_a_clear_message(tmp_path):
    name = fixture_names()[0]
    copy_fixture(name, tmp_path / "sims")
    interval = read_trajectory(TRAJECTORIES / f"{name}.pdb", TRAJECTORIES / f"{name}.xtc").timestep_ps
    summary = prepare_simulations(
        tmp_path / "sims", tmp_path / "cache", interval_ps=1.5 * interval, progress=False
    )
    assert f"interval_ps={1.5 * interval} ps is not a whole multiple" in summary.failures[name]


def test_parallel_workers_write_the_same_cache(tmp_path):
    serial = prepare_simulations(TRAJECTORIES, tmp_path / "serial", progress=False)
    parallel = prepare_simulations(TRAJECTORIES, tmp_path / "parallel", num_workers=2, progress=False)
    assert parallel.prepared == serial.prepared == fixture_names()
    for name in fixture_names():
        a, b = open_entry(tmp_path / "serial", name), open_entry(tmp_path / "parallel", name)
        np.testing.assert_array_equal(a.rots, b.rots)
        np.testing.assert_array_equal(a.torsions, b.torsions)


# ----------------------------------------------------------------------------------- DataModule.prepare_data
def test_prepare_data_builds_the_cache_from_sim_dir(tmp_path):
    names = fixture_names()
    sims = tmp_path / "md"
    for name in names:
        (sims / name).mkdir(parents=True)
        shutil.copyfile(TRAJECTORIES / f"{name}.pdb", sims / name / f"{name}.pdb")
        shutil.copyfile(TRAJECTORIES / f"{name}.xtc", sims / name / f"{name}.xtc")
    rows = [SplitRow(name, read_trajectory(sims / name / f"{name}.pdb").sequence) for name in names]
    train = write_split(tmp_path / "train.csv", rows[:2])
    val = write_split(tmp_path / "val.csv", rows[2:])
    interval = load_fixture(names[0]).timestep
    datamodule = MDGenDataModule(
        tmp_path / "cache", train, val, num_frames=3, frame_interval_ps=interval, batch_size=2, sim_dir=sims
    )
    with pytest.raises(DataSetupError, match="not in the cache"):
        datamodule.setup("fit")
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert sorted(list_cached_entries(tmp_path / "cache")) == names
    assert len(datamodule.datasets["val"]) == 1
    assert next(iter(datamodule.val_dataloader()))["name"] == [names[2]]


# ----------------------------------------------------------------------------------- ATLAS layout
@pytest.fixture(scope="module")
def atlas_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("atlas") / "cache"
    summary = prepare_simulations(ATLAS, cache, progress=False)
    assert summary.ok, summary.report()
    return cache


def atlas_datamodule(cache: Path, tmp_path: Path, crop: int) -> MDGenDataModule:
    chains = sorted(path.name for path in ATLAS.iterdir() if path.is_dir())
    manifests = list_cached_entries(cache)
    split = write_split(tmp_path / "atlas.csv", [SplitRow(c, manifests[f"{c}_R1"].sequence) for c in chains])
    datamodule = MDGenDataModule(
        cache,
        split,
        split,
        num_frames=5,
        frame_interval_ps=20.0,
        batch_size=4,
        replicas=(1, 2, 3),
        crop=crop,
        train_repeat=12,
        val_repeat=2,
        seed=7,
    )
    datamodule.setup("fit")
    return datamodule


def test_atlas_replicas_are_separate_entries(atlas_cache):
    chains = sorted(path.name for path in ATLAS.iterdir() if path.is_dir())
    assert sorted(list_cached_entries(atlas_cache)) == [f"{c}_R{i}" for c in chains for i in (1, 2, 3)]
    replicas = [open_entry(atlas_cache, f"{chains[0]}_R{i}") for i in (1, 2, 3)]
    assert replicas[0].manifest.interval_ps == pytest.approx(10.0)
    assert not np.allclose(replicas[0].trans, replicas[1].trans)


def test_atlas_items_pick_a_replica_and_crop_contiguous_residues(atlas_cache, tmp_path):
    datamodule = atlas_datamodule(atlas_cache, tmp_path, crop=2)
    batches = list(datamodule.train_dataloader())
    names = [name for batch in batches for name in batch["name"]]
    assert {name.rsplit("_", 1)[1] for name in names} == {"R1", "R2", "R3"}
    offsets = set()
    for batch in batches:
        assert_batch_contract(batch, len(batch["name"]), num_frames=5, num_residues=2)
        assert batch["residue_mask"].eq(1).all()
        assert torch.all(batch["residue_index"][:, 1] == batch["residue_index"][:, 0] + 1)
        offsets |= set(batch["residue_index"][:, 0].tolist())
    assert offsets == {0, 1, 2}  # every crop of 2 out of 4 residues


def test_atlas_short_chains_are_padded_and_masked(atlas_cache, tmp_path):
    datamodule = atlas_datamodule(atlas_cache, tmp_path, crop=6)
    batch = next(iter(datamodule.val_dataloader()))
    assert_batch_contract(batch, 4, num_frames=5, num_residues=6)
    assert batch["residue_mask"].tolist() == [[1, 1, 1, 1, 0, 0]] * 4
    assert batch["aatype"][:, 4:].eq(0).all() and batch["torsion_mask"][:, 4:].eq(0).all()
    assert batch["trans"][:, :, 4:].eq(0).all()
    assert torch.equal(batch["rots"][:, :, 4:], torch.eye(3).expand(4, 5, 2, 3, 3))
    assert batch["residue_index"][:, :4].tolist() == [[0, 1, 2, 3]] * 4


# ----------------------------------------------------------------------------------- simulate -> prepare -> batch
# Slow (22 s: two Python processes and real MD): `make test` keeps simulate's layout test and prepare's
# tests on committed MD; this chains them through the real commands in `make test-full`.
@pytest.mark.slow
@pytest.mark.skipif(
    not (REPO_ROOT / "src" / "mdgen" / "simulate.py").is_file(), reason="mdgen.simulate not written yet"
)
def test_simulation_to_prepare_to_batch_end_to_end(tmp_path):
    simulated = run_module(
        "mdgen.simulate",
        "sequences=[AKIR]",
        f"out_dir={tmp_path / 'md'}",
        "length_ns=0.02",
        "save_interval_ps=10.0",
        "equilibration_ps=2.0",
        "minimization_max_iterations=100",
        "progress=false",
        cwd=tmp_path,
    )
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    prepared = run_module(
        "mdgen.prepare", f"sim_dir={tmp_path / 'md'}", f"out_dir={tmp_path / 'cache'}", cwd=tmp_path
    )
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    manifest = list_cached_entries(tmp_path / "cache")["AKIR"]
    assert manifest.interval_ps == pytest.approx(10.0) and manifest.num_frames == 2
    split = split_from_cache(tmp_path / "split.csv", tmp_path / "cache")
    datamodule = MDGenDataModule(
        tmp_path / "cache", split, split, num_frames=2, frame_interval_ps=10.0, batch_size=1
    )
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert_batch_contract(batch, batch_size=1, num_frames=2, num_residues=4)
    assert batch["name"] == ["AKIR"] and int(batch["frame_start"][0]) == 0


# ----------------------------------------------------------------------------------- shared data (slow)
@pytest.mark.slow
@pytest.mark.parametrize(("suffix", "interval_ps"), [("", None), ("_fine", 0.1)])
def test_all_shared_tetrapeptides_prepare(shared_tetrapeptides, tmp_path, suffix, interval_ps):
    summary = prepare_simulations(
        shared_tetrapeptides,
        tmp_path / "cache",
        trajectory_suffix=suffix,
        interval_ps=interval_ps,
        num_workers=2,
        progress=False,
    )
    assert summary.ok, summary.report()
    assert len(summary.prepared) == len([p for p in shared_tetrapeptides.iterdir() if p.is_dir()])


def test_cli_names_come_from_names_and_split(tmp_path):
    from omegaconf import OmegaConf

    from mdgen.prepare import _requested_names

    split = write_split(tmp_path / "split.csv", [SplitRow("IPGD", "IPGD"), SplitRow("RTVD", "RTVD")])
    assert _requested_names(OmegaConf.create({"names": None, "split": None})) is None
    assert _requested_names(OmegaConf.create({"names": "FLRH", "split": None})) == ["FLRH"]
    both = OmegaConf.create({"names": ["FLRH", "RTVD"], "split": str(split)})
    assert _requested_names(both) == ["FLRH", "RTVD", "IPGD"]
