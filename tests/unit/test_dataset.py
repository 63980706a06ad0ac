"""Window datasets and the DataModule on a synthetic cache (trans encodes frame and residue numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from mdgen.data.cache import EntryManifest, EntryWriter, SourceFile
from mdgen.data.datamodule import DataSetupError, MDGenDataModule
from mdgen.data.dataset import (
    FixedWindowDataset,
    TrainWindowDataset,
    WindowError,
    collate_windows,
    num_window_starts,
)
from mdgen.data.splits import SplitRow, write_split
from mdgen.timesteps import TimeStepError

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


def write_synthetic_entry(cache_dir, name, num_frames, num_residues, interval_ps=10.0):
    """trans[f, r] = (f, r, 0) Å so that a window's frames and residues can be read back."""
    manifest = EntryManifest(
        name=name,
        sequence="A" * num_residues,
        num_frames=num_frames,
        num_residues=num_residues,
        interval_ps=interval_ps,
        source_interval_ps=interval_ps,
        timestep_from_config=False,
        sources=(SourceFile(f"/sim/{name}.pdb", 1, 1), SourceFile(f"/sim/{name}.xtc", 1, 1)),
    )
    with EntryWriter(cache_dir, name, num_frames, num_residues) as writer:
        frames, residues = np.meshgrid(np.arange(num_frames), np.arange(num_residues), indexing="ij")
        writer.trans[:] = np.stack([frames, residues, np.zeros_like(frames)], axis=-1)
        writer.rots[:] = np.eye(3, dtype=np.float32)
        writer.torsions[:] = 0.25
        writer.commit(
            manifest,
            aatype=np.full(num_residues, 7),
            residue_index=np.arange(num_residues),
            torsion_mask=np.ones((num_residues, 7), dtype=bool),
            atom14_frame0=np.zeros((num_residues, 14, 3), dtype=np.float32),
            atom14_mask=np.ones((num_residues, 14), dtype=bool),
        )


@pytest.fixture
def peptide_cache(tmp_path):
    """Six 4-residue peptides, 30 frames at 10 ps, with train/val split CSVs."""
    cache_dir = tmp_path / "cache"
    names = ["AAAA", "CCCC", "DDDD", "EEEE", "FFFF", "GGGG"]
    for name in names:
        write_synthetic_entry(cache_dir, name, num_frames=30, num_residues=4)
    train = write_split(tmp_path / "train.csv", [SplitRow(n, "AAAA") for n in names[:4]])
    val = write_split(tmp_path / "val.csv", [SplitRow(n, "AAAA") for n in names[4:]])
    return cache_dir, train, val


def make_datamodule(peptide_cache, **overrides) -> MDGenDataModule:
    cache_dir, train, val = peptide_cache
    options = dict(num_frames=5, frame_interval_ps=20.0, batch_size=2, seed=3, train_repeat=3, val_repeat=2)
    options.update(overrides)
    datamodule = MDGenDataModule(cache_dir, train, val, **options)
    datamodule.setup("fit")
    return datamodule


def epoch_batches(loader) -> list[tuple]:
    return [(tuple(b["name"]), tuple(b["frame_start"].tolist())) for b in loader]


# ----------------------------------------------------------------------------------- window arithmetic
def test_number_of_window_starts_includes_the_last_one():
    assert num_window_starts(10, 10, 1, "AAAA") == 1  # exactly one window fits
    assert num_window_starts(10, 4, 3, "AAAA") == 1  # frames 0, 3, 6, 9
    assert num_window_starts(12, 4, 3, "AAAA") == 3
    with pytest.raises(WindowError, match="entry AAAA: 9 cached frames"):
        num_window_starts(9, 4, 3, "AAAA")


def test_every_valid_start_is_drawn_including_the_last(tmp_path):
    write_synthetic_entry(tmp_path, "AAAA", num_frames=7, num_residues=4)
    dataset = TrainWindowDataset(tmp_path, [["AAAA"]], num_frames=3, frame_interval_ps=20.0, repeat=20)
    starts = set()
    for epoch in range(5):
        dataset.set_epoch(epoch)
        starts |= {int(dataset[i]["frame_start"]) for i in range(len(dataset))}
    assert starts == {0, 1, 2}  # frames s, s+2, s+4 <= 6


