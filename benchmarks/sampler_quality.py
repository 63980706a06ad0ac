"""Quality against cost of the ODE sampler: forward rollouts of held-out peptides with each solver setting.

For every setting (method, steps) it runs the real commands, `python -m mdgen.sample` (rollouts from each
peptide's first MD frame) and `python -m mdgen.evaluate` (against the peptides' MD), and collects the
function evaluations (NFE), the sampling wall time and the JS-distance table. dopri5 is run with two
seeds, so the table also shows the run-to-run noise that decides "within noise of dopri5".

    python benchmarks/sampler_quality.py --ckpt checkpoints/tetrapeptide_forward.ckpt \
        --split data/obc2_train/splits/test.csv --cache .cache/quality_ref_10ps \
        --reference ../shared/data/tetrapeptides --out experiments/quality/sampler

Writes OUT/sampler_quality.json, OUT/sampler_quality.md and OUT/sampler_quality.png; per-setting
samples and reports under OUT/runs/ (re-runs skip finished settings).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

METRICS = ("torsion_jsd_all", "tica0_jsd", "msm_state_jsd", "validity_valid_fraction")
DEFAULT_SETTINGS = (
    "dopri5:50:0",
    "dopri5:50:1",
    "heun:21:0",
    "heun:11:0",
    "heun:6:0",
    "euler:21:0",
    "euler:11:0",
    "euler:6:0",
)


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def parse_setting(setting: str) -> tuple[str, str, str, str]:
    """method:num_steps:seed[:grid_power] (grid_power 1 = uniform when omitted)."""
    parts = setting.split(":")
    if len(parts) not in (3, 4):
        raise SystemExit(f"--settings: {setting!r} is not method:num_steps:seed[:grid_power]")
    return (*parts[:3], parts[3] if len(parts) == 4 else "1")  # type: ignore[return-value]


def measure(setting: str, args: argparse.Namespace) -> dict:
    method, num_steps, seed, grid_power = parse_setting(setting)
    grid = "" if grid_power == "1" else f"_p{grid_power}"
    run_dir = Path(args.out) / "runs" / f"{method}_{num_steps}{grid}_seed{seed}"
    samples = run_dir / "samples"
    if not (run_dir / "metrics.json").is_file():
        run(
            [sys.executable, "-m", "mdgen.sample", f"ckpt_path={args.ckpt}", f"out_dir={samples}",
             f"split={args.split}", f"cache_dir={args.cache}", f"sampler={method}",
             f"sampler.num_steps={num_steps}", f"sampler.grid_power={grid_power}", f"base_seed={seed}", f"num_rollouts={args.rollouts}",
             f"num_chunks={args.chunks}", "per_rollout_files=true", f"batch_size={args.batch_size}",
             *args.sample_args]
        )  # fmt: skip
        run(
            [sys.executable, "-m", "mdgen.evaluate", f"samples_dir={samples}",
             f"reference_dir={args.reference}", "task=forward", f"out_dir={run_dir}", "plots=false"]
        )  # fmt: skip
    summary = json.loads((samples / "sampling_summary.json").read_text())
    aggregate = json.loads((run_dir / "metrics.json").read_text())["aggregate"]
    return {
        "method": method,
        "num_steps": int(num_steps),
        "grid_power": float(grid_power),
        "seed": int(seed),
        "nfe_per_window": summary["nfe"] / max(1, _num_windows(summary)),
        "sampling_wall_s": summary["sampling_wall_s"],
        "ns_per_wall_s": summary["ns_per_wall_s"],
        "generated": {m: aggregate["generated"][m]["mean"] for m in METRICS},
        "sem": {m: aggregate["generated"][m]["sem"] for m in METRICS},
        "md_rows": {
            row: {m: aggregate[row][m]["mean"] for m in METRICS if m in aggregate[row]}
            for row in aggregate
            if row.startswith("MD")
        },
    }


def _num_windows(summary: dict) -> int:
    """ODE solves in the run: batches of rollouts x chunks per peptide (NFE is summed over them)."""
    frames_per_window = summary["task"]["num_frames"]
    batches = 0
    for output in summary["outputs"]:
        rollouts = len(output["generated"])
        chunks = (output["details"]["frames_per_rollout"] - 1) // (frames_per_window - 1)
        batches += -(-rollouts // summary["batch_size"]) * chunks
    return batches


def setting_key(result: dict) -> tuple[str, int, float]:
    return result["method"], result["num_steps"], result["grid_power"]


def steps_label(num_steps: int, grid_power: float) -> str:
    return f"{num_steps}" if grid_power == 1.0 else f"{num_steps} (grid power {grid_power:g})"


def seed_noise(results: list[dict]) -> dict[str, float]:
    """Run-to-run noise per metric: the standard deviation over seeds of one setting, pooled over every
    setting run with two or more seeds (nan when none was)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(setting_key(r), []).append(r)
    noise = {}
    for metric in METRICS[:3]:
        squares, dof = 0.0, 0
        for runs in groups.values():
            values = [r["generated"][metric] for r in runs]
            if len(values) > 1:
                mean = sum(values) / len(values)
                squares += sum((v - mean) ** 2 for v in values)
                dof += len(values) - 1
        noise[metric] = (squares / dof) ** 0.5 if dof else float("nan")
    return noise


