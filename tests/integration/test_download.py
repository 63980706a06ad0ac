"""`python -m mdgen.download` end to end against local stand-ins (this machine is offline):
a HuggingFace-compatible mock endpoint (tree listing + resolve, with HTTP ranges) served from a thread on
127.0.0.1 and reached through huggingface_hub itself, and a plain local HTTP server for ATLAS archives.
Covers conversion of downloaded weights, the layout mdgen.prepare reads, resuming, checksum failures,
missing remote files, and the one-line error of an unreachable or silent host."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from mdgen.config import compose_config, load_module
from mdgen.data.prepare import prepare_simulations
from mdgen.download import download
from mdgen.downloads import DownloadError

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
ORIGINALS = FIXTURES / "original_checkpoints"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".ckpt", ".xtc")


class Recorder:
    """What a mock server was asked, and which responses it should spoil (once each)."""

    def __init__(self):
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.truncate_once: set[str] = set()  # paths whose first GET stops half-way
        self.corrupt_once: set[str] = set()  # paths whose first GET has one byte flipped

    def ranged_gets(self, suffix: str) -> list[str]:
        return [r for m, p, r in self.requests if m == "GET" and p.endswith(suffix) and r]


def _serve(handler_class) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _send_file(
    handler: BaseHTTPRequestHandler, data: bytes, key: str, recorder: Recorder, extra: dict
) -> None:
    """HEAD/GET of `data` with Range support and the spoiling `recorder` asks for."""
    start, status = 0, 200
    match = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range") or "")
    if match and handler.command == "GET":
        start, status = int(match.group(1)), 206
    body = data[start:]
    handler.send_response(status)
    for name, value in extra.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Accept-Ranges", "bytes")
    if status == 206:
        handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    handler.end_headers()
    if handler.command != "GET":
        return
    if key in recorder.truncate_once:
        recorder.truncate_once.discard(key)
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)
        return
    if key in recorder.corrupt_once:
        recorder.corrupt_once.discard(key)
        body = bytes([body[0] ^ 0xFF]) + body[1:]
    handler.wfile.write(body)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


def mock_hub(repos: dict[tuple[str, str], dict[str, bytes]], recorder: Recorder):
    """A HuggingFace-compatible endpoint for `repos[(repo_type, repo_id)] = {path: bytes}`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self._route()

        def do_GET(self):
            self._route()

        def _route(self):
            path = unquote(urlsplit(self.path).path)
            recorder.requests.append((self.command, path, self.headers.get("Range")))
            tree = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
            if tree:
                return self._tree(tree.group(1)[:-1], tree.group(2), tree.group(4) or "")
            resolve = re.fullmatch(r"(/datasets)?/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if resolve:
                kind = "dataset" if resolve.group(1) else "model"
                files = repos.get((kind, resolve.group(2)), {})
                name = resolve.group(4)
                if name not in files:
                    return self._error(404, "Entry not found", {"X-Error-Code": "EntryNotFound"})
                data = files[name]
                lfs = name.endswith(LFS_SUFFIXES)
                etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'}
                if lfs:
                    headers["X-Linked-Etag"] = f'"{etag}"'
                    headers["X-Linked-Size"] = str(len(data))
                return _send_file(self, data, name, recorder, headers)
            return self._error(404, "not found", {})

        def _tree(self, kind, repo_id, folder):
            files = repos.get((kind, repo_id))
            if files is None:
                return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
            entries = []
            for name, data in sorted(files.items()):
                if folder and not name.startswith(folder.rstrip("/") + "/"):
                    continue
                entry = {"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)}
                if name.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {
                        "oid": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                        "pointerSize": 134,
                    }
                entries.append(entry)
            body = json.dumps(entries).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status, message, headers):
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

    return _serve(Handler)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more: connection refused


def run_download(tmp_path: Path, endpoint: str, *overrides: str) -> None:
    cfg = compose_config(
        [
            f"hf_endpoint={endpoint}",
            f"data_dir={tmp_path / 'data'}",
            f"weights_dir={tmp_path / 'weights'}",
            "timeout_s=5",
            *overrides,
        ],
        config_name="download",
    )
    download(cfg)


@pytest.fixture()
def recorder() -> Recorder:
    return Recorder()


def test_weights_are_downloaded_checked_converted_and_kept_offline(tmp_path, recorder):
    files = {
        "forward_sim.ckpt": (ORIGINALS / "forward.ckpt").read_bytes(),
        "interpolation.ckpt": (ORIGINALS / "interp.ckpt").read_bytes(),
        "README.md": b"# weights\n",
    }
    server, endpoint = mock_hub({("model", "bjing-mit/mdgen"): files}, recorder)
    recorder.truncate_once.add("forward_sim.ckpt")
    try:
        for attempt in range(2):  # a cut connection may end the first run; the second resumes
            try:
                run_download(tmp_path, endpoint, "target=weights", "names=[forward_sim,interpolation]")
                break
            except DownloadError as error:
                assert attempt == 0 and "run again to resume" in str(error)
    finally:
        server.shutdown()
    assert recorder.ranged_gets("forward_sim.ckpt"), "the cut download was not resumed with a Range request"
    for name in ("forward_sim", "interpolation"):
        assert (tmp_path / "weights" / "original" / f"{name}.ckpt").read_bytes() == files[f"{name}.ckpt"]
    module = load_module(tmp_path / "weights" / "interpolation.ckpt", use_ema=False)
    assert (
        module.task.name == "interp"
        and module.network.blocks[0].residue_attention.sink_position == "original"
    )
    # A re-run with the host gone needs no network: every file is checked and converted already.
    run_download(tmp_path, closed_port_url(), "target=weights", "names=[forward_sim,interpolation]")


def test_tetrapeptides_land_in_the_layout_mdgen_prepare_reads(tmp_path, recorder):
    files = {}
    for name in ("FLRH", "IPGD"):
        for ext in ("pdb", "xtc"):
            files[f"4AA_sims/{name}/{name}.{ext}"] = (
                FIXTURES / "trajectories" / f"{name}.{ext}"
            ).read_bytes()
        files[f"4AA_sims/{name}/{name}.out"] = b"log that is not needed\n"
    files["4AA_sims_implicit/FLRH/FLRH.xtc"] = b"another dataset"
    server, endpoint = mock_hub({("dataset", "bjing-mit/tetrapeptide-sims"): files}, recorder)
    recorder.corrupt_once.add("4AA_sims/IPGD/IPGD.xtc")
    try:
        with pytest.raises(DownloadError, match=r"IPGD\.xtc .*corrupt .*checksum"):
            run_download(tmp_path, endpoint, "target=4aa", "names=[FLRH,IPGD]", "workers=1")
        run_download(tmp_path, endpoint, "target=4aa", "names=[FLRH,IPGD]")  # fetches IPGD.xtc anew
        with pytest.raises(DownloadError, match=r"has no 4AA_sims/WXYZ/WXYZ.pdb"):
            run_download(tmp_path, endpoint, "target=4aa", "names=[WXYZ]")
    finally:
        server.shutdown()
    sims = tmp_path / "data" / "4AA_sims"
    for path, data in files.items():
        if path.startswith("4AA_sims/") and not path.endswith(".out"):
            assert (tmp_path / "data" / path).read_bytes() == data
    assert not list(sims.glob("*/*.out")) and not (tmp_path / "data" / "4AA_sims_implicit").exists()
    summary = prepare_simulations(sims, tmp_path / "cache", names=["FLRH", "IPGD"], progress=False)
    assert summary.ok and len(summary.prepared) == 2, summary.report()


def atlas_zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in sorted((FIXTURES / "atlas" / "flrh_A").iterdir()):
            bundle.write(path, path.name.replace("flrh_A", name))
        bundle.writestr("README.txt", "ATLAS stand-in")
    return buffer.getvalue()


def test_atlas_chains_are_resumed_checked_and_unpacked(tmp_path, recorder):
    archives = {f"/{name}/{name}_protein.zip": atlas_zip(name) for name in ("16pk_A", "1k5n_A")}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            recorder.requests.append((self.command, self.path, self.headers.get("Range")))
            if self.path not in archives:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            _send_file(self, archives[self.path], self.path, recorder, {})

    server, url = _serve(Handler)
    recorder.truncate_once.add("/16pk_A/16pk_A_protein.zip")
    overrides = ["target=atlas", "names=[16pk_A,1k5n_A]", f"atlas_url='{url}/{{name}}/{{name}}_protein.zip'"]
    try:
        with pytest.raises(DownloadError, match="interrupted|received"):
            run_download(tmp_path, "http://unused", *overrides)
        run_download(tmp_path, "http://unused", *overrides)
    finally:
        server.shutdown()
    assert recorder.ranged_gets("16pk_A_protein.zip"), "the cut archive was not resumed with a Range request"
    for name in ("16pk_A", "1k5n_A"):
        chain = tmp_path / "data" / "atlas_sims" / name
        assert (chain / f"{name}.pdb").is_file()
        assert [(chain / f"{name}_prod_R{i}_fit.xtc").is_file() for i in (1, 2, 3)] == [True] * 3
    assert not list((tmp_path / "data" / "atlas_sims" / ".archives").glob("*"))


def test_a_silent_host_times_out_with_one_clear_error(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections, never answers
    try:
        started = time.perf_counter()
        with pytest.raises(DownloadError, match=r"cannot reach http://127\.0\.0\.1:\d+ .*timeout 1 s"):
            run_download(
                tmp_path, f"http://127.0.0.1:{listener.getsockname()[1]}", "target=weights", "timeout_s=1"
            )
        assert time.perf_counter() - started < 20
    finally:
        listener.close()


def test_cli_offline_gives_one_error_line(tmp_path):
    command = [
        sys.executable,
        "-m",
        "mdgen.download",
        "target=weights",
        f"weights_dir={tmp_path / 'weights'}",
        "timeout_s=2",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    endpoint = closed_port_url()
    env = {**__import__("os").environ, "HF_ENDPOINT": endpoint}
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mdgen.download: error: cannot reach {endpoint}"), lines
