"""Cache format, split CSVs and layout discovery (no MD files are read)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from mdgen.data.cache import (
    CACHE_FORMAT_VERSION,
    CacheError,
    EntryManifest,
    EntryWriter,
    SourceFile,
    list_cached_entries,
    open_entry,
    read_manifest,
)
from mdgen.data.sim_dir_layouts import LayoutError, detect_layout, discover_entries
from mdgen.data.splits import SplitError, SplitRow, read_split, write_split


def make_manifest(name="AAAA", num_frames=5, num_residues=4, interval_ps=10.0) -> EntryManifest:
    return EntryManifest(
        name=name,
        sequence="A" * num_residues,
        num_frames=num_frames,
        num_residues=num_residues,
        interval_ps=interval_ps,
        source_interval_ps=interval_ps,
        timestep_from_config=False,
        sources=(SourceFile("/data/AAAA.pdb", 100, 1), SourceFile("/data/AAAA.xtc", 2000, 2)),
    )


def write_entry(cache_dir, manifest: EntryManifest):
    n, l = manifest.num_frames, manifest.num_residues
    with EntryWriter(cache_dir, manifest.name, n, l) as writer:
        writer.rots[:] = np.eye(3, dtype=np.float32)
        writer.trans[:] = np.arange(n, dtype=np.float32)[:, None, None]
        writer.torsions[:] = 0.5
        return writer.commit(
            manifest,
            aatype=np.zeros(l, dtype=np.int64),
            residue_index=np.arange(l),
            torsion_mask=np.ones((l, 7), dtype=bool),
            atom14_frame0=np.zeros((l, 14, 3), dtype=np.float32),
            atom14_mask=np.ones((l, 14), dtype=bool),
        )


# ----------------------------------------------------------------------------------- manifest / writer
def test_manifest_round_trips_through_json():
    manifest = make_manifest()
    assert EntryManifest.from_json(manifest.to_json(), origin="test") == manifest
    assert json.loads(manifest.to_json())["format_version"] == CACHE_FORMAT_VERSION


def test_unreadable_manifest_names_the_file(tmp_path):
    (tmp_path / "AAAA").mkdir()
    (tmp_path / "AAAA" / "manifest.json").write_text("{not json")
    with pytest.raises(CacheError, match="AAAA/manifest.json"):
        read_manifest(tmp_path / "AAAA")


def test_committed_entry_is_listed_and_memory_mapped(tmp_path):
    manifest = make_manifest()
    write_entry(tmp_path, manifest)
    assert list_cached_entries(tmp_path) == {"AAAA": manifest}
    entry = open_entry(tmp_path, "AAAA")
    assert isinstance(entry.rots, np.memmap)
    assert entry.rots.shape == (5, 4, 3, 3) and entry.rots.dtype == np.float32
    assert entry.trans[3, 0, 0] == 3.0
    assert entry.torsions.shape == (5, 4, 7, 2)


def test_failed_write_leaves_nothing_that_looks_finished(tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        with EntryWriter(tmp_path, "AAAA", 5, 4):
            raise RuntimeError("crash while featurizing")
    assert list(tmp_path.iterdir()) == []


def test_unfinished_temporary_directory_is_ignored(tmp_path):
    writer = EntryWriter(tmp_path, "AAAA", 5, 4)  # never committed: a crash before commit
    (writer.work_dir / "manifest.json").write_text(make_manifest().to_json())
    assert ".tmp-" in writer.work_dir.name
    assert list_cached_entries(tmp_path) == {}


def test_commit_replaces_a_stale_entry(tmp_path):
    write_entry(tmp_path, make_manifest(num_frames=5))
    write_entry(tmp_path, make_manifest(num_frames=7))
    assert open_entry(tmp_path, "AAAA").rots.shape[0] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["AAAA"]


def test_array_inconsistent_with_manifest_is_an_error(tmp_path):
    entry_dir = write_entry(tmp_path, make_manifest())
    np.save(entry_dir / "trans.npy", np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(CacheError, match=r"AAAA: trans.npy has shape \(4, 4, 3\)"):
        open_entry(tmp_path, "AAAA")


def test_other_format_version_is_rejected(tmp_path):
    write_entry(tmp_path, replace(make_manifest(), format_version=CACHE_FORMAT_VERSION + 1))
    with pytest.raises(CacheError, match="format version"):
        open_entry(tmp_path, "AAAA")


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "AAAA.tmp-1"])
def test_entry_names_must_be_plain_directory_names(tmp_path, name):
    with pytest.raises(CacheError, match="invalid cache entry name"):
        EntryWriter(tmp_path, name, 1, 1)


# ----------------------------------------------------------------------------------- splits
def test_split_round_trip(tmp_path):
    rows = [SplitRow("AAAA", "AAAA"), SplitRow("FLRH", "FLRH")]
    assert read_split(write_split(tmp_path / "s.csv", rows)) == rows


def test_published_atlas_split_format_is_read(tmp_path):
    path = tmp_path / "atlas_test.csv"
    path.write_text("name,seqres,release_date,msa_id,seqlen\n6o2v_A,MKVL,2019-05-01,6o2v_A,4\n")
    assert read_split(path) == [SplitRow("6o2v_A", "MKVL")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name\nAAAA\n", "missing column"),
        ("name,seqres\nAAAA,AAAA\nAAAA,AAAA\n", "line 3: 'AAAA' already listed on line 2"),
        ("name,seqres\n,AAAA\n", "line 2: empty name"),
        ("name,seqres\n", "lists no entries"),
    ],
)
def test_malformed_split_names_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SplitError, match=problem) as error:
        read_split(path)
    assert "bad.csv" in str(error.value)


# ----------------------------------------------------------------------------------- layouts
def touch(*paths):
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def test_tetrapeptide_layout_with_suffix(tmp_path):
    touch(tmp_path / "AAAA/AAAA.pdb", tmp_path / "AAAA/AAAA.xtc", tmp_path / "AAAA/AAAA_fine.xtc")
    touch(tmp_path / "FLRH.tmp/FLRH.pdb")  # a simulation still running: not an entry
    assert detect_layout(tmp_path) == "tetrapeptide"
    (entry,) = discover_entries(tmp_path, trajectory_suffix="_fine")
    assert entry.name == "AAAA" and entry.trajectory_path == tmp_path / "AAAA/AAAA_fine.xtc"


def test_flat_layout_prefers_xtc_and_falls_back_to_dcd(tmp_path):
    touch(tmp_path / "AAAA.pdb", tmp_path / "AAAA.xtc", tmp_path / "FLRH.pdb", tmp_path / "FLRH.dcd")
    entries = discover_entries(tmp_path)
    assert detect_layout(tmp_path) == "flat"
    assert [(e.name, e.trajectory_path.name) for e in entries] == [("AAAA", "AAAA.xtc"), ("FLRH", "FLRH.dcd")]


def test_atlas_layout_gives_one_entry_per_replica(tmp_path):
    touch(tmp_path / "6o2v_A/6o2v_A.pdb", *(tmp_path / f"6o2v_A/6o2v_A_prod_R{i}_fit.xtc" for i in (1, 2, 3)))
    entries = discover_entries(tmp_path)
    assert [e.name for e in entries] == ["6o2v_A_R1", "6o2v_A_R2", "6o2v_A_R3"]
    assert entries[1].trajectory_path.name == "6o2v_A_prod_R2_fit.xtc"
    assert {e.topology_path.name for e in entries} == {"6o2v_A.pdb"}


def test_requested_names_without_files_are_still_entries(tmp_path):
    touch(tmp_path / "AAAA/AAAA.pdb", tmp_path / "AAAA/AAAA.xtc")
    entries = discover_entries(tmp_path, names=["AAAA", "WWWW"], layout="tetrapeptide")
    assert [e.name for e in entries] == ["AAAA", "WWWW"]
    assert not entries[1].topology_path.exists()  # prepare reports it as missing


def test_ambiguous_or_empty_directories_are_errors(tmp_path):
    with pytest.raises(LayoutError, match="no simulations found"):
        detect_layout(tmp_path)
    touch(tmp_path / "AAAA.pdb", tmp_path / "FLRH/FLRH.pdb")
    with pytest.raises(LayoutError, match="both PDB files"):
        detect_layout(tmp_path)
    with pytest.raises(LayoutError, match="does not exist"):
        discover_entries(tmp_path / "missing")
    with pytest.raises(LayoutError, match="trajectory_suffix"):
        discover_entries(tmp_path, layout="atlas", trajectory_suffix="_fine")
