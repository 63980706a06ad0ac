"""``MDGenDataModule``: split CSVs + trajectory cache -> batches of trajectory windows.

Batch (``B`` = ``batch_size`` per device, ``T`` = ``num_frames``, ``L`` = residues: ``crop`` when set,
else the longest chain of the batch; padded residues have ``residue_mask`` 0):

| key                 | shape           | dtype / unit                                           |
|---------------------|-----------------|--------------------------------------------------------|
| `name`              | list of B str   | cache entry (`NAME`, or `NAME_R{i}` for ATLAS replicas) |
| `frame_start`       | (B,)            | int64, index in the cached trajectory                  |
| `frame_interval_ps` | (B,)            | float32, ps between consecutive frames of the window   |
| `rots`              | (B, T, L, 3, 3) | float32, residue frames (local -> global)              |
| `trans`             | (B, T, L, 3)    | float32, Å (CA)                                        |
| `torsions`          | (B, T, L, 7, 2) | float32 (sin, cos) of [ω, φ, ψ, χ1..χ4]                |
| `torsion_mask`      | (B, L, 7)       | float32                                                |
| `aatype`            | (B, L)          | int64, AlphaFold order (20 = unknown; 0 on padding)    |
| `residue_mask`      | (B, L)          | float32, 0 = padding                                   |
| `residue_index`     | (B, L)          | int64, position in the full chain                      |

``batch_size`` is PER DEVICE: the global batch is ``batch_size x devices x num_nodes x
accumulate_grad_batches``; ``setup`` logs it. Under DDP Lightning replaces the samplers by
``DistributedSampler`` (the datasets are map-style with a fixed length), so each rank loads a
disjoint shard of the item indices.

Reproducibility (see ``mdgen.data.dataset``): training item ``i`` of epoch ``e`` is drawn from a
generator seeded by ``(seed, e, i)`` and the shuffling order by ``(seed, e)`` on one device
(Lightning's ``DistributedSampler`` uses ``PL_GLOBAL_SEED + e`` under DDP), so the same seed gives the
same batches for any ``num_workers``. Validation and test windows are fixed by ``seed`` alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, RandomSampler

from mdgen.data.cache import list_cached_entries
from mdgen.data.dataset import FixedWindowDataset, TrainWindowDataset, collate_windows, mixed_seed
from mdgen.data.prepare import prepare_simulations
from mdgen.data.sim_dir_layouts import ATLAS_REPLICAS, assign_to_sim_dirs, atlas_replica_name
from mdgen.data.splits import SplitRow, read_split
from mdgen.errors import UserError

logger = logging.getLogger(__name__)

_SHUFFLE_STREAM = 2


def _as_path_list(sim_dir: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if sim_dir is None:
        return []
    if isinstance(sim_dir, (str, Path)):
        return [Path(sim_dir)]
    return [Path(directory) for directory in sim_dir]


class DataSetupError(UserError):
    """The splits and the cache do not fit together; the message lists the offending names."""


class EpochDataLoader(DataLoader):
    """A DataLoader that, each time an epoch's iterator is created, passes the epoch to its dataset.

    It calls ``dataset.set_epoch(epoch_fn())`` and reseeds its sampler's generator (if any) from
    ``(shuffle_seed, epoch)``, so that every epoch's draws and order depend only on the seed and the
    epoch number (also after resuming from a checkpoint, when ``epoch_fn`` reads the trainer's epoch).
    """

    def __init__(self, dataset, *args, epoch_fn: Callable[[], int], shuffle_seed: int, **kwargs):
        super().__init__(dataset, *args, **kwargs)
        self.epoch_fn = epoch_fn
        self.shuffle_seed = shuffle_seed

    def __iter__(self):
        epoch = int(self.epoch_fn())
        self.dataset.set_epoch(epoch)
        # A RandomSampler's own generator (one device); Lightning's DistributedSampler seeds itself by epoch.
        shuffle_generator = getattr(self.sampler, "generator", None)
        if shuffle_generator is not None:
            shuffle_generator.manual_seed(mixed_seed(self.shuffle_seed, _SHUFFLE_STREAM, epoch))
        return super().__iter__()


class MDGenDataModule(pl.LightningDataModule):
    """Windows of ``num_frames`` frames every ``frame_interval_ps`` ps from a prepared cache.

    Args:
        cache_dir: directory written by ``python -m mdgen.prepare`` (or by ``prepare_data`` from ``sim_dir``).
        train_split, val_split, test_split: split CSVs (``name,seqres``); None disables that stage.
        num_frames: frames per window (T).
        frame_interval_ps: ps between window frames; a whole multiple of every entry's cached interval.
        batch_size: windows per batch PER DEVICE (global = batch_size x devices x num_nodes x accumulate).
        sim_dir: a simulation directory, or a list of them; if set, ``prepare_data`` prepares the split
            entries from it (each from the directory that holds it) into ``cache_dir`` first
            (skipping up-to-date entries), with ``layout``, ``trajectory_suffix``, ``cache_interval_ps``
            (prepare's ``interval_ps``; None keeps the files' interval), ``timestep_ps``, ``min_frames``
            and ``prepare_workers`` processes.
        replicas: ATLAS replica numbers (e.g. ``(1, 2, 3)``): split name ``X`` uses entries ``X_R{i}``,
            one drawn at random per item; None: the split name is the entry name.
        crop: residues per item (random contiguous crop, shorter chains padded); None keeps every residue.
        train_repeat: training windows per split row and epoch.
        val_repeat: fixed validation (and test) windows per split row.
        num_workers, pin_memory, persistent_workers: DataLoader options.
        seed: seeds every window draw and the shuffling order.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        train_split: str | Path | None,
        val_split: str | Path | None,
        num_frames: int,
        frame_interval_ps: float,
        batch_size: int,
        *,
        test_split: str | Path | None = None,
        sim_dir: str | Path | Sequence[str | Path] | None = None,
        layout: str = "auto",
        trajectory_suffix: str = "",
        cache_interval_ps: float | None = None,
        timestep_ps: float | None = None,
        min_frames: int = 2,
        prepare_workers: int = 1,
        replicas: Sequence[int] | None = None,
        crop: int | None = None,
        train_repeat: int = 1,
        val_repeat: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise DataSetupError(f"data.batch_size must be >= 1, got {batch_size}")
        self.cache_dir = Path(cache_dir)
        self.split_paths = {
            "train": None if train_split is None else Path(train_split),
            "val": None if val_split is None else Path(val_split),
            "test": None if test_split is None else Path(test_split),
        }
        self.num_frames = int(num_frames)
        self.frame_interval_ps = float(frame_interval_ps)
        self.batch_size = int(batch_size)
        self.sim_dirs = _as_path_list(sim_dir)
        self.layout = layout
        self.trajectory_suffix = trajectory_suffix
        self.cache_interval_ps = None if cache_interval_ps is None else float(cache_interval_ps)
        self.timestep_ps = None if timestep_ps is None else float(timestep_ps)
        self.min_frames = int(min_frames)
        self.prepare_workers = int(prepare_workers)
        self.replicas = None if replicas is None else tuple(int(replica) for replica in replicas)
        self.crop = None if crop is None else int(crop)
        self.train_repeat = int(train_repeat)
        self.val_repeat = int(val_repeat)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.seed = int(seed)
        self.datasets: dict[str, TrainWindowDataset | FixedWindowDataset] = {}
        self._prepared = False  # prepare_data ran in this process (check_inputs, then Lightning's hook)
        self.global_batch_size: int | None = None
        self._loader_epochs = 0  # epochs started without a trainer (plain loops, tests)

    # ------------------------------------------------------------------ splits and the cache
    def _split_rows(self, stage: str) -> list[SplitRow]:
        path = self.split_paths[stage]
        return [] if path is None else read_split(path)

    def entry_names(self, row: SplitRow) -> list[str]:
        """Cache entries of one split row: the row name, or its ATLAS replicas."""
        if self.replicas is None:
            return [row.name]
        return [atlas_replica_name(row.name, replica) for replica in self.replicas]

    def prepare_data(self) -> None:
        """Prepare the split entries from ``sim_dir`` into ``cache_dir`` (no-op without ``sim_dir``).

        With several simulation directories each split name is prepared from the one that holds it.
        """
        if not self.sim_dirs or self._prepared:
            return
        names = sorted({row.name for stage in self.split_paths for row in self._split_rows(stage)})
        if len(self.sim_dirs) == 1:
            names_by_dir = {self.sim_dirs[0]: names or None}
        else:
            if not names:
                raise DataSetupError("several sim_dir entries need split files that name the peptides")
            names_by_dir = assign_to_sim_dirs(self.sim_dirs, names)
        for sim_dir, dir_names in names_by_dir.items():
            summary = prepare_simulations(
                sim_dir,
                self.cache_dir,
                interval_ps=self.cache_interval_ps,
                names=dir_names,
                layout=self.layout,
                trajectory_suffix=self.trajectory_suffix,
                num_workers=self.prepare_workers,
                min_frames=self.min_frames,
                timestep_ps=self.timestep_ps,
                replicas=self.replicas or ATLAS_REPLICAS,
            )
            rank_zero_info(summary.report())
            if not summary.ok:
                raise DataSetupError(summary.report())
        self._prepared = True

    def check_inputs(self, stage: str | None = "fit") -> None:
        """Everything ``stage`` needs, checked in this process before any other is launched: the split
        files, the simulation directories (prepared into the cache now), the cache entries and their
        windows (manifests only). Under DDP a bad input is then the first error the user sees, not a
        gloo "connection closed" from ranks whose peer died; Lightning's hooks find the work done."""
        for split, path in self.split_paths.items():
            if path is not None:
                self._split_rows(split)
        self.prepare_data()
        self._build_datasets(stage)

    def _check_cache(self, rows_by_stage: dict[str, list[SplitRow]]) -> None:
        if any(rows_by_stage.values()) and not self.cache_dir.is_dir():
            hint = (
                "prepare_data() prepares it from sim_dir"
                if self.sim_dirs
                else f"prepare it with `python -m mdgen.prepare sim_dir=... out_dir={self.cache_dir}` or set data.sim_dir"
            )
            raise DataSetupError(
                f"the split entries are not in the cache: cache_dir {self.cache_dir} does not exist; {hint}"
            )
        cached = list_cached_entries(self.cache_dir)
        missing, mismatched = [], []
        for stage, rows in rows_by_stage.items():
            for row in rows:
                for entry_name in self.entry_names(row):
                    manifest = cached.get(entry_name)
                    if manifest is None:
                        missing.append(f"{entry_name} ({stage})")
                    elif manifest.sequence != row.seqres:
                        mismatched.append(f"{entry_name}: split {row.seqres!r}, cache {manifest.sequence!r}")
        if missing:
            raise DataSetupError(
                f"{len(missing)} split entries are not in the cache {self.cache_dir}: {', '.join(missing[:20])}"
                + (" ..." if len(missing) > 20 else "")
                + "; run `python -m mdgen.prepare` (or set sim_dir)"
            )
        if mismatched:
            raise DataSetupError(
                f"split sequence differs from the cached trajectory: {'; '.join(mismatched[:20])}"
            )

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        self._build_datasets(stage)
        self._report_batch_size()

    def _build_datasets(self, stage: str | None) -> None:
        """The datasets of ``stage`` not built yet, after checking the cache holds their entries."""
        stages = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            None: ("train", "val", "test"),
        }
        wanted = [
            s for s in stages.get(stage, ()) if self.split_paths[s] is not None and s not in self.datasets
        ]
        rows_by_stage = {s: self._split_rows(s) for s in wanted}
        self._check_cache(rows_by_stage)
        window_options = dict(
            num_frames=self.num_frames,
            frame_interval_ps=self.frame_interval_ps,
            crop=self.crop,
            seed=self.seed,
        )
        for split, rows in rows_by_stage.items():
            groups = [self.entry_names(row) for row in rows]
            if split == "train":
                self.datasets[split] = TrainWindowDataset(
                    self.cache_dir, groups, repeat=self.train_repeat, **window_options
                )
            else:
                self.datasets[split] = FixedWindowDataset(
                    self.cache_dir, groups, windows_per_entry=self.val_repeat, **window_options
                )

    def _report_batch_size(self) -> None:
        trainer = self.trainer
        world_size = 1 if trainer is None else trainer.world_size
        accumulate = 1 if trainer is None else trainer.accumulate_grad_batches
        self.global_batch_size = self.batch_size * world_size * accumulate
        rank_zero_info(
            f"batch size: {self.batch_size} per device x {world_size} device(s) x {accumulate} accumulation "
            f"= {self.global_batch_size} windows per optimizer step"
        )
        for split in ("val", "test"):
            count = len(self.datasets[split]) if split in self.datasets else 0
            if count % world_size:
                rank_zero_warn(
                    f"{count} {split} windows do not divide over {world_size} devices: the distributed sampler "
                    f"repeats {world_size - count % world_size} of them, so {split}/loss differs slightly from "
                    "a run on another number of devices"
                )

    def _current_epoch(self) -> int:
        if self.trainer is not None:
            return self.trainer.current_epoch
        epoch = self._loader_epochs
        self._loader_epochs += 1
        return epoch

    def _dataset(self, split: str):
        if split not in self.datasets:
            if self.split_paths[split] is None:
                raise DataSetupError(f"no {split}_split configured")
            raise DataSetupError(f"call setup() before requesting the {split} dataloader")
        return self.datasets[split]

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train")
        return EpochDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=RandomSampler(
                dataset, generator=torch.Generator()
            ),  # reseeded from (seed, epoch) per epoch
            collate_fn=collate_windows,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            epoch_fn=self._current_epoch,
            shuffle_seed=self.seed,
        )

    def _fixed_dataloader(self, split: str) -> DataLoader:
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=collate_windows,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._fixed_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self._fixed_dataloader("test")
