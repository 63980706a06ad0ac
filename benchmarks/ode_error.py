"""Discretization error of the sampler settings: each setting's generated tokens against a tight dopri5.

    .venv/bin/python benchmarks/ode_error.py --ckpt checkpoints/tetrapeptide_forward.ckpt \
        --pdb ../shared/data/tetrapeptides/{FLRH,AKIR,IPGD}/*.pdb --out experiments/quality/ode_error/ode_error.json

For every start structure, one batch of B first windows (frame 0 = the PDB's first frame, as a forward
rollout's first chunk) is sampled from the same noise (one generator seed) with every setting and with
dopri5 at rtol 1e-6 / atol 1e-8, the reference. The error of a setting is the RMS difference of its tokens
from the reference's (tokens as `MDGenModule.sample` returns them: translations in Å), divided by the RMS
of the reference tokens. It isolates what a JS distance
against MD mixes with model error and sampling noise: how far a cheap solver lands from the ODE's
solution. Settings are METHOD:NUM_STEPS[:GRID_POWER] (`mdgen.interpolant.ode_solvers.time_grid`).

Writes --out (JSON) and the same stem with .md (table + command) and .png (error against evaluations).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from mdgen.config import load_module
from mdgen.sampling.engine import window_batch
from mdgen.sampling.inputs import read_input_trajectory, structure_from_frame

DEFAULT_SETTINGS = (
    "dopri5:50",
    "heun:11",
    "heun:11:1.25",
    "ab2:10",
    "ab2:11",
    "ab2:12",
    "ab2:13",
    "ab2:10:1.25",
    "ab2:11:1.25",
    "ab2:12:1.25",
    "ab2:13:1.25",
    "ab2:11:1.5",
    "ab2:11:2",
)


def parse_setting(setting: str) -> dict:
    parts = setting.split(":")
    if len(parts) not in (2, 3):
        raise SystemExit(f"--settings: {setting!r} is not METHOD:NUM_STEPS[:GRID_POWER]")
    return {
        "method": parts[0],
        "num_steps": int(parts[1]),
        "grid_power": float(parts[2]) if len(parts) == 3 else 1.0,
    }


def first_window_batch(pdb: str, num_frames: int, batch_size: int) -> dict[str, torch.Tensor]:
    start = structure_from_frame(read_input_trajectory(pdb), 0, Path(pdb).stem)
    atom14 = np.broadcast_to(start.atom14, (batch_size, num_frames, *start.atom14.shape)).astype(np.float32)
    aatype = np.broadcast_to(start.aatype, (batch_size, *start.aatype.shape))
    return window_batch(torch.as_tensor(atom14), torch.as_tensor(np.array(aatype, dtype=np.int64)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--pdb", nargs="+", required=True, help="start structures (first frame used)")
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/ode_error.py", *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(args.threads)
    settings = [parse_setting(s) for s in args.settings]
    module = load_module(args.ckpt, map_location="cpu", use_ema=True, expected_task="forward").eval()

    def sample(batch: dict, **solver) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(args.seed)
        result = module.sample(batch, generator=generator, **solver)
        return result.tokens.double(), result.nfe

    errors: dict[str, list[float]] = {s: [] for s in args.settings}
    nfe: dict[str, int] = {}
    for pdb in args.pdb:
        batch = first_window_batch(pdb, module.task.num_frames, args.batch_size)
        reference, reference_nfe = sample(batch, method="dopri5", rtol=1e-6, atol=1e-8)
        scale = reference.pow(2).mean().sqrt()
        for name, setting in zip(args.settings, settings):
            tokens, used = sample(batch, **setting)
            errors[name].append(float((tokens - reference).pow(2).mean().sqrt() / scale))
            nfe[name] = used
        print(f"{Path(pdb).stem}: reference {reference_nfe} evaluations", flush=True)

    rows = [
        {**setting, "setting": name, "nfe": nfe[name], "relative_rms_error": errors[name],
         "mean": float(np.mean(errors[name]))}
        for name, setting in zip(args.settings, settings)
    ]  # fmt: skip
    record = {"benchmark": "ode_error", "command": command, "checkpoint": args.ckpt, "pdbs": args.pdb,
              "batch_size": args.batch_size, "seed": args.seed, "reference": "dopri5 rtol 1e-6 atol 1e-8",
              "rows": rows}  # fmt: skip
    lines = [
        "| setting | grid power | evaluations per window | relative RMS error (mean) | per start structure |",
        "|---|---|---|---|---|",
        *(
            f"| {r['method']} {r['num_steps']} | {r['grid_power']:g} | {r['nfe']} | {r['mean']:.4f} | "
            + " ".join(f"{e:.4f}" for e in r["relative_rms_error"])
            + " |"
            for r in sorted(rows, key=lambda r: (r["nfe"], r["mean"]))
        ),
        "",
        f"Command: `{command}`",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(rows, out.with_suffix(".png"))
    print("\n".join(lines))
    return record


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, grid_power in sorted({(r["method"], r["grid_power"]) for r in rows}):
        points = sorted(
            (r["nfe"], r["mean"]) for r in rows if (r["method"], r["grid_power"]) == (method, grid_power)
        )
        label = method if grid_power == 1.0 else f"{method}, grid power {grid_power:g}"
        ax.plot(*zip(*points), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("network evaluations per window")
    ax.set_ylabel("token RMS error / token RMS (vs tight dopri5)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
