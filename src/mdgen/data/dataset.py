"""Map-style datasets of trajectory windows read from the memory-mapped cache.

One item is a window of ``num_frames`` frames, ``frame_interval_ps`` apart, from one cached entry:

| key                 | shape           | dtype   | meaning                                                 |
|---------------------|-----------------|---------|---------------------------------------------------------|
| `name`              | str             |         | cache entry (`NAME`, or `NAME_R{i}` for an ATLAS replica) |
| `frame_start`       | ()              | int64   | first frame, index in the cached trajectory             |
| `frame_interval_ps` | ()              | float32 | ps between consecutive frames of the window             |
| `rots`              | (T, L, 3, 3)    | float32 | residue frames, local -> global                         |
| `trans`             | (T, L, 3)       | float32 | residue origins (CA), Å                                 |
| `torsions`          | (T, L, 7, 2)    | float32 | (sin, cos) of [ω, φ, ψ, χ1..χ4]                         |
| `torsion_mask`      | (L, 7)          | float32 | 1 where the torsion exists                              |
| `aatype`            | (L,)            | int64   | AlphaFold order, 20 = unknown; 0 on padding             |
| `residue_mask`      | (L,)            | float32 | 1 = residue, 0 = padding                                |
| `residue_index`     | (L,)            | int64   | position in the full chain (kept after a crop); 0 on padding |

Windows: with ``stride = frame_interval_ps / cached interval`` (a whole number,
``mdgen.timesteps.frames_per_interval``), a window starting at
cached frame ``s`` holds frames ``s, s + stride, ..., s + (T - 1) * stride``. Every start
``0 .. N - 1 - (T - 1) * stride`` can be drawn, the last one included, so a trajectory with exactly the
frames one window needs has one window (the original implementation never drew the last start).

Residues: with ``crop`` set, a chain longer than ``crop`` yields a random contiguous run of ``crop``
residues, and a shorter one is padded to ``crop`` (identity rotations, zero translations, torsions and
torsion masks, aatype 0, residue_mask 0). Without ``crop`` items keep their length and
``collate_windows`` pads to the longest chain of the batch the same way.

Randomness (replica, start, crop offset) never comes from a global RNG. Item ``i`` draws from a
``torch.Generator`` seeded with ``SeedSequence([seed, stream, epoch, i])`` (``TrainWindowDataset``;
the epoch is set through ``set_epoch``) or ``SeedSequence([seed, stream, i])``
(``FixedWindowDataset``: the same windows every epoch). Because the seed depends on the item index
and not on which worker process or DDP rank loads it, the windows are the same for any
``num_workers`` and any sharding; rank and worker only decide *which* indices a process loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mdgen.data.cache import CachedEntry, CacheError, EntryManifest, open_entry, read_manifest
from mdgen.errors import UserError
from mdgen.timesteps import frames_per_interval

_TRAIN_STREAM = 0
_FIXED_STREAM = 1


class WindowError(UserError):
    """A window cannot be cut from an entry; the message names the entry."""


def num_window_starts(num_cached_frames: int, num_frames: int, stride: int, entry_name: str) -> int:
    """How many distinct windows start positions an entry offers (every one can be drawn)."""
    span = (num_frames - 1) * stride + 1  # cached frames covered by one window
    if num_cached_frames < span:
        raise WindowError(
            f"entry {entry_name}: {num_cached_frames} cached frames, but a window of {num_frames} frames "
            f"every {stride} cached frame(s) needs {span}"
        )
    return num_cached_frames - span + 1


def mixed_seed(*keys: int) -> int:
    """A 63-bit seed that is a well-mixed function of the non-negative integers ``keys``."""
    words = np.random.SeedSequence([int(key) for key in keys]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def seeded_generator(*keys: int) -> torch.Generator:
    """A fresh torch.Generator seeded with ``mixed_seed(*keys)``."""
    return torch.Generator().manual_seed(mixed_seed(*keys))


@dataclass(frozen=True)
class WindowChoice:
    """Where one window is cut: which entry, first cached frame, first residue."""

    entry_name: str
    frame_start: int
    residue_start: int


@dataclass(frozen=True)
class _EntryGeometry:
    num_starts: int
    num_residues: int
    stride: int


def pad_residues(item: dict, length: int) -> dict:
    """Pad the residue axis of a window item to ``length`` with masked, identity-frame residues."""
    current = item["aatype"].shape[0]
    missing = length - current
    if missing < 0:
        raise ValueError(f"entry {item['name']}: cannot pad {current} residues to {length}")
    if missing == 0:
        return item
    num_frames = item["rots"].shape[0]
    identity = torch.eye(3).expand(num_frames, missing, 3, 3)
    padded = dict(item)
    padded["rots"] = torch.cat([item["rots"], identity], dim=1)
    for key, residue_dim in (("trans", 1), ("torsions", 1), ("torsion_mask", 0), ("residue_mask", 0)):
        tensor = item[key]
        shape = list(tensor.shape)
        shape[residue_dim] = missing
        padded[key] = torch.cat([tensor, tensor.new_zeros(shape)], dim=residue_dim)
    for key in ("aatype", "residue_index"):
        padded[key] = torch.cat([item[key], item[key].new_zeros(missing)])
    return padded


def collate_windows(items: Sequence[dict]) -> dict:
    """Stack window items into a batch (``name`` stays a list); pads residues to the longest item."""
    length = max(item["aatype"].shape[0] for item in items)
    items = [pad_residues(item, length) for item in items]
    batch = {"name": [item["name"] for item in items]}
    for key in items[0]:
        if key != "name":
            batch[key] = torch.stack([item[key] for item in items])
    return batch


class _WindowDataset(Dataset):
    """Shared machinery: groups of cache entries (one group per split row), window draws and reads.

    ``groups[k]`` lists the cache entries of split row ``k``: ``[NAME]`` for a peptide, or
    ``[NAME_R1, NAME_R2, NAME_R3]`` for an ATLAS chain (one replica is drawn per item).
    """

    def __init__(
        self,
        cache_dir: str | Path,
        groups: Sequence[Sequence[str]],
        *,
        num_frames: int,
        frame_interval_ps: float,
        crop: int | None = None,
        seed: int = 0,
    ):
        if num_frames < 1:
            raise WindowError(f"num_frames (task.num_frames) must be >= 1, got {num_frames}")
        if crop is not None and crop < 1:
            raise WindowError(f"crop (data.crop) must be >= 1 or null, got {crop}")
        if not groups or any(not group for group in groups):
            raise ValueError("every split row needs at least one cache entry")
        self.cache_dir = Path(cache_dir)
        self.groups = [tuple(group) for group in groups]
        self.num_frames = num_frames
        self.frame_interval_ps = float(frame_interval_ps)
        self.crop = crop
        self.seed = seed
        self._geometry = {
            name: self._entry_geometry(read_manifest(self.cache_dir / name))
            for group in self.groups
            for name in group
        }
        self._opened: dict[str, CachedEntry] = {}  # per process, filled lazily

    def _entry_geometry(self, manifest: EntryManifest) -> _EntryGeometry:
        stride = frames_per_interval(
            self.frame_interval_ps, manifest.interval_ps, f"entry {manifest.name}", "frame_interval_ps"
        )
        num_starts = num_window_starts(manifest.num_frames, self.num_frames, stride, manifest.name)
        return _EntryGeometry(num_starts=num_starts, num_residues=manifest.num_residues, stride=stride)

    def __getstate__(self) -> dict:
        # Memory maps would be pickled by value when workers are spawned: reopen them in each worker.
        state = dict(self.__dict__)
        state["_opened"] = {}
        return state

    def _entry(self, name: str) -> CachedEntry:
        if name not in self._opened:
            self._opened[name] = open_entry(self.cache_dir, name)
        return self._opened[name]

    def draw_window(self, group_index: int, generator: torch.Generator) -> WindowChoice:
        """Replica, start frame and crop offset, drawn in this fixed order from ``generator``."""
        group = self.groups[group_index]
        entry_name = group[int(torch.randint(len(group), (), generator=generator))]
        geometry = self._geometry[entry_name]
        frame_start = int(torch.randint(geometry.num_starts, (), generator=generator))
        num_offsets = 1
        if self.crop is not None and geometry.num_residues > self.crop:
            num_offsets = geometry.num_residues - self.crop + 1
        residue_start = int(torch.randint(num_offsets, (), generator=generator))
        return WindowChoice(entry_name=entry_name, frame_start=frame_start, residue_start=residue_start)

    def load_window(self, choice: WindowChoice) -> dict:
        """Read one window from the cache (a copy; the memory maps stay untouched)."""
        entry = self._entry(choice.entry_name)
        geometry = self._geometry[choice.entry_name]
        frames = slice(
            choice.frame_start,
            choice.frame_start + (self.num_frames - 1) * geometry.stride + 1,
            geometry.stride,
        )
        length = geometry.num_residues if self.crop is None else min(self.crop, geometry.num_residues)
        residues = slice(choice.residue_start, choice.residue_start + length)

        def read(array: np.ndarray, index) -> torch.Tensor:
            return torch.from_numpy(np.array(array[index]))  # a copy, detached from the memory map

        item = {
            "name": choice.entry_name,
            "frame_start": torch.tensor(choice.frame_start, dtype=torch.int64),
            "frame_interval_ps": torch.tensor(self.frame_interval_ps, dtype=torch.float32),
            "rots": read(entry.rots, (frames, residues)),  # (T, L, 3, 3)
            "trans": read(entry.trans, (frames, residues)),  # (T, L, 3) Å
            "torsions": read(entry.torsions, (frames, residues)),  # (T, L, 7, 2)
            "torsion_mask": read(entry.torsion_mask, residues).float(),  # (L, 7)
            "aatype": read(entry.aatype, residues),  # (L,)
            "residue_mask": torch.ones(length, dtype=torch.float32),  # (L,)
            "residue_index": read(entry.residue_index, residues),  # (L,)
        }
        if item["rots"].shape[0] != self.num_frames:
            raise CacheError(
                f"cache entry {choice.entry_name}: window at frame {choice.frame_start} is cut short"
            )
        if self.crop is not None:
            item = pad_residues(item, self.crop)
        return item


class TrainWindowDataset(_WindowDataset):
    """Random windows: ``repeat`` items per split row and epoch, new draws every epoch.

    Item ``i`` of epoch ``e`` is drawn from ``seeded_generator(seed, 0, e, i)``. The epoch lives in a
    shared-memory tensor so that ``set_epoch`` in the main process reaches persistent workers too.
    """

    def __init__(self, cache_dir, groups, *, repeat: int = 1, **window_options):
        super().__init__(cache_dir, groups, **window_options)
        if repeat < 1:
            raise WindowError(f"repeat (data.train_repeat) must be >= 1, got {repeat}")
        self.repeat = repeat
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def __len__(self) -> int:
        return len(self.groups) * self.repeat

    def __getitem__(self, index: int) -> dict:
        generator = seeded_generator(self.seed, _TRAIN_STREAM, self.epoch, index)
        return self.load_window(self.draw_window(index % len(self.groups), generator))


class FixedWindowDataset(_WindowDataset):
    """Validation / test windows: ``windows_per_entry`` windows per split row, identical every epoch.

    Items ``k * windows_per_entry .. (k + 1) * windows_per_entry - 1`` belong to split row ``k``; item
    ``i`` is drawn from ``seeded_generator(seed, 1, i)``.
    """

    def __init__(self, cache_dir, groups, *, windows_per_entry: int = 1, **window_options):
        super().__init__(cache_dir, groups, **window_options)
        if windows_per_entry < 1:
            raise WindowError(f"windows_per_entry (data.val_repeat) must be >= 1, got {windows_per_entry}")
        self.windows_per_entry = windows_per_entry

    def __len__(self) -> int:
        return len(self.groups) * self.windows_per_entry

    def window_choice(self, index: int) -> WindowChoice:
        return self.draw_window(
            index // self.windows_per_entry, seeded_generator(self.seed, _FIXED_STREAM, index)
        )

    def __getitem__(self, index: int) -> dict:
        return self.load_window(self.window_choice(index))
