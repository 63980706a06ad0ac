"""Original checkpoints -> our recipe and weights: args interpretation, key mapping, IPA point layout,
safe reading (allow-list, truncation) and the errors that name the problem."""

import argparse
import pickle
from pathlib import Path

import pytest
import torch

from mdgen.checkpoints import read_original_checkpoint, recipe_from_args
from mdgen.checkpoints.original_file import OriginalCheckpointError
from mdgen.checkpoints.original_recipe import RecipeError
from mdgen.checkpoints.original_weights import WeightMappingError, _block_to_interleaved, map_original_weights
from mdgen.errors import UserError
from mdgen.model import MDGenNetwork

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "original_checkpoints"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "original_checkpoints"


def fixture_dir() -> Path:
    for candidate in (FIXTURES, SHARED):
        if (candidate / "forward.ckpt").is_file():
            return candidate
    pytest.skip(f"original-format fixtures absent from {FIXTURES} and {SHARED}")


def paper_args(**changes):
    """The README forward recipe's arguments at the original's default sizes."""
    args = dict(
        sim_condition=True, tps_condition=False, inpainting=False, design=False, atlas=False,
        cond_interval=None, num_frames=1000, crop=4, suffix="_i100", frame_interval=None,
        prepend_ipa=True, abs_pos_emb=True, embed_dim=384, num_layers=5, mha_heads=16, ipa_heads=4,
        ipa_head_dim=32, ipa_qk=8, ipa_v=8, dropout=0.0, time_multiplier=100.0, path_type="GVP",
        prediction="velocity", sampling_method="dopri5", lr=1e-4, ema=False, ema_decay=0.999,
    )  # fmt: skip
    return {**args, **changes}


@pytest.mark.parametrize(
    ("changes", "recipe", "experiment", "expected"),
    [
        ({}, "forward", "4aa_forward", ["task.frame_interval_ps=10.0", "task.num_frames=1000"]),
        (dict(sim_condition=False, tps_condition=True, num_frames=100), "interp", "4aa_interp", ["task.num_frames=100"]),
        (dict(cond_interval=100, suffix="", batch_size=8), "upsample", "4aa_upsample",
         ["task.cond_interval=100", "task.frame_interval_ps=0.1", "task.num_frames=1000"]),
        (dict(sim_condition=False, inpainting=True, design=True, no_aa_emb=True, no_torsion=True, suffix="",
              frame_interval=10, num_frames=100, sampling_method="euler", batch_size=32), "inpaint", "4aa_inpaint",
         ["task.frame_interval_ps=1.0", "task.design=true", "task.use_aa_emb=false", "task.no_torsion=true",
          "task.ode_method=euler"]),
        (dict(atlas=True, abs_pos_emb=False, crop=256, suffix="_i40", num_frames=250), "atlas", "atlas_forward",
         ["task.frame_interval_ps=400.0", "model.residue_pos_emb=rotary", "model.max_residues=null", "data.crop=256"]),
    ],
)  # fmt: skip
def test_each_paper_recipe_is_recognised_with_its_window(changes, recipe, experiment, expected):
    result = recipe_from_args(paper_args(**changes))
    assert (result.name, result.experiment) == (recipe, experiment)
    overrides = result.hydra_overrides()
    assert overrides[0] == f"experiment={experiment}"
    assert "model.sink_position=original" in overrides
    for override in expected:
        assert override in overrides


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(hyena=True), "--hyena"),
        (dict(no_rope=True), "--no_rope"),
        (dict(interleave_ipa=True), "--interleave_ipa"),
        (dict(prepend_ipa=False), "--prepend_ipa"),
        (dict(tps_condition=True), "exactly one of"),
        (dict(sim_condition=False), "exactly one of"),
        (dict(design=True), "--design with --sim_condition"),
        (dict(prediction="score"), "velocity"),
        (dict(embed_dim=None), "embed_dim"),
        (dict(suffix="_R1"), "frame_interval_ps="),
    ],
)
def test_unsupported_or_incomplete_args_are_refused_by_name(changes, message):
    with pytest.raises(RecipeError, match=message) as error:
        recipe_from_args(paper_args(**changes))
    assert isinstance(error.value, UserError)


def test_frame_interval_can_be_given_when_the_suffix_does_not_tell():
    assert "task.frame_interval_ps=2.5" in recipe_from_args(paper_args(suffix="_R1"), 2.5).overrides


def test_block_layout_permutation_moves_each_coordinate_next_to_its_point():
    # 2 points: block rows x0 x1 y0 y1 z0 z1 -> interleaved x0 y0 z0 x1 y1 z1
    assert _block_to_interleaved(2).tolist() == [0, 2, 4, 1, 3, 5]


