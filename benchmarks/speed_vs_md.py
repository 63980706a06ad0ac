"""Generated nanoseconds per wall-clock second: MDGen forward rollouts against OpenMM MD, one run, one machine.

    .venv/bin/python benchmarks/speed_vs_md.py --ckpt CKPT --sequence MKWE \
        [--pdb data/demo/md/MKWE/MKWE.pdb] [--md-ps 20] [--num-chunks 5] [--batch-size 1 8] \
        [--device auto] [--out experiments/benchmarks/speed_vs_md.json]

(a) Generation: for each batch size B, B rollouts of K chained windows are sampled together through the
    sampling library (`mdgen.sampling.run.run_sampling`, what `python -m mdgen.sample` runs). The rate is
    generated trajectory time (frames x frame interval, as `sampling_summary.json` counts it) per second
    of sampling wall time (network + decoding). Loading the checkpoint and one warm-up window (1 rollout,
    1 chunk) are one-off start-up costs: reported separately, not in the rate. Building and minimising
    a start structure from the sequence (without --pdb) and writing files are outside the rate too.
(b) MD: the same peptide built from its sequence, amber14 + OBC2 implicit solvent (`implicit_obc2`, the
    reference data's protocol) at 350 K, with the mdgen.md.simulation set-up functions, at 2 fs
    (../shared/data) and with HMR 1.5 amu at 4 fs (data/demo). After minimisation and a tiny
    equilibration, --md-ps ps of production are timed, reading heavy-atom positions every save
    interval as a production run does. Set-up is reported separately.
Ratio = generated ns per s / MD ns per s, for every (batch size, MD protocol) pair.

Writes --out (JSON), the same stem with .md (table + exact command) and .png (rates, log scale).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform as host_platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import openmm
import torch
import yaml
from openmm import unit

from mdgen.config import checkpoint_task, config_dir, load_module
from mdgen.md.simulation import (
    SimulationProtocol,
    create_system,
    heavy_atom_indices,
    make_integrator,
    platform_properties,
    select_platform,
)
from mdgen.sampling.engine import resolve_device
from mdgen.sampling.request import SamplingRequest
from mdgen.sampling.run import run_sampling
from mdgen.sampling.sampler_options import SolverOptions
from mdgen.tasks import TaskSpec

# The two OBC2 protocols of the reference data: ../shared/data (2 fs) and data/demo (HMR, 4 fs).
MD_PROTOCOLS = {
    "obc2_2fs": {"timestep_fs": 2.0, "hydrogen_mass_amu": None},
    "obc2_hmr_4fs": {"timestep_fs": 4.0, "hydrogen_mass_amu": 1.5},
}
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class GenerationTiming:
    batch_size: int
    rollouts: int
    num_chunks: int
    generated_ns: float  # frames x frame interval, summed over rollouts
    sampling_wall_s: float  # network + decoding only
    nfe: int  # ODE function evaluations (shared by a batch)
    ns_per_wall_s: float


@dataclass(frozen=True)
class MDTiming:
    protocol: str
    timestep_fs: float
    hydrogen_mass_amu: float | None
    platform: str
    threads: int
    equilibration_ps: float
    production_ps: float
    setup_wall_s: float  # build, minimise, equilibrate
    production_wall_s: float
    ns_per_wall_s: float
    ns_per_day: float


def hardware_record(device: torch.device) -> dict:
    """What the figures were measured on: CPU model and cores, GPU, library versions, load."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line)
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = host_platform.processor() or "unknown"
    return {
        "cpu_model": model,
        "cpu_cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "openmm": openmm.__version__,
        "python": host_platform.python_version(),
        "load_average_1min": os.getloadavg()[0],
    }


def default_sampler_name() -> str:
    """The sampler `python -m mdgen.sample` uses unless told otherwise (conf/sample.yaml's defaults list)."""
    defaults = yaml.safe_load((config_dir() / "sample.yaml").read_text())["defaults"]
    return next(entry["sampler"] for entry in defaults if isinstance(entry, dict) and "sampler" in entry)


def load_solver(name: str, num_steps: int | None, task: TaskSpec) -> SolverOptions:
    """ODE solver options as `sampler=NAME` selects them in mdgen.sample (conf/sampler/NAME.yaml over the
    checkpoint task's default sampler)."""
    values = yaml.safe_load((config_dir() / "sampler" / f"{name}.yaml").read_text())
    solver = SolverOptions.of_task(task, values)
    return solver if num_steps is None else replace(solver, num_steps=num_steps)


