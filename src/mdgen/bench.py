"""`python -m mdgen.bench train [train overrides] [--batch-size B] [--num-residues L] [--steps N] ...`

Times training steps (loss forward + backward + gradient clipping + optimizer step) of the configured
model and task on synthetic windows of B x T frames x L residues, on the best device present (or
--device). T is `task.num_frames`; the data config is not read, so no dataset is needed. Prints one
Markdown row (for experiments/training/README.md) and the same record as JSON.

Examples:
    python -m mdgen.bench train model=base task=forward --batch-size 8 --num-residues 4 --steps 3
    python -m mdgen.bench train experiment=demo_forward --batch-size 8 --steps 20
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass

import torch

from mdgen.config import build_module, compose_config
from mdgen.errors import UserError, user_errors
from mdgen.geometry import quaternion_to_rotation


@dataclass(frozen=True)
class TrainBenchmark:
    model_parameters: int
    task: str
    batch_size: int
    num_frames: int
    num_residues: int
    device: str
    precision: str
    threads: int
    steps: int
    step_time_s: float  # median over the timed steps
    frames_per_s: float  # B * T / step time
    peak_memory_gib: float  # CUDA: max allocated; CPU: peak resident set size of the process


def synthetic_batch(batch_size: int, num_frames: int, num_residues: int, device: torch.device, seed: int = 0):
    """A batch dict (docs/interfaces.md keys) of random rigids and torsions; values do not affect timing."""
    g = torch.Generator().manual_seed(seed)
    angles = torch.rand(batch_size, num_frames, num_residues, 7, generator=g) * 6.283
    batch = {
        "rots": quaternion_to_rotation(torch.randn(batch_size, num_frames, num_residues, 4, generator=g)),
        "trans": 3.0 * torch.randn(batch_size, num_frames, num_residues, 3, generator=g),  # Å
        "torsions": torch.stack([angles.sin(), angles.cos()], dim=-1),
        "torsion_mask": torch.ones(batch_size, num_residues, 7),
        "aatype": torch.randint(0, 20, (batch_size, num_residues), generator=g),
        "residue_mask": torch.ones(batch_size, num_residues),
        "residue_index": torch.arange(num_residues).expand(batch_size, -1).clone(),
    }
    return {key: value.to(device) for key, value in batch.items()}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def benchmark_train(
    overrides: list[str],
    batch_size: int,
    num_residues: int,
    steps: int,
    warmup: int,
    device_name: str,
    precision: str,
    seed: int = 0,
) -> TrainBenchmark:
    if precision not in ("32-true", "bf16-mixed"):
        raise UserError(f"--precision must be 32-true or bf16-mixed, got {precision!r}")
    device = torch.device(
        device_name if device_name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    cfg = compose_config(overrides)
    if device.type == "cuda":  # see mdgen.train: 'medium' means bfloat16 matmuls on CPUs
        torch.set_float32_matmul_precision(cfg.matmul_precision)
    torch.manual_seed(seed)
    module = build_module(cfg).to(device).train()
    optimizer = module.optimizer_factory(params=module.parameters())
    batch = synthetic_batch(batch_size, module.task.num_frames, num_residues, device, seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = module.compute_loss(batch, generator).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()

    for _ in range(warmup):
        train_step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        _synchronize(device)
        start = time.perf_counter()
        train_step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    step_time = sorted(times)[len(times) // 2]
    return TrainBenchmark(
        model_parameters=sum(p.numel() for p in module.network.parameters()),
        task=module.task.name,
        batch_size=batch_size,
        num_frames=module.task.num_frames,
        num_residues=num_residues,
        device=torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor() or 'x86'})",
        precision=precision,
        threads=torch.get_num_threads(),
        steps=steps,
        step_time_s=step_time,
        frames_per_s=batch_size * module.task.num_frames / step_time,
        peak_memory_gib=_peak_memory_gib(device),
    )


def markdown_row(command: str, result: TrainBenchmark) -> str:
    return (
        f"| `{command}` | {result.device}, {result.threads} threads | {result.precision} | "
        f"{result.model_parameters / 1e6:.2f} M | B={result.batch_size} T={result.num_frames} "
        f"L={result.num_residues} | {result.step_time_s:.3f} s | {result.frames_per_s:.0f} | "
        f"{result.peak_memory_gib:.2f} GiB |"
    )


@user_errors("mdgen.bench")
def main(argv: list[str] | None = None) -> TrainBenchmark:
    parser = argparse.ArgumentParser(prog="python -m mdgen.bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("mode", choices=["train"], help="what to time (training steps)")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides of conf/train.yaml (model=base task=forward)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-residues", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", default="32-true", help="32-true | bf16-mixed")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = benchmark_train(
        args.overrides,
        args.batch_size,
        args.num_residues,
        args.steps,
        args.warmup,
        args.device,
        args.precision,
    )
    command = " ".join(["python -m mdgen.bench", *(argv if argv is not None else sys.argv[1:])])
    print(markdown_row(command, result))
    print(json.dumps(asdict(result)))
    return result


def cli() -> None:
    """Console script `mdgen-bench`: `main` without its result (a console script exits with it)."""
    main()


if __name__ == "__main__":
    main()
