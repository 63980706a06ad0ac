"""Data layer: prepare a cache from MD, window datasets and DataModules (the MD engine is `mdgen.md`).

Imports stay lazy (PEP 562) so that light users (``mdgen.data.splits``, the MD engine's use of
``mdgen.data.workers``) do not pull in Lightning or torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MDGenDataModule": "mdgen.data.datamodule",
    "prepare_simulations": "mdgen.data.prepare",
    "PrepareSummary": "mdgen.data.prepare",
    "TrainWindowDataset": "mdgen.data.dataset",
    "FixedWindowDataset": "mdgen.data.dataset",
    "collate_windows": "mdgen.data.dataset",
    "open_entry": "mdgen.data.cache",
    "list_cached_entries": "mdgen.data.cache",
    "read_split": "mdgen.data.splits",
    "write_split": "mdgen.data.splits",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mdgen.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