def time_generation(
    module, solver: SolverOptions, args: argparse.Namespace, out_dir: Path, batch_size: int, num_chunks: int
) -> GenerationTiming:
    """B rollouts sampled as one batch into a fresh directory; the library's own timing."""
    start = {"input_pdb": args.pdb} if args.pdb else {}
    request = SamplingRequest(
        ckpt_path=args.ckpt,
        out_dir=str(out_dir),
        device=args.device,
        precision=args.precision,
        sequences=(args.sequence,),
        num_rollouts=batch_size,
        batch_size=batch_size,
        num_chunks=num_chunks,
        per_rollout_files=True,
        **start,
    )
    report = run_sampling(request, module, solver)
    return GenerationTiming(
        batch_size=batch_size,
        rollouts=batch_size,
        num_chunks=num_chunks,
        generated_ns=report.generated_ns,
        sampling_wall_s=report.sampling_wall_s,
        nfe=report.nfe,
        ns_per_wall_s=report.ns_per_wall_s(),
    )


def time_md(
    sequence: str, name: str, protocol: SimulationProtocol, production_ps: float, seed: int
) -> MDTiming:
    """Build, minimise and equilibrate as mdgen.md.simulation does, then time production only."""
    setup_start = time.perf_counter()
    platform = select_platform(protocol.platform)
    topology, positions, system = create_system(protocol, sequence)
    integrator = make_integrator(protocol, seed)
    context = openmm.Context(system, integrator, platform, platform_properties(platform, protocol.threads))
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=protocol.minimization_max_iterations)
    context.setVelocitiesToTemperature(protocol.temperature_K * unit.kelvin, seed)
    integrator.step(protocol.steps_in(protocol.equilibration_ps * 1000.0, "equilibration_ps"))
    context.getState(getEnergy=True)  # waits for the device to finish
    setup_wall_s = time.perf_counter() - setup_start

    heavy = heavy_atom_indices(topology)
    total_steps = protocol.steps_in(production_ps * 1000.0, "--md-ps")
    save_every = protocol.steps_in(protocol.save_interval_ps * 1000.0, "--md-save-interval-ps")
    start, done = time.perf_counter(), 0
    while done < total_steps:
        steps = min(save_every, total_steps - done)
        integrator.step(steps)
        done += steps
        state = context.getState(getPositions=True)  # a frame, as production saves one
        state.getPositions(asNumpy=True)[heavy]
    production_wall_s = time.perf_counter() - start
    ns_per_s = production_ps / 1000.0 / production_wall_s
    return MDTiming(
        protocol=name,
        timestep_fs=protocol.timestep_fs,
        hydrogen_mass_amu=protocol.hydrogen_mass_amu,
        platform=platform.getName(),
        threads=protocol.threads if platform.getName() == "CPU" else 1,
        equilibration_ps=protocol.equilibration_ps,
        production_ps=production_ps,
        setup_wall_s=setup_wall_s,
        production_wall_s=production_wall_s,
        ns_per_wall_s=ns_per_s,
        ns_per_day=ns_per_s * SECONDS_PER_DAY,
    )


def ratios(generation: list[GenerationTiming], md: list[MDTiming]) -> list[dict]:
    return [
        {
            "batch_size": gen.batch_size,
            "md_protocol": run.protocol,
            "generated_ns_per_wall_s": gen.ns_per_wall_s,
            "md_ns_per_wall_s": run.ns_per_wall_s,
            "ratio": gen.ns_per_wall_s / run.ns_per_wall_s,
        }
        for gen in generation
        for run in md
    ]


