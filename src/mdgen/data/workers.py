"""Worker processes that die with their parent, so a killed run leaves no orphan writing its outputs.

Call ``die_with_parent`` first thing in a worker (a pool initializer). On Linux it asks the kernel,
through ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, to kill the worker the moment its parent exits, however
the parent died (kill -9 included) and whatever the worker is doing (a long OpenMM ``step`` call holds
the GIL, so a thread polling the parent could not act until it returns). The kernel ties the signal to
the parent *thread* that started the worker: pools must be created from a thread that lives as long as
the run (the main thread here). A parent that died before the prctl call is caught by comparing
``os.getppid()`` with the expected parent. Elsewhere (macOS) a daemon thread polls the parent instead.

Use the "spawn" start method: "forkserver" workers are children of the fork server, which stays alive
as long as any of its workers does, so neither would ever notice that the run's main process died.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_INTERVAL_S = 1.0


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process exit when its parent does. ``parent_pid``: the expected parent (default: the
    current one); if the parent already differs (it died and we were re-parented), exit now."""
    expected = os.getppid() if parent_pid is None else parent_pid
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(error)}")
    else:
        threading.Thread(target=_exit_when_orphaned, args=(expected,), daemon=True).start()
    if os.getppid() != expected:
        os._exit(1)


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_POLL_INTERVAL_S)
    os._exit(1)
