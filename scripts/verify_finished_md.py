"""Check every finished peptide of simulate output directories with `mdgen.md.simulation.verify_finished`.

The check `mdgen.simulate` makes before it skips a finished peptide (info.json record, atom count of the
PDB, frame counts and time stamps of NAME.xtc and NAME_fine.xtc). Read-only. Figure of
experiments/reliability/README.md ("finished outputs of earlier versions").

Usage: python scripts/verify_finished_md.py DIR [DIR ...]   e.g. data/demo/md data/obc2_train/md
"""

import sys
from pathlib import Path

from mdgen.md.simulation import verify_finished


def main(dirs: list[str]) -> int:
    failures = 0
    for directory in dirs:
        names = sorted(p.name for p in Path(directory).iterdir() if (p / "info.json").is_file())
        for name in names:
            try:
                verify_finished(directory, name)
            except Exception as error:  # noqa: BLE001 - report every peptide, then fail
                failures += 1
                print(f"FAILED {directory}/{name}: {error}")
        print(f"{directory}: {len(names)} finished peptides checked")
    print(f"failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