def markdown(record: dict) -> str:
    hw = record["hardware"]
    device = hw["gpu"] or f"{hw['cpu_model']}, {hw['cpu_cores']} cores"
    md = {run["protocol"]: run for run in record["md"]}
    ratio_of = {(entry["batch_size"], entry["md_protocol"]): entry["ratio"] for entry in record["ratios"]}
    lines = [
        f"Speed, {record['date_utc']}, {device}, torch {hw['torch']} ({hw['torch_threads']} threads), "
        f"OpenMM {hw['openmm']}, load average {hw['load_average_1min']:.1f} at start; "
        f"{record['sequence']}, checkpoint `{record['checkpoint']}`, solver {record['solver']['method']}; "
        f"start-up {record['startup']['model_load_s']:.1f} s load + {record['startup']['warmup_s']:.1f} s "
        "warm-up (not in the rates).",
        "",
        "| generator | generated ns/s | "
        + " | ".join(
            f"MD {name} ns/s ({run['platform']}, {run['threads']} thr) | ratio gen/MD"
            for name, run in md.items()
        )
        + " |",
        "|---|---|" + "---|---|" * len(md),
    ]
    for gen in record["generation"]:
        cells = [
            f"B={gen['batch_size']}, {gen['num_chunks']} chunks, {gen['nfe']} NFE",
            f"{gen['ns_per_wall_s']:.4g}",
        ]
        for name, run in md.items():
            ratio = ratio_of[gen["batch_size"], name]
            cells += [f"{run['ns_per_wall_s']:.4g} ({run['ns_per_day']:.0f} ns/day)", f"{ratio:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{record['command']}`"]
    return "\n".join(lines)


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"MDGen B={g['batch_size']}" for g in record["generation"]]
    labels += [f"MD {m['protocol']}" for m in record["md"]]
    rates = [g["ns_per_wall_s"] for g in record["generation"]] + [m["ns_per_wall_s"] for m in record["md"]]
    colors = ["tab:blue"] * len(record["generation"]) + ["tab:gray"] * len(record["md"])
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(labels, rates, color=colors)
    ax.set_yscale("log")
    ax.set_ylabel("trajectory ns per wall-clock s")
    ax.set_title(
        f"{record['sequence']}: {record['hardware']['gpu'] or record['hardware']['cpu_model']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def md_protocol(name: str, args: argparse.Namespace) -> SimulationProtocol:
    frames = args.md_ps / args.md_save_interval_ps
    if args.md_ps <= 0 or abs(frames - round(frames)) > 1e-6:
        raise SystemExit(
            f"--md-ps {args.md_ps:g} must be a positive whole multiple of --md-save-interval-ps "
            f"{args.md_save_interval_ps:g}"
        )
    return SimulationProtocol(
        solvent="implicit_obc2",
        production_ns=args.md_ps / 1000.0,
        equilibration_ps=args.md_equilibration_ps,
        save_interval_ps=args.md_save_interval_ps,
        platform=args.md_platform,
        threads=args.md_threads,
        **MD_PROTOCOLS[name],
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="forward-task checkpoint of mdgen.train")
    parser.add_argument("--sequence", required=True, help="peptide, one-letter codes (MKWE)")
    parser.add_argument(
        "--pdb", default=None, help="start frame for the generator (else built from --sequence)"
    )
    parser.add_argument("--md-ps", type=float, default=20.0, help="timed MD production, ps")
    parser.add_argument("--md-equilibration-ps", type=float, default=2.0, help="untimed MD equilibration, ps")
    parser.add_argument("--md-save-interval-ps", type=float, default=10.0, help="MD frame interval, ps")
    parser.add_argument("--md-protocols", nargs="+", default=list(MD_PROTOCOLS), choices=list(MD_PROTOCOLS))
    parser.add_argument("--md-platform", default="auto", help="auto | Reference | CPU | CUDA | OpenCL")
    parser.add_argument("--md-threads", type=int, default=1, help="OpenMM CPU threads (data/demo used 1)")
    parser.add_argument("--num-chunks", type=int, default=5, help="chained windows per rollout")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 8], help="rollouts sampled together")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--precision", default="32", help="32 | bf16")
    parser.add_argument(
        "--sampler", default=default_sampler_name(), help="conf/sampler/NAME.yaml (default: mdgen.sample's)"
    )
    parser.add_argument("--sampler-steps", type=int, default=None, help="override the sampler's num_steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=1, help="MD seed (OpenMM reads 0 as random)")
    parser.add_argument("--out", default="experiments/benchmarks/speed_vs_md.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/speed_vs_md.py", *(sys.argv[1:] if argv is None else argv)])
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    solver = load_solver(args.sampler, args.sampler_steps, checkpoint_task(args.ckpt))
    protocols = [(name, md_protocol(name, args)) for name in args.md_protocols]  # checked before any work
    hardware = hardware_record(device)

    load_start = time.perf_counter()
    module = load_module(args.ckpt, map_location=device, use_ema=True, expected_task="forward")
    model_load_s = time.perf_counter() - load_start
    with tempfile.TemporaryDirectory(prefix="speed_vs_md_") as scratch:
        scratch = Path(scratch)
        warmup = time_generation(module, solver, args, scratch / "warmup", batch_size=1, num_chunks=1)
        generation = [
            time_generation(
                module, solver, args, scratch / f"batch_{batch_size}", batch_size, args.num_chunks
            )
            for batch_size in args.batch_size
        ]
    md = [
        time_md(args.sequence.upper(), name, protocol, args.md_ps, args.seed) for name, protocol in protocols
    ]

    record = {
        "benchmark": "speed_vs_md",
        "command": command,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": hardware | {"load_average_1min_end": os.getloadavg()[0]},
        "checkpoint": args.ckpt,
        "sequence": args.sequence.upper(),
        "start": args.pdb or "built from the sequence and minimised",
        "task": {"num_frames": module.task.num_frames, "frame_interval_ps": module.task.frame_interval_ps},
        "device": str(device),
        "precision": args.precision,
        "solver": solver.as_kwargs(),
        "startup": {"model_load_s": model_load_s, "warmup_s": warmup.sampling_wall_s},
        "generation": [asdict(gen) for gen in generation],
        "md": [asdict(run) for run in md],
        "ratios": ratios(generation, md),
    }
    record["markdown"] = markdown(record)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(record["markdown"] + "\n")
    plot(record, out.with_suffix(".png"))
    print(record["markdown"])
    print(f"\nwrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return record


if __name__ == "__main__":
    main()