def test_trajectory_with_exactly_num_frames_gives_one_window(tmp_path):
    write_synthetic_entry(tmp_path, "AAAA", num_frames=5, num_residues=4)
    dataset = TrainWindowDataset(tmp_path, [["AAAA"]], num_frames=5, frame_interval_ps=10.0)
    item = dataset[0]
    assert int(item["frame_start"]) == 0
    assert item["trans"][:, 0, 0].tolist() == [0, 1, 2, 3, 4]


def test_too_short_entry_is_named_when_the_dataset_is_built(tmp_path):
    write_synthetic_entry(tmp_path, "AAAA", num_frames=4, num_residues=4)
    with pytest.raises(WindowError, match="entry AAAA: 4 cached frames"):
        TrainWindowDataset(tmp_path, [["AAAA"]], num_frames=5, frame_interval_ps=10.0)


def test_window_holds_strided_frames_and_documented_types(tmp_path):
    write_synthetic_entry(tmp_path, "AAAA", num_frames=30, num_residues=4)
    dataset = FixedWindowDataset(tmp_path, [["AAAA"]], num_frames=4, frame_interval_ps=30.0, seed=1)
    item = dataset[0]
    start = int(item["frame_start"])
    assert item["trans"][:, 0, 0].tolist() == [start, start + 3, start + 6, start + 9]
    assert float(item["frame_interval_ps"]) == 30.0
    assert item["rots"].shape == (4, 4, 3, 3) and item["rots"].dtype == torch.float32
    assert item["torsions"].shape == (4, 4, 7, 2) and item["torsion_mask"].dtype == torch.float32
    assert item["aatype"].dtype == torch.int64 and item["residue_index"].dtype == torch.int64


# ----------------------------------------------------------------------------------- crop and padding
def test_crop_keeps_contiguous_residues_and_their_chain_index(tmp_path):
    write_synthetic_entry(tmp_path, "LONG", num_frames=5, num_residues=10)
    dataset = TrainWindowDataset(
        tmp_path, [["LONG"]], num_frames=2, frame_interval_ps=10.0, crop=4, repeat=50
    )
    offsets = set()
    for index in range(len(dataset)):
        item = dataset[index]
        first = int(item["residue_index"][0])
        assert item["residue_index"].tolist() == list(range(first, first + 4))
        assert item["trans"][0, :, 1].tolist() == list(range(first, first + 4))
        assert item["residue_mask"].tolist() == [1, 1, 1, 1]
        offsets.add(first)
    assert offsets == set(range(7))  # every crop offset, the last (6) included


def test_short_chain_is_padded_with_masked_identity_residues(tmp_path):
    write_synthetic_entry(tmp_path, "AAAA", num_frames=5, num_residues=4)
    item = TrainWindowDataset(tmp_path, [["AAAA"]], num_frames=2, frame_interval_ps=10.0, crop=6)[0]
    assert item["residue_mask"].tolist() == [1, 1, 1, 1, 0, 0]
    assert torch.equal(item["rots"][:, 4:], torch.eye(3).expand(2, 2, 3, 3))
    assert not item["trans"][:, 4:].any() and not item["torsions"][:, 4:].any()
    assert not item["torsion_mask"][4:].any()
    assert item["aatype"].tolist() == [7, 7, 7, 7, 0, 0]
    assert item["residue_index"][:4].tolist() == [0, 1, 2, 3]


