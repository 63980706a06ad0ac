"""The recipes without a shared fixture (upsampling, inpainting/design, ATLAS), converted from original-format
checkpoints derived from the fixtures: the same file format and network family, with the arguments (and,
for design, the extra heads) of that recipe. Checks the mapping of every recipe-specific weight and that
each converted checkpoint loads and samples through `mdgen.sample` on CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

import mdtraj
import pytest
import torch

from mdgen.config import compose_config, load_module
from mdgen.convert import convert_checkpoint
from mdgen.sample import sample

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "original_checkpoints"
DEMO = REPO_ROOT / "data" / "demo" / "md" / "GWEK"
FAST = ["device=cpu", "sampler=euler", "sampler.num_steps=3"]


def derived_original(source: str, path: Path, args: dict, state: dict | None = None, drop=()) -> Path:
    """An original-format checkpoint: `source` fixture with `args` changed, `state` keys set, `drop` removed."""
    if not (FIXTURES / source).is_file():
        pytest.skip(f"{FIXTURES / source} absent")
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(FIXTURES / source, map_location="cpu", weights_only=True)
    namespace = checkpoint["hyper_parameters"]["args"]
    for key, value in args.items():
        setattr(namespace, key, value)
    checkpoint["state_dict"].update({f"model.{k}": v for k, v in (state or {}).items()})
    for key in drop:
        del checkpoint["state_dict"][f"model.{key}"]
    torch.save(checkpoint, path)
    return path


def run_sample(ckpt: Path, out_dir: Path, *overrides: str) -> list[str]:
    sample(
        compose_config([f"ckpt_path={ckpt}", f"out_dir={out_dir}", *FAST, *overrides], config_name="sample")
    )
    return sorted(p.name for p in out_dir.iterdir())


def test_upsampling_recipe_converts_and_upsamples(tmp_path):
    original = derived_original("forward.ckpt", tmp_path / "up.ckpt", {"cond_interval": 5, "suffix": ""})
    result = convert_checkpoint(original, tmp_path / "upsampling.ckpt")
    task = load_module(result.out_ckpt).task
    assert (result.recipe, task.cond_interval, task.frame_interval_ps, task.num_frames) == (
        "upsample",
        5,
        0.1,
        10,
    )
    short = tmp_path / "GWEK_short.xtc"  # 2 ps at 100 fs: 5 coarse frames 0.5 ps apart
    mdtraj.load(str(DEMO / "GWEK_fine.xtc"), top=str(DEMO / "GWEK.pdb"))[:21].save_xtc(str(short))
    written = run_sample(
        result.out_ckpt,
        tmp_path / "out",
        f"input_pdb={DEMO / 'GWEK.pdb'}",
        f"input_xtc={short}",
        "allow_extrapolation=true",  # the original's window (T = 10) does not end on a given frame
    )
    assert any(name.endswith(".xtc") for name in written), written


def test_design_recipe_maps_its_heads_and_designs(tmp_path):
    g = torch.Generator().manual_seed(0)
    with torch.serialization.safe_globals([argparse.Namespace]):
        interp = torch.load(FIXTURES / "interp.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    d = interp["model.latent_to_emb.weight"].shape[0]

    def rand(*shape):
        return 0.1 * torch.randn(*shape, generator=g)

    heads = {
        "latent_to_emb.weight": torch.cat(
            [interp["model.latent_to_emb.weight"], rand(d, 20)], 1
        ),  # 28 + 20 in
        "emb_to_latent.linear.weight": torch.cat([interp["model.emb_to_latent.linear.weight"], rand(20, d)]),
        "emb_to_latent.linear.bias": torch.cat([interp["model.emb_to_latent.linear.bias"], rand(20)]),
        "x_d_to_emb.weight": rand(d, 20),
        "x_d_to_emb.bias": rand(d),
        **{
            f"fc{i}.{p}": rand(d, d) if p == "weight" else rand(d)
            for i in (1, 2, 3)
            for p in ("weight", "bias")
        },
        "emb_to_logits.weight": rand(20, d),
        "emb_to_logits.bias": rand(20),
    }
    args = dict(
        tps_condition=False, inpainting=True, design=True, no_aa_emb=True, no_torsion=True, suffix="",
        frame_interval=10, sampling_method="euler",
    )  # fmt: skip
    original = derived_original(
        "interp.ckpt", tmp_path / "inp.ckpt", args, heads, drop=["aatype_to_emb.weight"]
    )
    result = convert_checkpoint(original, tmp_path / "inpainting.ckpt")
    module = load_module(result.out_ckpt)
    network = module.network
    assert result.recipe == "inpaint" and module.task.design and module.task.frame_interval_ps == 1.0
    assert module.task.ode_method == "euler" and network.trunk.aatype_embed is None
    torch.testing.assert_close(network.trunk.simplex_embed.weight, heads["x_d_to_emb.weight"])
    torch.testing.assert_close(network.sequence_head.frame_mlp[0].weight, heads["fc1.weight"])
    torch.testing.assert_close(network.sequence_head.frame_mlp[2].weight, heads["fc2.weight"])
    torch.testing.assert_close(network.sequence_head.residue_mlp[0].weight, heads["fc3.weight"])
    torch.testing.assert_close(network.sequence_head.residue_mlp[2].bias, heads["emb_to_logits.bias"])
    written = run_sample(
        result.out_ckpt,
        tmp_path / "out",
        f"input_pdb={DEMO / 'GWEK.pdb'}",
        f"input_xtc={DEMO / 'GWEK_fine.xtc'}",
        "num_samples=1",
    )
    assert any(name.endswith("_inpaint.json") for name in written), written


def test_atlas_recipe_uses_rotary_positions_only(tmp_path):
    args = dict(atlas=True, abs_pos_emb=False, crop=256, suffix="_i40")
    original = derived_original("forward.ckpt", tmp_path / "atlas_orig.ckpt", args, drop=["pos_embed"])
    result = convert_checkpoint(original, tmp_path / "atlas.ckpt")
    module = load_module(result.out_ckpt)
    config = torch.load(result.out_ckpt, map_location="cpu", weights_only=True)["mdgen"]["config"]
    assert result.recipe == "atlas" and module.task.frame_interval_ps == 400.0
    assert module.network.residue_table is None and config["data"]["crop"] == 256
    # a checkpoint whose args and weights disagree is refused, naming the key
    wrong = derived_original("forward.ckpt", tmp_path / "wrong.ckpt", args)  # still has pos_embed
    with pytest.raises(ValueError, match="pos_embed"):
        convert_checkpoint(wrong, tmp_path / "wrong_out.ckpt")
