"""Every entry point reports a user error as one line on stderr and exit status 2 (no traceback)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RTVD = REPO_ROOT / "tests" / "fixtures" / "trajectories" / "RTVD.pdb"
YGRS_XTC = REPO_ROOT / "data" / "demo" / "md" / "YGRS" / "YGRS.xtc"  # another peptide, also 34 atoms


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["mdgen.roundtrip", str(RTVD), str(YGRS_XTC)], "is .*RTVD.pdb the topology of this trajectory"),
        (["mdgen.roundtrip", "/nonexistent/x.pdb"], "/nonexistent/x.pdb: file not found"),
        (
            ["mdgen.bench", "train", "model=tiny", "--precision", "16"],
            "--precision must be 32-true or bf16-mixed",
        ),
    ],
)
def test_argparse_entry_points_report_user_errors_in_one_line(tmp_path, command, expected):
    completed = subprocess.run(
        [sys.executable, "-m", *command], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{command[0]}: error: "), completed.stderr[-2000:]
    assert re.search(expected, lines[0])