def test_ipa_point_weights_are_interleaved_from_coordinate_blocks():
    original = read_original_checkpoint(fixture_dir() / "forward.ckpt")
    recipe = recipe_from_args(original.args)
    network = MDGenNetwork(21, 1, embed_dim=64, num_ipa_blocks=2, num_blocks=2, num_heads=4, ipa_heads=3,
                           ipa_head_dim=16, ipa_qk_points=4, ipa_v_points=6, residue_pos_emb="table",
                           max_residues=4, sink_position="original")  # fmt: skip
    mapped = map_original_weights(original.state_dict, network, recipe.ipa, "test")
    block = original.state_dict["ipa_layers.1.ipa.linear_kv_points.weight"]  # (3 * H * P, D), H=3, P=10
    ours = mapped["trunk.layers.1.ipa.kv_points_proj.weight"]
    h, p, num_points = 2, 7, 3 * 10
    for xyz in range(3):  # head 2, point 7 (a value point), each coordinate
        torch.testing.assert_close(ours[(h * 10 + p) * 3 + xyz], block[xyz * num_points + h * 10 + p])
    scalars = 3 * 16  # linear_out columns: scalars, then 3 blocks of H*Pv, then norms
    out_block, out_ours = (
        original.state_dict["ipa_layers.0.ipa.linear_out.weight"],
        mapped["trunk.layers.0.ipa.out_proj.weight"],
    )
    torch.testing.assert_close(
        out_ours[:, scalars + (1 * 6 + 4) * 3 + 2], out_block[:, scalars + 2 * 18 + 1 * 6 + 4]
    )
    torch.testing.assert_close(out_ours[:, -18:], out_block[:, -18:])  # norms unchanged
    assert mapped["blocks.0.frame_attention.sink_key"].shape == (64,)


def test_unknown_missing_and_misshapen_weights_are_named():
    original = read_original_checkpoint(fixture_dir() / "forward.ckpt")
    recipe = recipe_from_args(original.args)

    def network(**changes):
        sizes = dict(embed_dim=64, num_ipa_blocks=2, num_blocks=2, num_heads=4, ipa_heads=3, ipa_head_dim=16,
                     ipa_qk_points=4, ipa_v_points=6, residue_pos_emb="table", max_residues=4)  # fmt: skip
        return MDGenNetwork(21, 1, **{**sizes, **changes})

    state = dict(original.state_dict, **{"layers.0.extra.weight": torch.zeros(1)})
    with pytest.raises(WeightMappingError, match="layers.0.extra.weight"):
        map_original_weights(state, network(), recipe.ipa, "test")
    state = {k: v for k, v in original.state_dict.items() if k != "t_embedder.mlp.2.bias"}
    with pytest.raises(WeightMappingError, match="time_embed.mlp.2.bias"):
        map_original_weights(state, network(), recipe.ipa, "test")
    with pytest.raises(WeightMappingError, match="the args do not match the weights"):
        map_original_weights(original.state_dict, network(ipa_head_dim=8), recipe.ipa, "test")


def test_reading_is_safe_and_names_truncated_or_foreign_files(tmp_path):
    checkpoint = read_original_checkpoint(fixture_dir() / "forward_ema.ckpt")
    assert checkpoint.args["ema"] is True and checkpoint.ema_decay == pytest.approx(0.999)
    assert set(checkpoint.ema_params) == set(checkpoint.state_dict)
    assert checkpoint.lightning_version == "2.0.4" and len(checkpoint.sha256) == 64

    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((fixture_dir() / "forward.ckpt").read_bytes()[:100_000])
    with pytest.raises(OriginalCheckpointError, match="truncated or corrupt"):
        read_original_checkpoint(truncated)

    class Payload:  # any class outside the allow-list must never be unpickled
        def __reduce__(self):
            return (print, ("this must not run",))

    hostile = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"args": Payload()}}, hostile)
    with pytest.raises(OriginalCheckpointError, match="allow-list"):
        read_original_checkpoint(hostile)

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "hyper_parameters": {"args": {"a": 1}}}, foreign)
    with pytest.raises(OriginalCheckpointError, match="argparse.Namespace"):
        read_original_checkpoint(foreign)
    with pytest.raises(OriginalCheckpointError, match="does not exist"):
        read_original_checkpoint(tmp_path / "absent.ckpt")
    assert pickle.dumps(argparse.Namespace(a=1))  # the allow-listed class is the standard one
