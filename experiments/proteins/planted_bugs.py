"""Plant one-line bugs in a COPY of src/ (never the working tree) and run the protein-metric tests on each.

    .venv/bin/python experiments/proteins/planted_bugs.py [--tests FILE ...] [--only ID,ID] [--first-failure]

Each bug is a realistic one-line edit of src/mdgen/evaluation/proteins.py. For every bug the script copies
src/ to a temporary folder, applies the edit there, and runs pytest with PYTHONPATH pointing at the copy
(PYTHONPATH comes before the editable install), then prints CAUGHT (pytest exit 1, with the failing tests)
or MISSED (exit 0). Any other exit status (collection error, a bug that no longer applies) is printed as
is. ~15-40 s per bug on a 2-core machine. Results: experiments/proteins/README.md, section "Tests".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET = Path("mdgen/evaluation/proteins.py")
DEFAULT_TESTS = [
    "tests/unit/test_eval_protein_golden.py",
    "tests/unit/test_eval_proteins.py",
    "tests/unit/test_protein_metrics.py",
]

# (id, the bug, text in proteins.py, its replacement)
BUGS = [
    ("rmwd_swap", "RMWD translation and variance parts swapped",
     "        float(np.sqrt(translation.mean())),\n        float(np.sqrt(variance.mean())),",
     "        float(np.sqrt(variance.mean())),\n        float(np.sqrt(translation.mean())),"),
    ("rmwd_cross_s1", "Gaussian W2 cross term rooted with S1 in place of S2",
     "        root = sqrtm(s2)", "        root = sqrtm(s1)"),
    ("rmwd_biased", "generated covariance biased (1/T) on one side",
     "np.cov(gen_coords[:, a].T)", "np.cov(gen_coords[:, a].T, bias=True)"),
    ("joint_on_md", "joint PCA fitted on the MD frames only",
     "    mean, components = principal_components(np.concatenate([a, b]))",
     "    mean, components = principal_components(a)"),
    ("mdpca_on_both", "MD-PCA fitted on MD and generated frames together",
     "    mean, components = principal_components(md_coords)\n",
     "    mean, components = principal_components(np.concatenate([md_coords, gen_coords]))\n"),
    ("mdpca_on_gen", "MD-PCA fitted on the generated frames",
     "    mean, components = principal_components(md_coords)\n",
     "    mean, components = principal_components(gen_coords)\n"),
    ("w2_no_natoms", "PCA W2 not divided by the number of atoms",
     "    return float(np.sqrt(cost[rows, cols].mean() / n_atoms))",
     "    return float(np.sqrt(cost[rows, cols].mean()))"),
    ("pca_3pcs", "MD-PCA W2 on three PCs",
     "@ components[:2].T  # noqa: E731\n    a, b = _equal_samples",
     "@ components[:3].T  # noqa: E731\n    a, b = _equal_samples"),
    ("match_on_distance", "matching on distances, not squared distances",
     "    rows, cols = linear_sum_assignment(cost)", "    rows, cols = linear_sum_assignment(np.sqrt(cost))"),
    ("pc1_wrong_pc", "PC similarity with the generated ensemble's second PC",
     "principal_components(gen_coords)[1][0]", "principal_components(gen_coords)[1][1]"),
    ("rmsf_spearman", "RMSF r as a Spearman correlation",
     "        rmsf_pearson_r=float(np.corrcoef(md_rmsf, gen_rmsf)[0, 1]),",
     "        rmsf_pearson_r=float(__import__('scipy.stats').stats.spearmanr(md_rmsf, gen_rmsf)[0]),"),
    ("rmsf_same_side", "RMSF r of the MD profile with itself",
     "np.corrcoef(md_rmsf, gen_rmsf)", "np.corrcoef(md_rmsf, md_rmsf)"),
    ("gen_pairwise_md", "generated pairwise RMSD computed on the MD frames",
     "        generated_pairwise_rmsd_A=mean_pairwise_rmsd(gen_sample),",
     "        generated_pairwise_rmsd_A=mean_pairwise_rmsd(md_sample),"),
    ("transient_rule", "transient contacts: present in > 90 % instead of > 10 % of frames",
     "~crystal & (probability > 0.1)", "~crystal & (probability > 0.9)"),
    ("validity_on_md", "CA validity scored on the MD frames",
     "ca_validity(gen_coords, links", "ca_validity(md_coords, links"),
    ("sasa_with_ca", "side-chain SASA includes CA",
     'BACKBONE_ATOMS = frozenset({"N", "CA", "C", "O", "OXT"})', 'BACKBONE_ATOMS = frozenset({"N", "C", "O", "OXT"})'),
    ("exposed_vs_frame0", "buried judged on the first MD frame instead of the structure",
     "    md_exposed = exposed_residues(structure_sasa, md_sasa, threshold)",
     "    md_exposed = exposed_residues(md_sasa[0], md_sasa, threshold)"),
    ("mi_self", "generated exposure-MI matrix replaced by MD's",
     "            exposure_mutual_information(gen_sasa > threshold),",
     "            exposure_mutual_information(md_sasa > threshold),"),
    ("mi_marginal", "MI: marginal of v taken from u",
     "            marginal = np.outer(u.mean(0), v.mean(0))", "            marginal = np.outer(u.mean(0), u.mean(0))"),
    ("rows_rest_includes_k", "replica row k's rest includes replica k",
     "runs[:k] + runs[k + 1 :]", "runs[:k] + runs[k:]"),
    ("rows_always_r1", "every replica row scores replica 1",
     "        one = TrajectoryGroup((run,),", "        one = TrajectoryGroup((runs[0],),"),
    ("rows_sides_swapped", "replica row sides swapped (the rest as generated)",
     "score_protein(rest, one, structure, settings)", "score_protein(one, rest, structure, settings)"),
    ("no_superpose_ca", "CA coordinates not superposed on the structure",
     "        moved = md.Trajectory(traj.xyz.copy(), traj.topology).superpose(structure, atom_indices=ca)",
     "        moved = md.Trajectory(traj.xyz.copy(), traj.topology)"),
]  # fmt: skip


def run_one(bug: tuple[str, str, str, str], tests: list[str], first_failure: bool) -> str:
    name, _, old, new = bug
    source = (REPO / "src" / TARGET).read_text()
    if source.count(old) != 1:
        return f"{name:22s} NOT APPLICABLE (the text occurs {source.count(old)} times in {TARGET})"
    with tempfile.TemporaryDirectory(prefix=f"planted_{name}_") as copy:
        shutil.copytree(REPO / "src", copy, dirs_exist_ok=True)
        (Path(copy) / TARGET).write_text(source.replace(old, new))
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
        if first_failure:
            command.insert(3, "-x")
        done = subprocess.run(
            command, cwd=REPO, env={**os.environ, "PYTHONPATH": copy}, capture_output=True, text=True
        )
    failed = [
        line.split("::")[-1].split(" ")[0] for line in done.stdout.splitlines() if line.startswith("FAILED")
    ]
    verdict = {0: "MISSED", 1: "CAUGHT"}.get(done.returncode, f"pytest exit {done.returncode}")
    return f"{name:22s} {verdict} {' '.join(failed)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", nargs="+", default=DEFAULT_TESTS)
    parser.add_argument("--only", help="comma-separated bug ids")
    parser.add_argument("--first-failure", action="store_true", help="stop each run at its first failure")
    args = parser.parse_args()
    chosen = [bug for bug in BUGS if not args.only or bug[0] in args.only.split(",")]
    for bug in chosen:
        print(run_one(bug, args.tests, args.first_failure), flush=True)


if __name__ == "__main__":
    main()
