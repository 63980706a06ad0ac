"""The one network check every download starts with, and the error every download failure becomes."""

from __future__ import annotations

import urllib.error
import urllib.request

from mdgen.errors import UserError

USER_AGENT = "mdgen-download"


class DownloadError(UserError):
    """A download that could not be done: host unreachable, file missing remotely, checksum mismatch."""


def check_reachable(url: str, timeout_s: float) -> None:
    """Raise `DownloadError` (one line) unless `url`'s host answers HTTP within `timeout_s` seconds.

    Any HTTP status counts as an answer (a 404 on the root is fine): only "no answer" is an error.
    """
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"cannot reach {url} ({reason or type(error).__name__}; timeout {timeout_s:g} s): this machine "
            "seems offline or the host is down; files downloaded so far are kept, run again to resume"
        ) from error
