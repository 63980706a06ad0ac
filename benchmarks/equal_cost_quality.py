"""Forward-simulation JSDs of generated trajectories next to MD of the same wall-clock cost, and of 10x that.

    .venv/bin/python benchmarks/equal_cost_quality.py --samples outputs/demo/samples --reference data/demo/md \
        --speed experiments/benchmarks/speed_vs_md.json --out experiments/benchmarks/equal_cost \
        [--factor 10] [--md-protocol auto] [-- extra mdgen.evaluate overrides]

Equal-cost MD baseline (docs/method.md section 12): a peptide's generated trajectories took W seconds of
sampling wall time (network + decoding, per peptide, from the samples' `sampling_summary.json`; model
loading is a one-off and not counted). In W seconds MD produces W x (MD ns per wall-clock second), the
rate measured by `benchmarks/speed_vs_md.py` on the same machine for the protocol that made the
reference (matched on time step and hydrogen mass via the reference's info.json). The baseline is the
reference MD truncated to that length, rounded to whole reference frames; W is the mean over peptides
because `mdgen.evaluate` takes one list of lengths. The evaluator omits a row whose length is not
shorter than the reference, which the table says.

Runs `python -m mdgen.evaluate ... task=forward forward.md_truncations_ps=[equal, factor x equal]` into
OUT/evaluate/ and writes OUT/equal_cost.json, OUT/equal_cost.md (table + exact commands) and
OUT/equal_cost.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
from pathlib import Path

import mdtraj

from mdgen.evaluation.forward import GENERATED, TRIVIAL_BASELINE, md_row_name

SUMMARY_FILE = "sampling_summary.json"
COLUMNS = {  # metrics.json aggregate key -> table header
    "torsion_jsd_backbone": "torsions bb",
    "torsion_jsd_sidechain": "torsions sc",
    "torsion_jsd_all": "torsions all",
    "tica0_jsd": "TICA-0",
    "tica01_jsd": "TICA-0,1",
    "msm_state_jsd": "MSM states",
    "validity_valid_fraction": "valid %",
}


def generation_cost(samples_dir: Path) -> dict:
    """Per-peptide sampling wall time and generated ns, from the samples' sampling_summary.json."""
    path = samples_dir / SUMMARY_FILE
    if not path.is_file():
        raise SystemExit(f"{path} not found: the samples must come from `python -m mdgen.sample`")
    summary = json.loads(path.read_text())
    per_peptide = {
        out["name"]: {"wall_s": out["wall_s"], "generated_ns": out["generated_ns"]}
        for out in summary["outputs"]
        if out["generated"]
    }
    if not per_peptide:
        raise SystemExit(
            f"{path}: every output was skipped as already finished, so no generation time was recorded; "
            "sample into a fresh directory"
        )
    skipped = [out["name"] for out in summary["outputs"] if out["skipped"]]
    return {
        "per_peptide": per_peptide,
        "mean_wall_s": sum(p["wall_s"] for p in per_peptide.values()) / len(per_peptide),
        "device": summary["device"],
        "batch_size": summary["batch_size"],
        "solver": summary["solver"],
        "run_total_wall_s": summary["total_wall_s"],
        "partly_skipped": skipped,
    }


def reference_info(reference_dir: Path, names: list[str]) -> dict[str, dict]:
    """Per peptide: duration and frame interval of the reference XTC, and its info.json protocol."""
    info = {}
    for name in names:
        traj = mdtraj.load(
            str(reference_dir / name / f"{name}.xtc"), top=str(reference_dir / name / f"{name}.pdb")
        )
        record_path = reference_dir / name / "info.json"
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
        info[name] = {
            "timestep_ps": float(traj.timestep),
            "duration_ps": traj.n_frames * float(traj.timestep),  # the evaluator's convention
            "md_timestep_fs": record.get("timestep_fs"),
            "hydrogen_mass_amu": record.get("hydrogen_mass_amu"),
        }
    return info


def choose_md_rate(speed: dict, reference: dict[str, dict], requested: str) -> dict:
    """The speed record's MD entry for the protocol that made the reference (or the requested one)."""
    runs = {run["protocol"]: run for run in speed["md"]}
    if requested != "auto":
        if requested not in runs:
            raise SystemExit(f"--md-protocol {requested}: not in the speed record (has {sorted(runs)})")
        return runs[requested]
    made_with = {(r["md_timestep_fs"], r["hydrogen_mass_amu"]) for r in reference.values()}
    if len(made_with) != 1:
        raise SystemExit(
            f"reference peptides were made with several protocols {made_with}; pass --md-protocol"
        )
    timestep_fs, hydrogen_mass = made_with.pop()
    for run in runs.values():
        if run["timestep_fs"] == timestep_fs and run["hydrogen_mass_amu"] == hydrogen_mass:
            return run
    raise SystemExit(
        f"no MD rate in the speed record for the reference's protocol (time step {timestep_fs} fs, hydrogen "
        f"mass {hydrogen_mass}); pass --md-protocol one of {sorted(runs)}"
    )