def test_collate_pads_to_the_longest_chain_without_crop(tmp_path):
    write_synthetic_entry(tmp_path, "AAAA", num_frames=5, num_residues=4)
    write_synthetic_entry(tmp_path, "LONG", num_frames=5, num_residues=6)
    dataset = FixedWindowDataset(tmp_path, [["AAAA"], ["LONG"]], num_frames=2, frame_interval_ps=10.0)
    batch = collate_windows([dataset[0], dataset[1]])
    assert batch["name"] == ["AAAA", "LONG"]
    assert batch["rots"].shape == (2, 2, 6, 3, 3)
    assert batch["residue_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]


# ----------------------------------------------------------------------------------- replicas
def test_replica_is_drawn_per_item(tmp_path):
    for replica in (1, 2, 3):
        write_synthetic_entry(tmp_path, f"6o2v_A_R{replica}", num_frames=5, num_residues=4)
    groups = [["6o2v_A_R1", "6o2v_A_R2", "6o2v_A_R3"]]
    dataset = TrainWindowDataset(tmp_path, groups, num_frames=2, frame_interval_ps=10.0, repeat=30)
    assert {dataset[i]["name"] for i in range(len(dataset))} == set(groups[0])


# ----------------------------------------------------------------------------------- reproducibility
def test_same_seed_same_batches_and_new_windows_each_epoch(peptide_cache):
    first, second = make_datamodule(peptide_cache), make_datamodule(peptide_cache)
    loader_a, loader_b = first.train_dataloader(), second.train_dataloader()
    epochs_a = [epoch_batches(loader_a) for _ in range(2)]
    epochs_b = [epoch_batches(loader_b) for _ in range(2)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1]
    other_seed = make_datamodule(peptide_cache, seed=4).train_dataloader()
    assert epoch_batches(other_seed) != epochs_a[0]


def test_batches_do_not_depend_on_num_workers(peptide_cache):
    in_process = make_datamodule(peptide_cache, num_workers=0).train_dataloader()
    two_workers = make_datamodule(peptide_cache, num_workers=2).train_dataloader()
    two_workers_again = make_datamodule(peptide_cache, num_workers=2).train_dataloader()
    reference = [epoch_batches(in_process) for _ in range(2)]
    assert [epoch_batches(two_workers) for _ in range(2)] == reference
    assert [epoch_batches(two_workers_again) for _ in range(2)] == reference


def test_persistent_workers_see_the_new_epoch(peptide_cache):
    reference = make_datamodule(peptide_cache).train_dataloader()
    persistent = make_datamodule(peptide_cache, num_workers=2, persistent_workers=True).train_dataloader()
    expected = [epoch_batches(reference) for _ in range(2)]
    assert [epoch_batches(persistent) for _ in range(2)] == expected
    assert expected[0] != expected[1]


def test_validation_windows_are_the_same_every_epoch(peptide_cache):
    datamodule = make_datamodule(peptide_cache)
    loader = datamodule.val_dataloader()
    first = epoch_batches(loader)
    datamodule.train_dataloader()  # training epochs must not move validation windows
    assert epoch_batches(loader) == first
    assert [name for names, _ in first for name in names] == ["FFFF", "FFFF", "GGGG", "GGGG"]


def test_two_ranks_get_disjoint_shards_covering_the_data(peptide_cache):
    dataset = make_datamodule(peptide_cache).datasets["train"]  # 4 peptides x 3 windows
    shards = []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        shards.append(list(sampler))
    assert set(shards[0]).isdisjoint(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(len(dataset)))
    windows = [[(dataset[i]["name"], int(dataset[i]["frame_start"])) for i in shard] for shard in shards]
    assert windows[0] != windows[1]


def test_lightning_sampler_injection_keeps_the_epoch_logic(peptide_cache):
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities.data import _update_dataloader  # what Lightning runs under DDP

    datamodule = make_datamodule(peptide_cache)
    loader = datamodule.train_dataloader()
    sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=1, shuffle=True, seed=0)
    injected = _update_dataloader(loader, sampler, mode=RunningStage.TRAINING)
    assert injected.sampler is sampler and type(injected) is type(loader)
    names = [name for batch in injected for name in batch["name"]]
    assert len(names) == len(loader.dataset) // 2
    assert injected.dataset.epoch == 0 and injected.epoch_fn == loader.epoch_fn


