"""Files of a HuggingFace repository into a local folder (same relative paths): listed with huggingface_hub
(sizes, SHA-256 of LFS files, git blob ids), fetched from their huggingface_hub URLs with resumable HTTP
ranges (`http_resume`), and checked against that listing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mdgen.downloads.http_resume import download_resumable
from mdgen.downloads.network import DownloadError, check_reachable
from mdgen.downloads.verify import VerifiedFiles, git_blob_id, sha256_of


@dataclass(frozen=True)
class HubRepo:
    repo_id: str  # "bjing-mit/mdgen"
    repo_type: str  # "model" | "dataset"
    revision: str = "main"
    endpoint: str | None = None  # None: $HF_ENDPOINT or https://huggingface.co

    def describe(self) -> str:
        kind = "dataset " if self.repo_type == "dataset" else ""
        return f"HuggingFace {kind}{self.repo_id}@{self.revision}"


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative path in the repository
    size: int
    sha256: str | None  # LFS files
    blob_id: str  # git object id (the checksum of small, non-LFS files)


def endpoint_of(repo: HubRepo) -> str:
    from huggingface_hub import constants

    return (repo.endpoint or constants.ENDPOINT).rstrip("/")


def list_files(repo: HubRepo, folder: str | None = None) -> dict[str, RemoteFile]:
    """Every file under `folder` (None: the whole repository), with sizes and checksums."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=repo.endpoint)
    try:
        entries = api.list_repo_tree(
            repo.repo_id,
            path_in_repo=folder,
            recursive=True,
            revision=repo.revision,
            repo_type=repo.repo_type,
        )
        files = {}
        for entry in entries:
            if getattr(entry, "blob_id", None) is None:  # a folder
                continue
            lfs = getattr(entry, "lfs", None)
            files[entry.path] = RemoteFile(
                entry.path, int(entry.size), lfs.sha256 if lfs else None, entry.blob_id
            )
        return files
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        where = f"{repo.describe()}{'/' + folder if folder else ''}"
        raise DownloadError(f"cannot list {where}: HTTP {status} ({_first_line(error)})") from error
    except Exception as error:  # connection problems surface as httpx errors of huggingface_hub's client
        raise DownloadError(
            f"cannot list {repo.describe()}: {type(error).__name__}: {_first_line(error)}"
        ) from error


def fetch_hub_files(
    repo: HubRepo,
    wanted: Sequence[str],
    local_dir: Path,
    *,
    listing: Callable[[], dict[str, RemoteFile]] | None = None,
    timeout_s: float = 30.0,
    workers: int = 4,
    progress: Callable[[str], None] = print,
) -> list[Path]:
    """Download `wanted` (paths in the repository) into `local_dir`/<path>; return the local paths.

    Files already downloaded and checked are skipped without network access. For the rest the endpoint must
    answer within `timeout_s`; they are listed (`listing`: a callable giving the repository's files, by
    default the whole repository), downloaded (resuming partial downloads) and checked; a mismatch removes
    the bad copy and raises `DownloadError` naming the file (a re-run downloads it again).
    """
    local_dir = Path(local_dir)
    verified = VerifiedFiles(local_dir)
    todo = [path for path in wanted if not verified.is_verified(path)]
    if not todo:
        return [local_dir / path for path in wanted]
    check_reachable(endpoint_of(repo), timeout_s)
    listing = listing() if listing is not None else list_files(repo)
    absent = [path for path in todo if path not in listing]
    if absent:
        raise DownloadError(
            f"{repo.describe()} has no {absent[0]}"
            + (f" (nor {len(absent) - 1} other requested files)" if len(absent) > 1 else "")
            + f"; it has {len(listing)} files, e.g. {', '.join(sorted(listing)[:3])}"
        )
    progress(f"{repo.describe()}: {len(todo)} of {len(wanted)} files to fetch into {local_dir}")
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(lambda path: _fetch_one(repo, listing[path], local_dir, verified, timeout_s), todo))
    finally:
        verified.save()
    return [local_dir / path for path in wanted]


def _fetch_one(
    repo: HubRepo, remote: RemoteFile, local_dir: Path, verified: VerifiedFiles, timeout_s: float
) -> None:
    from huggingface_hub import hf_hub_url

    # huggingface_hub gives the file's URL; the transfer itself is ours, because huggingface_hub restarts an
    # interrupted download from zero in the next process, and these files are large.
    url = hf_hub_url(
        repo.repo_id,
        remote.path,
        repo_type=repo.repo_type,
        revision=repo.revision,
        endpoint=endpoint_of(repo),
    )
    local = download_resumable(url, local_dir / remote.path, timeout_s)
    _check(local, remote, repo)
    verified.mark(remote.path, remote.sha256 or remote.blob_id)


def _check(local: Path, remote: RemoteFile, repo: HubRepo) -> None:
    size = local.stat().st_size
    if size != remote.size:
        problem = f"{size} bytes, the repository lists {remote.size}"
    else:
        actual = sha256_of(local) if remote.sha256 else git_blob_id(local)
        expected = remote.sha256 or remote.blob_id
        if actual == expected:
            return
        problem = f"checksum {actual[:12]}..., the repository lists {expected[:12]}..."
    local.unlink(missing_ok=True)
    raise DownloadError(
        f"{local} from {repo.describe()} is corrupt ({problem}); removed it, run again to download it anew"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