def baseline_lengths(wall_s: float, md_ns_per_s: float, frame_ps: float, factor: float) -> dict[str, dict]:
    """Equal-cost and factor x cost MD lengths in ps, exact and rounded to whole reference frames."""
    lengths = {}
    for label, cost_s in (("equal cost", wall_s), (f"{factor:g}x cost", factor * wall_s)):
        exact_ps = cost_s * md_ns_per_s * 1000.0
        frames = round(exact_ps / frame_ps)
        lengths[label] = {
            "cost_s": cost_s,
            "exact_ps": exact_ps,
            "frames": frames,
            "length_ps": frames * frame_ps,
        }
    return lengths


def run_evaluator(args: argparse.Namespace, lengths_ps: list[float], out_dir: Path) -> tuple[list[str], dict]:
    command = [
        sys.executable,
        "-m",
        "mdgen.evaluate",
        f"samples_dir={args.samples}",
        f"reference_dir={args.reference}",
        "task=forward",
        f"out_dir={out_dir}",
        f"forward.md_truncations_ps=[{','.join(f'{x:g}' for x in lengths_ps)}]",
        f"plots={str(args.plots).lower()}",
        f"n_jobs={args.n_jobs}",
        "hydra.output_subdir=null",  # records only: metrics.json and report.md (+ plots)
        "hydra/job_logging=stdout",
        *args.overrides,
    ]
    result = subprocess.run(command, text=True)
    if result.returncode != 0:
        raise SystemExit(f"mdgen.evaluate failed (exit {result.returncode}): {shlex.join(command)}")
    return command, json.loads((out_dir / "metrics.json").read_text())


def cell(aggregate: dict, key: str) -> str:
    """mean ± s.e.m. over peptides; metrics.json stores undefined values (NaN) as null."""
    entry = aggregate.get(key)
    if entry is None or entry["mean"] is None:
        return "–"
    scale, digits = (100.0, 1) if key == "validity_valid_fraction" else (1.0, 3)
    text = f"{entry['mean'] * scale:.{digits}f}"
    if entry["sem"] is not None:
        text += f" ± {entry['sem'] * scale:.{digits}f}"
    return text


def build_rows(metrics: dict, lengths: dict[str, dict], md_ns_per_s: float, cost: dict) -> list[dict]:
    """Table rows: generated, MD equal cost, MD factor x cost, first frame repeated."""
    omitted = {}
    for peptide in metrics["peptides"].values():
        omitted.update(peptide.get("omitted_rows", {}))
    rows = [{"row": "generated", "cost_s": cost["mean_wall_s"], "evaluator_row": GENERATED}]
    for label, length in lengths.items():
        row = {"row": f"MD {label} ({length['length_ps']:g} ps)", "cost_s": length["cost_s"]} | length
        name = md_row_name(length["length_ps"]) if length["frames"] >= 1 else None
        if name is None:
            row["omitted"] = (
                f"MD makes {length['exact_ps']:.3g} ps in {length['cost_s']:.3g} s: less than one reference frame"
            )
        elif name not in metrics["aggregate"]:
            row["omitted"] = omitted.get(name, "not evaluated")
        row["evaluator_row"] = name
        rows.append(row)
    rows.append({"row": "first frame repeated", "cost_s": 0.0, "evaluator_row": TRIVIAL_BASELINE})
    for row in rows:
        aggregate = metrics["aggregate"].get(row["evaluator_row"]) if "omitted" not in row else None
        row["metrics"] = {key: (aggregate or {}).get(key) for key in COLUMNS}
        row["cells"] = [cell(aggregate, key) for key in COLUMNS] if aggregate else ["–"] * len(COLUMNS)
    return rows


