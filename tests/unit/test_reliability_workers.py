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

    def busy(_):  # a worker in the middle of a long task (an idle Pool worker exits on EOF anyway)
        print("busy", os.getpid(), flush=True)
        time.sleep(600)

    def no_op():
        pass

    if __name__ == "__main__":
        kind, protect = sys.argv[1], sys.argv[2] == "1"
        context = multiprocessing.get_context("spawn")
        initializer = die_with_parent if protect else no_op
        if kind == "executor":  # as mdgen.simulate
            pool = ProcessPoolExecutor(2, mp_context=context, initializer=initializer)
            pool.submit(busy, 0)
            workers = list(pool._processes)
        else:  # multiprocessing.Pool, as mdgen.prepare
            pool = context.Pool(2, initializer=initializer)
            pool.apply_async(busy, (0,))
            workers = [process.pid for process in pool._pool]
        print("workers", *workers, flush=True)
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
@pytest.mark.parametrize("kind", ["executor", "pool"])
@pytest.mark.parametrize("protect", [True, False])
def test_pool_workers_die_when_the_parent_is_killed(tmp_path, protect, kind):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), kind, "1" if protect else "0"], stdout=subprocess.PIPE, text=True
    )
    lines = dict(parent.stdout.readline().split(maxsplit=1) for _ in range(2))
    busy, workers = int(lines["busy"]), [int(pid) for pid in lines["workers"].split()]
    assert busy in workers and _alive(busy)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + (10.0 if protect else 2.0)
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        # The control (no die_with_parent) shows the check can fail: the busy orphan lives on.
        assert _alive(busy) is not protect
        if protect:
            assert not any(_alive(pid) for pid in workers)
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
