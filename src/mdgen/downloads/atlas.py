"""ATLAS chains (https://www.dsimb.inserm.fr/ATLAS): one ZIP per chain, unpacked into the layout that
`mdgen.prepare layout=atlas` reads: `<atlas_dir>/NAME/NAME.pdb` + `NAME_prod_R{1,2,3}_fit.xtc`.

The site publishes no checksums: a download is checked by the ZIP's own CRCs and by the presence of the
files the layout needs. Each chain is unpacked into a temporary folder and renamed into place, so a chain
folder is either complete or absent; its archive is removed once unpacked (a re-run skips complete chains).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from mdgen.downloads.http_resume import download_resumable
from mdgen.downloads.network import DownloadError, check_reachable

ATLAS_URL = "https://www.dsimb.inserm.fr/ATLAS/database/ATLAS/{name}/{name}_protein.zip"
REPLICAS = (1, 2, 3)


def required_files(name: str) -> list[str]:
    return [f"{name}.pdb", *(f"{name}_prod_R{i}_fit.xtc" for i in REPLICAS)]


def is_complete(atlas_dir: Path, name: str) -> bool:
    return all((atlas_dir / name / file).is_file() for file in required_files(name))


def fetch_atlas_entries(
    names: Sequence[str],
    atlas_dir: Path,
    *,
    url_template: str = ATLAS_URL,
    timeout_s: float = 60.0,
    keep_archives: bool = False,
    progress: Callable[[str], None] = print,
) -> list[Path]:
    """Download and unpack every chain of `names` that is not complete yet; returns the chain folders."""
    atlas_dir = Path(atlas_dir)
    todo = [name for name in names if not is_complete(atlas_dir, name)]
    progress(f"ATLAS: {len(todo)} of {len(names)} chains to fetch into {atlas_dir}")
    if todo:
        check_reachable(_site_root(url_template.format(name=todo[0])), timeout_s)
    archives = atlas_dir / ".archives"
    for index, name in enumerate(todo, 1):
        archive = download_resumable(
            url_template.format(name=name), archives / f"{name}_protein.zip", timeout_s
        )
        _unpack(archive, atlas_dir, name)
        if not keep_archives:
            archive.unlink()
        progress(f"ATLAS: {name} ({index}/{len(todo)})")
    return [atlas_dir / name for name in names]


def _site_root(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def _unpack(archive: Path, atlas_dir: Path, name: str) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
            bad = bundle.testzip()  # CRC of every member
            if bad is not None:
                raise DownloadError(
                    f"{archive}: member {bad} fails its CRC check; delete the archive and run again"
                )
            members = [m for m in bundle.infolist() if not m.is_dir()]
            staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=atlas_dir))
            try:
                for member in members:
                    relative = PurePosixPath(member.filename)
                    if relative.is_absolute() or ".." in relative.parts:
                        raise DownloadError(
                            f"{archive}: member {member.filename!r} points outside its folder"
                        )
                    # The site's archives hold the files at the top level or inside one folder: keep the name.
                    target = staging / relative.name
                    with bundle.open(member) as source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink)
                missing = [file for file in required_files(name) if not (staging / file).is_file()]
                if missing:
                    raise DownloadError(
                        f"{archive}: lacks {', '.join(missing)} (has {', '.join(sorted(m.filename for m in members))})"
                    )
                final = atlas_dir / name
                if final.exists():  # an incomplete earlier folder: keep it aside, never delete what is there
                    final.rename(atlas_dir / f".{name}.incomplete.{staging.name[-8:]}")
                staging.rename(final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except zipfile.BadZipFile as error:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{archive}: not a ZIP archive ({error}); removed it, run again") from error
