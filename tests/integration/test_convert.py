"""`python -m mdgen.convert` on original-format checkpoints: the converted network reproduces the original
network's stored outputs (both recipes, float32 and float64, training and EMA weights), the result loads,
samples through `mdgen.sample` on CPU and starts a fine-tuning run (`init_from=`), and a bad input gives one
error line.

The fixtures (tests/fixtures/original_checkpoints, a copy of ../shared/fixtures/original_checkpoints; see
its README) hold small checkpoints in the original's exact format, the inputs the original network got and
its outputs. Their inputs avoid the two input differences that are no part of the network: the interp
trunk's key-frame quaternions have w >= 0 in both conventions, and residue 0's masked omega/phi channels
are zero as our tokens make them (docs/interfaces.md, "Importing the original's checkpoints").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mdgen.callbacks import ema_weights_from_checkpoint, training_weights_from_checkpoint
from mdgen.config import compose_config, load_module
from mdgen.convert import convert_checkpoint
from mdgen.errors import UserError
from mdgen.geometry import relative_rigid, rotation_to_quaternion
from mdgen.sample import sample
from mdgen.train import train, weights_for_init_from

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "original_checkpoints"
SHARED = REPO_ROOT.parent / "shared" / "fixtures" / "original_checkpoints"
TOLERANCE = 1e-4  # max|y - y_orig| / max|y_orig|; an exact port reaches ~5e-7 in float32
DEMO_PEPTIDE = REPO_ROOT / "data" / "demo" / "md" / "GWEK"


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    for candidate in (FIXTURES, SHARED):
        if (candidate / "forward.ckpt").is_file():
            return candidate
    pytest.skip(f"original-format fixtures are absent (looked in {FIXTURES} and {SHARED})")


@pytest.fixture(scope="module")
def converted(fixture_dir, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("converted")
    return {
        name: convert_checkpoint(fixture_dir / f"{name}.ckpt", out / f"{name}.ckpt").out_ckpt
        for name in ("forward", "interp", "forward_ema")
    }


def network_output(network, inputs, dtype) -> torch.Tensor:
    """The original call model(x, t, mask, start_frames, end_frames, x_cond, x_cond_mask, aatype) mapped
    onto MDGenNetwork.forward (fixture README, section 7)."""

    def get(key):
        return torch.from_numpy(inputs[key])

    two_key_frames = get("x").shape[-1] == 28
    rots = [get("start_rots"), get("end_rots")] if two_key_frames else [get("start_rots")]
    trans = [get("start_trans"), get("end_trans")] if two_key_frames else [get("start_trans")]
    batch, _, residues, _ = get("x").shape
    network = network.to(dtype)
    with torch.no_grad():
        return network(
            get("x").to(dtype),
            get("t").to(dtype),
            x_cond=get("x_cond").to(dtype),
            cond_mask=get("x_cond_mask"),
            residue_mask=get("mask")[:, 0],
            key_rots=torch.stack(rots, 1).to(dtype),
            key_trans=torch.stack(trans, 1).to(dtype),
            aatype=get("aatype"),
            residue_index=torch.arange(residues).expand(batch, residues),
        ).velocity


def relative_error(y: torch.Tensor, reference: np.ndarray) -> float:
    reference = torch.from_numpy(reference).double()
    return float((y.double() - reference).abs().amax() / reference.abs().amax())


@pytest.mark.parametrize("name", ["forward", "interp", "forward_ema"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_converted_network_reproduces_the_original_outputs(name, dtype, fixture_dir, converted):
    inputs = np.load(fixture_dir / f"inputs_{name}.npz")
    outputs = np.load(fixture_dir / f"outputs_{name}.npz")
    suffix = "float32" if dtype == torch.float32 else "float64"
    module = load_module(converted[name], use_ema=False)  # the original samples with its training weights
    assert module.network.blocks[0].frame_attention.sink_position == "original"
    error = relative_error(network_output(module.network, inputs, dtype), outputs[f"y_{suffix}"])
    assert error < TOLERANCE, f"{name} {suffix}: relative error {error:.2e}"
    if name == "forward_ema":  # the EMA weights are an independent draw: they must give the EMA outputs
        ema_module = load_module(converted[name], use_ema=True)
        error = relative_error(network_output(ema_module.network, inputs, dtype), outputs[f"y_ema_{suffix}"])
        assert error < TOLERANCE, f"EMA {suffix}: relative error {error:.2e}"
        assert relative_error(network_output(module.network, inputs, dtype), outputs[f"y_ema_{suffix}"]) > 0.1


def test_the_default_sink_position_would_not_reproduce_them(fixture_dir, converted):
    """The one behavioural difference of our default network: without sink_position=original the
    outputs differ by ~2e-2 (fixture README, section 10), so the test above really checks the sink."""
    module = load_module(converted["forward"], use_ema=False)
    for attention in [m for m in module.network.modules() if hasattr(m, "sink_position")]:
        attention.sink_position = "start"
    inputs, outputs = (
        np.load(fixture_dir / "inputs_forward.npz"),
        np.load(fixture_dir / "outputs_forward.npz"),
    )
    assert relative_error(network_output(module.network, inputs, torch.float32), outputs["y_float32"]) > 1e-3


def test_our_trunk_seed_is_the_originals_up_to_the_quaternion_sign(fixture_dir):
    """Known input difference 1: the original seeds its interp trunk with start^-1 o end as a quaternion of
    arbitrary sign (an eigenvector); ours has w >= 0. q and -q are the same rotation, and on windows whose
    original seed has w > 0 (the fixtures) the seeds agree, so the outputs above match."""
    inputs, outputs = np.load(fixture_dir / "inputs_interp.npz"), np.load(fixture_dir / "outputs_interp.npz")
    start = torch.from_numpy(inputs["start_rots"]).double(), torch.from_numpy(inputs["start_trans"]).double()
    end = torch.from_numpy(inputs["end_rots"]).double(), torch.from_numpy(inputs["end_trans"]).double()
    for (a, b), key in (((start, end), "forward"), ((end, start), "reverse")):
        rots, trans = relative_rigid(*a, *b)
        ours = torch.cat([rotation_to_quaternion(rots), trans], -1)
        original = torch.from_numpy(outputs[f"trunk_seed_{key}_float64"])
        sign = torch.where(original[..., :1] < 0, -1.0, 1.0)
        torch.testing.assert_close(ours[..., :4], original[..., :4] * sign, atol=1e-6, rtol=0)
        torch.testing.assert_close(ours[..., 4:], original[..., 4:], atol=1e-5, rtol=0)


def test_converted_checkpoint_records_its_source_and_is_kept_on_rerun(fixture_dir, converted):
    checkpoint = torch.load(converted["forward_ema"], map_location="cpu", weights_only=True)
    record = checkpoint["mdgen"]["converted_from"]
    assert record["recipe"] == "forward" and record["original_args"]["ema"] is True
    assert checkpoint["mdgen"]["config"]["model"]["sink_position"] == "original"
    assert checkpoint["mdgen"]["task"]["frame_interval_ps"] == 10.0  # --suffix _i100 on 100 fs frames
    # Lightning's weight-averaging layout (what mdgen.train writes): state_dict = EMA, current_model_state =
    # training weights, both with every key; the original's file keeps them apart, so some entry differs.
    training, ema = training_weights_from_checkpoint(checkpoint), ema_weights_from_checkpoint(checkpoint)
    assert set(training) == set(ema) == set(checkpoint["state_dict"])
    assert any(not torch.equal(training[key], ema[key]) for key in ema)
    loaded = load_module(converted["forward_ema"], use_ema=True).state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in ema.items())
    again = convert_checkpoint(fixture_dir / "forward_ema.ckpt", converted["forward_ema"])
    assert again.skipped
    with pytest.raises(UserError, match="overwrite=true"):
        convert_checkpoint(fixture_dir / "forward.ckpt", converted["forward_ema"])


def test_converted_checkpoint_samples_through_mdgen_sample_on_cpu(converted, tmp_path):
    out_dir = tmp_path / "samples"
    cfg = compose_config(
        [
            f"ckpt_path={converted['forward']}",
            f"out_dir={out_dir}",
            f"input_pdb={DEMO_PEPTIDE / 'GWEK.pdb'}",
            f"input_xtc={DEMO_PEPTIDE / 'GWEK.xtc'}",
            "device=cpu",
            "sampler=euler",
            "sampler.num_steps=3",
        ],
        config_name="sample",
    )
    sample(cfg)
    written = sorted(path.name for path in out_dir.glob("GWEK*.xtc"))
    assert written, f"no trajectory written in {out_dir}: {sorted(p.name for p in out_dir.iterdir())}"


def test_converted_checkpoint_starts_a_fine_tuning_run(converted, tmp_path):
    overrides = [
        "experiment=demo_forward",
        f"init_from={converted['forward']}",
        "task.num_frames=10",
        "debug=fdr",
        "logger=none",
        f"paths.output_dir={tmp_path}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    cfg = compose_config(overrides)
    weights = weights_for_init_from(cfg)
    assert cfg.model.sink_position == "original" and cfg.model.embed_dim == 64  # the checkpoint's network
    assert set(weights) == {f"network.{k}" for k in load_module(converted["forward"]).network.state_dict()}
    train(compose_config(overrides))  # one real optimizer step from the converted weights
    with pytest.raises(UserError, match="token_dim=21"):
        weights_for_init_from(compose_config(["experiment=demo_interp", f"init_from={converted['forward']}"]))
    with pytest.raises(UserError, match="init_from= instead"):  # a converted checkpoint resumes nothing
        train(
            compose_config(
                ["experiment=demo_forward", f"ckpt_path={converted['forward']}", "task.num_frames=10"]
            )
        )


@pytest.mark.slow  # two CLI runs (~18 s); the library-level refusals are in the fast suite
def test_cli_converts_and_reports_a_truncated_file_in_one_line(fixture_dir, tmp_path):
    def run(*args):
        command = [sys.executable, "-m", "mdgen.convert", *args, f"hydra.run.dir={tmp_path / 'hydra'}"]
        return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)

    result = run(f"in_ckpt={fixture_dir / 'interp.ckpt'}", f"out_ckpt={tmp_path / 'interp.ckpt'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "recipe interp" in result.stdout and (tmp_path / "interp.ckpt").is_file()

    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((fixture_dir / "interp.ckpt").read_bytes()[:50_000])
    result = run(f"in_ckpt={truncated}", f"out_ckpt={tmp_path / 'out.ckpt'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("mdgen.convert: error: in_ckpt=") and "truncated" in lines[0]
    )
    assert not (tmp_path / "out.ckpt").exists()
