"""MDGenDataModule with several simulation directories: each split name prepared from the one holding it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mdgen.data.cache import list_cached_entries
from mdgen.data.datamodule import MDGenDataModule
from mdgen.data.sim_dir_layouts import LayoutError, assign_to_sim_dirs
from mdgen.data.splits import SplitRow, write_split
from mdgen.trajectory_files import read_trajectory

TRAJECTORIES = Path(__file__).resolve().parents[1] / "fixtures" / "trajectories"


def flat_dir(root: Path, names: list[str]) -> Path:
    root.mkdir()
    for name in names:
        for suffix in (".pdb", ".xtc"):
            shutil.copy(TRAJECTORIES / f"{name}{suffix}", root / f"{name}{suffix}")
    return root


def split_of(path: Path, names: list[str]) -> Path:
    rows = [SplitRow(name, read_trajectory(TRAJECTORIES / f"{name}.pdb").sequence) for name in names]
    write_split(path, rows)
    return path


def test_names_are_assigned_to_the_directory_that_holds_them(tmp_path):
    first = flat_dir(tmp_path / "a", ["FLRH"])
    second = flat_dir(tmp_path / "b", ["IPGD", "RTVD"])
    assigned = assign_to_sim_dirs([first, second], ["RTVD", "FLRH", "IPGD"])
    assert assigned == {first: ["FLRH"], second: ["RTVD", "IPGD"]}
    with pytest.raises(LayoutError, match="none of the simulation directories.*AAAA"):
        assign_to_sim_dirs([first, second], ["FLRH", "AAAA"])
    shutil.copy(TRAJECTORIES / "FLRH.pdb", second / "FLRH.pdb")
    with pytest.raises(LayoutError, match="more than one.*FLRH"):
        assign_to_sim_dirs([first, second], ["FLRH"])


def test_datamodule_prepares_splits_drawn_from_two_directories(tmp_path):
    first = flat_dir(tmp_path / "a", ["FLRH"])
    second = flat_dir(tmp_path / "b", ["IPGD", "RTVD"])
    train = split_of(tmp_path / "train.csv", ["FLRH", "IPGD"])
    val = split_of(tmp_path / "val.csv", ["RTVD"])
    datamodule = MDGenDataModule(
        tmp_path / "cache",
        train,
        val,
        num_frames=3,
        frame_interval_ps=200.0,
        batch_size=2,
        sim_dir=[str(first), str(second)],
        layout="flat",
    )
    datamodule.prepare_data()
    assert sorted(list_cached_entries(tmp_path / "cache")) == ["FLRH", "IPGD", "RTVD"]
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert sorted(batch["name"]) == ["FLRH", "IPGD"]
