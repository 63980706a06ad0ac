"""Where evaluation inputs (samples and reference MD) live on disk, and which peptides a directory holds.

Samples (written by the sampler):
- forward, upsample, protein: `samples_dir/NAME.pdb` + `NAME.xtc`, or one XTC per rollout
  `NAME_0.xtc`, `NAME_1.xtc`, ... (pooled, in index order). A PDB named `NAME_<digits>.pdb` counts as a
  per-rollout topology of NAME (used only when `NAME.pdb` is absent).
- interp (transition paths): `samples_dir/NAME_paths.json` (`mdgen.sample_files.PathsManifest`).
- inpaint: `samples_dir/NAME_inpaint.json` (`mdgen.sample_files.InpaintManifest`; `NAME_design.json`
  of an older mdgen too).
Which of the two a task uses is its evaluator's `manifest_suffix` (`mdgen.evaluation.evaluator`).
Reference MD: `reference_dir/NAME/NAME.pdb` + `NAME.xtc` (the tetrapeptide layout), else the flat
`reference_dir/NAME.pdb` + `NAME.xtc`; ATLAS replicas `NAME_prod_R{1,2,3}_fit.xtc` are used when
`NAME.xtc` is absent. The fine MD for upsampling is `NAME_fine.xtc` next to `NAME.xtc`.
"""

from __future__ import annotations

import re
from pathlib import Path

from mdgen.analysis.loading import EvaluationInputError

_ROLLOUT = re.compile(r"^(?P<name>.+)_(?P<index>\d+)$")


def discover_names(samples_dir: Path, manifest_suffix: str | None = None) -> list[str]:
    """Peptide names in `samples_dir`, sorted: of the `NAME<manifest_suffix>` manifests when a task keeps
    its samples in manifests (the evaluator's `manifest_suffix`), else of the trajectories' PDBs."""
    if not samples_dir.is_dir():
        raise EvaluationInputError(f"{samples_dir}: samples directory not found")
    if manifest_suffix is not None:
        return sorted(p.name.removesuffix(manifest_suffix) for p in samples_dir.glob(f"*{manifest_suffix}"))
    names = set()
    for pdb in samples_dir.glob("*.pdb"):
        match = _ROLLOUT.match(pdb.stem)
        names.add(match["name"] if match else pdb.stem)
    return sorted(names)


def _rollout_index(path: Path) -> int:
    return int(_ROLLOUT.match(path.stem)["index"])


def sample_files(samples_dir: Path, name: str) -> tuple[Path, list[Path]]:
    """(topology, trajectories) of one peptide's generated trajectories."""
    single = samples_dir / f"{name}.xtc"
    rollouts = sorted(
        (p for p in samples_dir.glob(f"{name}_*.xtc") if (m := _ROLLOUT.match(p.stem)) and m["name"] == name),
        key=_rollout_index,
    )
    if single.is_file() and rollouts:
        raise EvaluationInputError(
            f"{samples_dir}: both {single.name} and per-rollout {rollouts[0].name} exist for {name}"
        )
    trajectories = [single] if single.is_file() else rollouts
    if not trajectories:
        raise EvaluationInputError(f"{samples_dir}: no {name}.xtc or {name}_<i>.xtc")
    topology = samples_dir / f"{name}.pdb"
    if not topology.is_file():
        topology = trajectories[0].with_suffix(".pdb")
    if not topology.is_file():
        raise EvaluationInputError(f"{samples_dir}: no {name}.pdb topology")
    return topology, trajectories


def _replica_files(folder: Path, name: str) -> list[Path]:
    """ATLAS replicas `NAME_prod_R{1,2,...}_fit.xtc` in replica order; a gap in the numbering (R2 missing
    beside R1 and R3) is refused: the protein report names its rows "MD replica i" by position."""
    pattern = re.compile(rf"{re.escape(name)}_prod_R(\d+)_fit\.xtc")
    matches = (pattern.fullmatch(path.name) for path in folder.glob(f"{name}_prod_R*_fit.xtc"))
    found = {int(m.group(1)): folder / m.group(0) for m in matches if m}
    gap = next((k for k in range(1, len(found) + 1) if k not in found), None)
    if gap is not None:
        present = ", ".join(f"R{k}" for k in sorted(found))
        raise EvaluationInputError(
            f"{folder}: reference trajectory {name}_prod_R{gap}_fit.xtc not found (found {present}; replicas "
            "are numbered R1, R2, ... without gaps)"
        )
    return [found[k] for k in sorted(found)]


def reference_files(reference_dir: Path, name: str, fine: bool = False) -> tuple[Path, list[Path]]:
    """(topology, trajectories) of one peptide's reference MD (fine: the NAME_fine.xtc trajectory)."""
    for folder in (reference_dir / name, reference_dir):
        topology = folder / f"{name}.pdb"
        if not topology.is_file():
            continue
        if fine:
            trajectories = [folder / f"{name}_fine.xtc"]
        elif (folder / f"{name}.xtc").is_file():
            trajectories = [folder / f"{name}.xtc"]
        else:
            trajectories = _replica_files(folder, name)
        missing = [p for p in trajectories if not p.is_file()]
        if missing or not trajectories:
            wanted = missing[0].name if missing else f"{name}.xtc"
            raise EvaluationInputError(f"{folder}: reference trajectory {wanted} not found")
        return topology, trajectories
    raise EvaluationInputError(
        f"{reference_dir}: no reference for {name} (looked for {name}/{name}.pdb and {name}.pdb)"
    )
