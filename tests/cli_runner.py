"""Run a command's main in this process, as `python -m mdgen.COMMAND ARGV` would (without ~9 s of imports)."""

from __future__ import annotations

import importlib
import sys


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
