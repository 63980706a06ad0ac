"""Workers die with their parent: kill -9 the parent of a process pool and its workers are gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from mdgen.data.workers import die_with_parent

    def worker_pid(_):
        return os.getpid()

    def no_op():
        pass

    if __name__ == "__main__":
        method, protect = sys.argv[1], sys.argv[2] == "1"
        context = multiprocessing.get_context(method)
        pool = ProcessPoolExecutor(2, mp_context=context, initializer=die_with_parent if protect else no_op)
        print(pool.submit(worker_pid, 0).result(), flush=True)
        time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks /proc")
@pytest.mark.parametrize("protect", [True, False])
def test_pool_workers_die_when_the_parent_is_killed(tmp_path, protect, method="spawn"):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), method, "1" if protect else "0"], stdout=subprocess.PIPE, text=True
    )
    worker = int(parent.stdout.readline())
    assert _alive(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + (10.0 if protect else 2.0)
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        # The control (no die_with_parent) shows the check can fail: that orphan lives on.
        assert _alive(worker) is not protect
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
