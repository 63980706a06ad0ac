"""Fetching the published MDGen weights and data: HuggingFace repositories through huggingface_hub, ATLAS
archives over plain HTTP with resumable ranges, every file checked against its size and checksum.
Used by `python -m mdgen.download`."""

from mdgen.downloads.atlas import fetch_atlas_entries
from mdgen.downloads.hub import HubRepo, fetch_hub_files
from mdgen.downloads.network import DownloadError, check_reachable

__all__ = ["DownloadError", "HubRepo", "check_reachable", "fetch_atlas_entries", "fetch_hub_files"]
