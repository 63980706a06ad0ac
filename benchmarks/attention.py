"""Peak memory and time of frame attention: SinkAttention (fused SDPA) vs explicit softmax(QK^T)V.

The original MDGen materialises every (T x T) attention map; for forward simulation (B=8, L=4, T=1000,
16 heads) that is 32 x 16 x 1000 x 1000 floats = 2 GB per layer in fp32. SDPA avoids it.

    .venv/bin/python benchmarks/attention.py --frames 1000 --sequences 32 [--backward]

Each variant runs in a fresh subprocess so that its peak resident memory (ru_maxrss, CPU) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from mdgen.model import SinkAttention


def explicit_attention(
    attention: SinkAttention, x: torch.Tensor, positions: torch.Tensor, key_mask: torch.Tensor
):
    """The same maths as SinkAttention.forward with the (N, H, S, S + 1) score tensor materialised."""
    n, s, d = x.shape
    h = attention.num_heads

    def heads(y):
        return y.view(n, s, h, d // h).transpose(1, 2)  # (N, H, S, d/H)

    q = attention.rotary(heads(attention.q_proj(x)), positions)
    k = attention.rotary(heads(attention.k_proj(x)), positions)
    v = heads(attention.v_proj(x))
    k = torch.cat([k, attention.sink_key.view(1, h, 1, -1).expand(n, -1, -1, -1)], dim=2)
    v = torch.cat([v, attention.sink_value.view(1, h, 1, -1).expand(n, -1, -1, -1)], dim=2)
    scores = q @ k.transpose(-1, -2) * (d // h) ** -0.5  # (N, H, S, S + 1)
    visible = torch.cat([key_mask, key_mask.new_ones(n, 1)], dim=1)[:, None, None]
    weights = scores.masked_fill(~visible, float("-inf")).softmax(-1)
    return attention.out_proj((weights @ v).transpose(1, 2).reshape(n, s, d))


def measure(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    attention = SinkAttention(args.embed_dim, args.heads)
    x = torch.randn(args.sequences, args.frames, args.embed_dim, requires_grad=args.backward)
    positions = torch.arange(args.frames)
    key_mask = torch.ones(args.sequences, args.frames, dtype=torch.bool)
    key_mask[: args.sequences // 4] = False  # some padded residues: only the sink is visible
    run = attention if args.variant == "sdpa" else lambda *a: explicit_attention(attention, *a)

    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.set_grad_enabled(args.backward):
        out = run(x, positions, key_mask)
        if args.backward:
            out.square().mean().backward()
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": args.variant, "peak_extra_mib": (peak_kib - baseline_kib) / 1024, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500, help="sequence length T of frame attention")
    parser.add_argument("--sequences", type=int, default=32, help="B * L sequences in the batch")
    parser.add_argument("--embed-dim", type=int, default=384)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--backward", action="store_true", help="also run backward")
    parser.add_argument("--variant", choices=["sdpa", "explicit"], help="run one variant (internal)")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args)))
        return
    forwarded = sys.argv[1:]
    print(f"frame attention: N={args.sequences}, T={args.frames}, D={args.embed_dim}, H={args.heads}")
    for variant in ("sdpa", "explicit"):
        result = subprocess.run(
            [sys.executable, __file__, *forwarded, "--variant", variant],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(result.stdout)
        print(
            f"  {row['variant']:>8}: peak extra memory {row['peak_extra_mib']:8.1f} MiB, {row['seconds']:.2f} s"
        )


if __name__ == "__main__":
    main()
