"""Sampling on CUDA gives what sampling on the CPU gives, from the same initial noise.

Marked `gpu` (left out of `make test`) and skipped without CUDA; run with `pytest -m gpu tests/gpu`.
The shipped forward model (checkpoints/tetrapeptide_forward.ckpt) samples validation windows of data/demo
on both devices with float32 matmuls (no TF32). A CUDA generator draws other numbers than a CPU one, so
the initial noise is drawn on the CPU for both runs (torch.randn is wrapped for the duration of the call);
everything after it (network, ODE solver, token conversion) runs on the device under test.
"""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from mdgen.config import compose_config, load_module

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "tetrapeptide_forward.ckpt"


def demo_test_batch(num_frames: int) -> dict:
    cfg = compose_config(["experiment=demo_forward", f"task.num_frames={num_frames}", "data.batch_size=2"])
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("validate")
    return next(iter(datamodule.val_dataloader()))


def sample_on(device, batch, monkeypatch, **options):
    """Tokens (on the CPU) and NFE of the shipped model sampling `batch` on `device`, noise seeded on CPU."""
    module = load_module(SHIPPED, map_location=device)
    on_device = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    real_randn, cpu_generator = torch.randn, torch.Generator().manual_seed(0)

    def noise_from_the_cpu(*size, generator=None, device=None, **kwargs):
        return real_randn(*size, generator=cpu_generator, **kwargs).to(device)

    with monkeypatch.context() as patch:
        patch.setattr(torch, "randn", noise_from_the_cpu)
        result = module.sample(on_device, **options)
    return result.tokens.cpu(), result.nfe


@pytest.mark.parametrize(("method", "num_steps"), [("euler", 10), ("heun", 10), ("ab2", 10)])
def test_cuda_sampling_matches_cpu_sampling(method, num_steps, monkeypatch):
    """Fixed-grid solvers take the same steps on both devices; float32 rounding differs (other kernels,
    other summation orders), so the tokens agree to 1e-3 (quaternion and torsion components are O(1),
    translations a few Å), not bit for bit. Catches device-dependent code paths (a tensor left on the
    CPU, a dtype that differs on CUDA, a generator or mask built on the wrong device)."""
    torch.set_float32_matmul_precision("highest")  # conftest restores the previous setting
    module_frames = load_module(SHIPPED).task.num_frames
    batch = demo_test_batch(module_frames)
    cpu_tokens, cpu_nfe = sample_on("cpu", batch, monkeypatch, method=method, num_steps=num_steps)
    cuda_tokens, cuda_nfe = sample_on("cuda", batch, monkeypatch, method=method, num_steps=num_steps)
    assert cuda_nfe == cpu_nfe
    assert torch.isfinite(cuda_tokens).all()
    torch.testing.assert_close(cuda_tokens, cpu_tokens, atol=1e-3, rtol=1e-3)