def markdown(record: dict) -> str:
    cost, md = record["generation"], record["md_rate"]
    header = "| row | wall s per peptide | " + " | ".join(COLUMNS.values()) + " |"
    lines = [
        f"Equal-cost quality, {record['date_utc']}: samples `{record['samples']}` "
        f"({len(cost['per_peptide'])} peptides: {', '.join(cost['per_peptide'])}; sampled on {cost['device']}, "
        f"batch {cost['batch_size']}), reference `{record['reference']}`. Generation W = "
        f"{cost['mean_wall_s']:.3g} s per peptide (mean sampling wall time). MD rate "
        f"{md['ns_per_wall_s']:.4g} ns/s ({md['ns_per_day']:.0f} ns/day, protocol {md['protocol']}, "
        f"{md['platform']} {md['threads']} thread(s)) from `{record['speed']}` ({record['speed_hardware']}).",
        "",
        header,
        "|" + "---|" * (len(COLUMNS) + 2),
    ]
    for row in record["rows"]:
        lines.append(f"| {row['row']} | {row['cost_s']:.3g} | " + " | ".join(row["cells"]) + " |")
    lines.append("")
    lines.append(
        "JS distances, mean ± s.e.m. over peptides (lower is better); valid % = physically valid frames. "
        "MD rows are prefixes of the reference itself (optimistic: the evaluator's note)."
    )
    for row in record["rows"]:
        if "omitted" in row:
            lines.append(f"- **{row['row']} omitted**: {row['omitted']}.")
    lines += record["notes"]
    lines += ["", f"Command: `{record['command']}`", f"Evaluator: `{record['evaluator_command']}`"]
    return "\n".join(lines)


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [key for key in COLUMNS if key != "validity_valid_fraction"]
    rows = [row for row in record["rows"] if "omitted" not in row]
    fig, ax = plt.subplots(figsize=(9, 3))
    width = 0.8 / max(len(rows), 1)
    for i, row in enumerate(rows):
        means = [(row["metrics"][key] or {}).get("mean") for key in keys]
        means = [np.nan if mean is None else mean for mean in means]
        ax.bar(np.arange(len(keys)) + i * width, means, width, label=f"{row['row']}, {row['cost_s']:.3g} s")
    ax.set_xticks(np.arange(len(keys)) + width * (len(rows) - 1) / 2, [COLUMNS[k] for k in keys], fontsize=8)
    ax.set_ylabel("JS distance (lower is better)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=Path, required=True, help="forward samples of mdgen.sample")
    parser.add_argument("--reference", type=Path, required=True, help="reference MD (NAME/NAME.{pdb,xtc})")
    parser.add_argument("--speed", type=Path, required=True, help="JSON of benchmarks/speed_vs_md.py")
    parser.add_argument("--out", type=Path, default=Path("experiments/benchmarks/equal_cost"))
    parser.add_argument("--factor", type=float, default=10.0, help="the second MD row costs factor x W")
    parser.add_argument(
        "--md-protocol", default="auto", help="auto (match the reference) | a speed-record protocol"
    )
    parser.add_argument("--n-jobs", type=int, default=1, help="peptides evaluated in parallel")
    parser.add_argument("--plots", action="store_true", help="also write the evaluator's plots")
    parser.add_argument("overrides", nargs="*", help="extra mdgen.evaluate overrides (after --)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = shlex.join(
        ["python", "benchmarks/equal_cost_quality.py", *(sys.argv[1:] if argv is None else argv)]
    )
    cost = generation_cost(args.samples)
    reference = reference_info(args.reference, list(cost["per_peptide"]))
    speed = json.loads(args.speed.read_text())
    md_rate = choose_md_rate(speed, reference, args.md_protocol)
    frame_ps = {info["timestep_ps"] for info in reference.values()}
    if len(frame_ps) != 1:
        raise SystemExit(f"reference trajectories have different frame intervals {sorted(frame_ps)} ps")
    lengths = baseline_lengths(cost["mean_wall_s"], md_rate["ns_per_wall_s"], frame_ps.pop(), args.factor)
    to_evaluate = sorted({length["length_ps"] for length in lengths.values() if length["frames"] >= 1})
    evaluator_command, metrics = run_evaluator(args, to_evaluate, args.out / "evaluate")

    hw = speed["hardware"]
    notes = []
    if speed["device"].split(":")[0] != cost["device"].split(":")[0]:
        notes.append(
            f"- Samples were generated on {cost['device']}, the speed record's generator ran on {speed['device']}: "
            "check that W and the MD rate come from the same machine."
        )
    if cost["partly_skipped"]:
        notes.append(
            f"- Outputs skipped as finished in the sampling run: {cost['partly_skipped']} (W undercounts)."
        )
    shortest_ps = min(info["duration_ps"] for info in reference.values())
    if lengths["equal cost"]["length_ps"] >= shortest_ps:
        notes.append(
            f"- Equal-cost MD ({lengths['equal cost']['exact_ps']:.4g} ps) is not shorter than the reference "
            f"MD ({shortest_ps:g} ps): the generator is slower than MD here, and the row cannot be evaluated."
        )
    record = {
        "benchmark": "equal_cost_quality",
        "command": command,
        "evaluator_command": shlex.join(["python", *evaluator_command[1:]]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "samples": str(args.samples),
        "reference": str(args.reference),
        "speed": str(args.speed),
        "speed_hardware": f"{hw['gpu'] or hw['cpu_model']}, {hw['cpu_cores']} cores, {speed['date_utc']}",
        "generation": cost,
        "reference_info": reference,
        "md_rate": md_rate,
        "baselines": lengths,
        "rows": build_rows(metrics, lengths, md_rate["ns_per_wall_s"], cost),
        "notes": notes,
    }
    record["markdown"] = markdown(record)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "equal_cost.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "equal_cost.md").write_text(record["markdown"] + "\n")
    plot(record, args.out / "equal_cost.png")
    print(record["markdown"])
    print(
        f"\nwrote {args.out / 'equal_cost.json'}, {args.out / 'equal_cost.md'}, {args.out / 'equal_cost.png'}"
    )
    return record


if __name__ == "__main__":
    main()
