"""Run a command as `python -m mdgen.COMMAND ARGV` would: in this process (no ~9 s of imports) or in a
subprocess from the repository root (the real command line)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_main(capsys, command: str, *argv: str) -> tuple[int, str, str]:
    """`python -m mdgen.COMMAND ARGV` through its main, in this process: (exit status, stdout, stderr)."""
    module = importlib.import_module(f"mdgen.{command}")
    saved = sys.argv
    sys.argv = [f"mdgen/{command}.py", *argv]
    try:
        module.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_command(module: str, *overrides: str, timeout: int = 900) -> None:
    """`python -m MODULE OVERRIDES` in a subprocess from the repository root; fails with its stderr tail."""
    completed = subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, f"{module} failed:\n{completed.stderr[-3000:]}"
