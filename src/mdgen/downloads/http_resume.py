"""A plain HTTP(S) download that survives interruptions: bytes go to `<file>.part`, and a later call asks
for the rest with an HTTP Range header (starting over when the server ignores ranges). The file appears
under its name only when the received size equals the size the server announced."""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from mdgen.downloads.network import USER_AGENT, DownloadError

_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def download_resumable(url: str, destination: Path, timeout_s: float) -> Path:
    """GET `url` into `destination` (resuming `destination`.part); returns `destination`."""
    destination = Path(destination)
    if destination.is_file():
        return destination
    partial = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout_s
        ) as response:
            total = _total_size(response, have)
            if response.status == 200 and have:  # the server ignored the range: start over
                have = 0
            with open(partial, "ab" if have else "wb") as handle:
                while chunk := response.read(_CHUNK):
                    handle.write(chunk)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the part already holds everything the server has
            total = have
        else:
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:  # OSError: timeouts, resets
        received = partial.stat().st_size if partial.is_file() else 0
        raise DownloadError(
            f"{url}: download interrupted after {received} bytes ({getattr(error, 'reason', error)}); "
            "run again to resume"
        ) from error
    received = partial.stat().st_size
    if total is not None and received != total:
        raise DownloadError(
            f"{url}: received {received} of {total} bytes; kept {partial.name}, run again to resume"
        )
    os.replace(partial, destination)
    return destination


def _total_size(response, already: int) -> int | None:
    """The full size of the resource from Content-Range (206) or Content-Length (200)."""
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match and match.group(3) != "*":
            return int(match.group(3))
        length = response.headers.get("Content-Length")
        return already + int(length) if length else None
    length = response.headers.get("Content-Length")
    return int(length) if length else None