# ----------------------------------------------------------------------------------- DataModule checks
def test_batch_has_the_documented_keys_shapes_and_dtypes(peptide_cache):
    batch = next(iter(make_datamodule(peptide_cache).train_dataloader()))
    assert set(batch) == BATCH_KEYS
    assert len(batch["name"]) == 2
    expected = {
        "frame_start": ((2,), torch.int64),
        "frame_interval_ps": ((2,), torch.float32),
        "rots": ((2, 5, 4, 3, 3), torch.float32),
        "trans": ((2, 5, 4, 3), torch.float32),
        "torsions": ((2, 5, 4, 7, 2), torch.float32),
        "torsion_mask": ((2, 4, 7), torch.float32),
        "aatype": ((2, 4), torch.int64),
        "residue_mask": ((2, 4), torch.float32),
        "residue_index": ((2, 4), torch.int64),
    }
    for key, (shape, dtype) in expected.items():
        assert (tuple(batch[key].shape), batch[key].dtype) == (shape, dtype), key


def test_setup_lists_split_names_missing_from_the_cache(peptide_cache, tmp_path):
    cache_dir, train, _ = peptide_cache
    val = write_split(tmp_path / "val_missing.csv", [SplitRow("WWWW", "WWWW"), SplitRow("YYYY", "YYYY")])
    datamodule = MDGenDataModule(cache_dir, train, val, num_frames=5, frame_interval_ps=10.0, batch_size=2)
    with pytest.raises(DataSetupError, match=r"2 split entries .*WWWW \(val\), YYYY \(val\)"):
        datamodule.setup("fit")


def test_setup_rejects_a_split_sequence_that_differs_from_the_cache(peptide_cache, tmp_path):
    cache_dir, train, _ = peptide_cache
    val = write_split(tmp_path / "val_wrong.csv", [SplitRow("FFFF", "FFFF")])  # cached sequence is AAAA
    datamodule = MDGenDataModule(cache_dir, train, val, num_frames=5, frame_interval_ps=10.0, batch_size=2)
    with pytest.raises(DataSetupError, match="FFFF: split 'FFFF', cache 'AAAA'"):
        datamodule.setup("fit")


def test_interval_that_is_not_a_multiple_of_the_cache_names_the_entry(peptide_cache):
    with pytest.raises(TimeStepError, match="entry AAAA: frame_interval_ps=25.0 ps is not a whole multiple"):
        make_datamodule(peptide_cache, frame_interval_ps=25.0)


def test_global_batch_size_counts_devices_and_accumulation(peptide_cache):
    class FakeTrainer:
        world_size, accumulate_grad_batches, current_epoch = 4, 2, 0

    datamodule = make_datamodule(peptide_cache)
    assert datamodule.global_batch_size == 2
    datamodule.trainer = FakeTrainer()
    datamodule.setup("fit")
    assert datamodule.global_batch_size == 2 * 4 * 2


def test_trainer_epoch_drives_the_training_windows(peptide_cache):
    class FakeTrainer:
        world_size, accumulate_grad_batches, current_epoch = 1, 1, 0

    datamodule = make_datamodule(peptide_cache)
    datamodule.trainer = FakeTrainer()
    loader = datamodule.train_dataloader()
    epoch0 = epoch_batches(loader)
    assert epoch_batches(loader) == epoch0  # same trainer epoch: same windows (e.g. after a resume)
    FakeTrainer.current_epoch = 1
    assert epoch_batches(loader) != epoch0


def test_plain_dataloader_over_fixed_windows_is_deterministic(peptide_cache):
    dataset = make_datamodule(peptide_cache).datasets["val"]
    loader = DataLoader(dataset, batch_size=3, collate_fn=collate_windows)
    assert epoch_batches(loader) == epoch_batches(loader)


def test_real_trainer_epochs_are_reproducible(peptide_cache):
    import lightning.pytorch as pl

    class RecordWindows(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(()))
            self.seen = []

        def training_step(self, batch, batch_idx):
            self.seen.append((self.current_epoch, tuple(batch["name"]), tuple(batch["frame_start"].tolist())))
            return (self.weight - batch["trans"].mean()) ** 2

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    def fit() -> list:
        module = RecordWindows()
        trainer = pl.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
        )
        trainer.fit(module, datamodule=make_datamodule(peptide_cache))
        return module.seen

    first = fit()
    assert fit() == first
    epoch0 = [windows for epoch, *windows in first if epoch == 0]
    epoch1 = [windows for epoch, *windows in first if epoch == 1]
    assert len(epoch0) == len(epoch1) == 6  # 4 peptides x 3 windows / batch 2
    assert epoch0 != epoch1