def noise_lines(results: list[dict]) -> list[str]:
    """Each setting's seed-averaged distance minus dopri5's, in units of the run-to-run noise: a setting is
    within noise of dopri5 when every metric is at most 2 noise units worse."""
    noise = seed_noise(results)
    means: dict[tuple, dict[str, float]] = {}
    for key in {setting_key(r) for r in results}:
        runs = [r for r in results if setting_key(r) == key]
        means[key] = {m: sum(r["generated"][m] for r in runs) / len(runs) for m in METRICS[:3]}
        means[key]["nfe"] = runs[0]["nfe_per_window"]
        means[key]["seeds"] = len(runs)
    reference = next((v for k, v in means.items() if k[0] == "dopri5"), None)
    if reference is None:
        return ["(no dopri5 run: no comparison)"]
    lines = [
        "Run-to-run noise (SD over seeds, pooled): " + ", ".join(f"{m} {noise[m]:.4f}" for m in METRICS[:3]),
        "",
        "| sampler | steps | seeds | NFE per window | Δ torsions all | Δ TICA-0 | Δ MSM states | within noise of dopri5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (method, steps, grid_power), values in sorted(means.items(), key=lambda item: item[1]["nfe"]):
        deltas = {m: values[m] - reference[m] for m in METRICS[:3]}
        within = all(deltas[m] <= 2 * noise[m] for m in METRICS[:3])
        lines.append(
            f"| {method} | {steps_label(steps, grid_power)} | {values['seeds']} | {values['nfe']:.0f} | "
            + " | ".join(f"{deltas[m]:+.4f}" for m in METRICS[:3])
            + f" | {'yes' if within else 'no'} |"
        )
    return lines


def write_outputs(results: list[dict], out: Path) -> None:
    (out / "sampler_quality.json").write_text(json.dumps(results, indent=1))
    lines = [
        "| sampler | steps | seed | NFE per window | sampling s | ns / s | torsions all | TICA-0 | MSM states | valid % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        g = r["generated"]
        lines.append(
            f"| {r['method']} | {steps_label(r['num_steps'], r['grid_power'])} | {r['seed']} | {r['nfe_per_window']:.0f} | "
            f"{r['sampling_wall_s']:.0f} | {r['ns_per_wall_s']:.2f} | {g['torsion_jsd_all']:.3f} | "
            f"{g['tica0_jsd']:.3f} | {g['msm_state_jsd']:.3f} | {100 * g['validity_valid_fraction']:.1f} |"
        )
    for row, values in results[0]["md_rows"].items():
        lines.append(
            f"| {row} | | | | | | {values.get('torsion_jsd_all', float('nan')):.3f} | "
            f"{values.get('tica0_jsd', float('nan')):.3f} | {values.get('msm_state_jsd', float('nan')):.3f} | "
            f"{100 * values.get('validity_valid_fraction', float('nan')):.1f} |"
        )
    lines += ["", *noise_lines(results)]
    (out / "sampler_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, metric in zip(axes, METRICS[:3]):
        markers = {"dopri5": "o", "heun": "s", "euler": "^", "ab2": "D"}
        for method, grid_power in sorted({(r["method"], r["grid_power"]) for r in results}):
            points = sorted(
                (r["nfe_per_window"], r["generated"][metric])
                for r in results
                if (r["method"], r["grid_power"]) == (method, grid_power)
            )
            label = method if grid_power == 1.0 else f"{method}, grid power {grid_power:g}"
            ax.plot(*zip(*points), marker=markers.get(method, "x"), label=label)
        for row, values in results[0]["md_rows"].items():
            if metric in values:
                ax.axhline(values[metric], ls="--", lw=0.8, color="grey")
                ax.annotate(row, (ax.get_xlim()[0], values[metric]), fontsize=7, color="grey")
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per window")
        ax.set_ylabel(f"{metric} (lower is better)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "sampler_quality.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--cache", required=True, help="prepared cache holding the split's start frames")
    parser.add_argument("--reference", required=True, help="MD directory of the split (NAME/NAME.pdb + .xtc)")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--settings", nargs="+", default=list(DEFAULT_SETTINGS), help="method:num_steps:seed[:grid_power]"
    )
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sample-args", nargs="*", default=[], help="extra mdgen.sample overrides")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_outputs([measure(setting, args) for setting in args.settings], out)


if __name__ == "__main__":
    main()
