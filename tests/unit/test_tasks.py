"""TaskSpec: masks per task (METHOD 2.5, 4.3), token layout, validation of task configs."""

import dataclasses

import pytest
import torch

from mdgen.geometry import quaternion_to_rotation
from mdgen.tasks import UNKNOWN_AATYPE, TaskSpec

B, T, L = 2, 12, 4


def random_batch(batch_size=B, num_frames=T, num_residues=L, seed=0):
    """A batch dict with random (valid) rigids, torsions and identities; the last residue of sample 1 is padding."""
    g = torch.Generator().manual_seed(seed)
    rots = quaternion_to_rotation(torch.randn(batch_size, num_frames, num_residues, 4, generator=g))
    angles = torch.rand(batch_size, num_frames, num_residues, 7, generator=g) * 6.28
    torsion_mask = torch.ones(batch_size, num_residues, 7)
    torsion_mask[:, :, 5:] = 0.0  # no chi3, chi4
    residue_mask = torch.ones(batch_size, num_residues)
    residue_mask[1, -1] = 0.0
    torsion_mask[1, -1] = 0.0
    return {
        "rots": rots,
        "trans": 5.0 * torch.randn(batch_size, num_frames, num_residues, 3, generator=g),
        "torsions": torch.stack([angles.sin(), angles.cos()], dim=-1),
        "torsion_mask": torsion_mask,
        "aatype": torch.randint(0, 20, (batch_size, num_residues), generator=g),
        "residue_mask": residue_mask,
        "residue_index": torch.arange(num_residues).expand(batch_size, -1),
    }


def forward_task(**changes):
    spec = dict(name="forward", num_frames=T, frame_interval_ps=10.0, cond_frames=(0,))
    return TaskSpec(**{**spec, **changes})


def interp_task(**changes):
    spec = dict(name="interp", num_frames=T, frame_interval_ps=10.0, key_frames=(0, -1), cond_frames=(0, -1))
    return TaskSpec(**{**spec, **changes})


def upsample_task(**changes):
    spec = dict(name="upsample", num_frames=T, frame_interval_ps=0.1, cond_frames=(0,), cond_interval=5)
    return TaskSpec(**{**spec, **changes})


def inpaint_task(**changes):
    spec = dict(
        name="inpaint",
        num_frames=T,
        frame_interval_ps=1.0,
        key_frames=(0, -1),
        cond_residues=(0, 3),
        design_residues=(1, 2),
        design=True,
        no_torsion=True,
        use_aa_emb=False,
        ode_method="euler",
    )
    return TaskSpec(**{**spec, **changes})


def test_forward_conditions_frame_zero_of_real_residues():
    inputs = forward_task().build_inputs(random_batch())
    expected = torch.zeros(B, T, L)
    expected[:, 0] = 1.0
    expected[1, :, -1] = 0.0  # padding is never given
    assert torch.equal(inputs.cond_mask, expected)
    assert inputs.tokens.shape == (B, T, L, 21)
    assert inputs.key_rots.shape == (B, 1, L, 3, 3) and inputs.key_trans.shape == (B, 1, L, 3)


def test_x_cond_is_tokens_where_given_and_zero_elsewhere():
    inputs = forward_task().build_inputs(random_batch())
    assert torch.equal(inputs.x_cond[:, 0, :3], inputs.tokens[:, 0, :3])
    assert inputs.x_cond[:, 1:].abs().sum() == 0
    # frame 0 is the key frame: its offset is the identity (1, 0, 0, 0, 0, 0, 0)
    identity = torch.tensor([1.0, 0, 0, 0, 0, 0, 0])
    torch.testing.assert_close(inputs.tokens[0, 0, :, :7], identity.expand(L, 7), atol=1e-5, rtol=0)


def test_interp_conditions_first_and_last_frame_with_two_key_frames():
    batch = random_batch()
    inputs = interp_task().build_inputs(batch)
    assert inputs.cond_mask[0].sum(-1).tolist() == [L] + [0] * (T - 2) + [L]
    assert inputs.tokens.shape[-1] == 28
    assert torch.equal(inputs.key_trans[:, 1], batch["trans"][:, -1])
    assert torch.equal(inputs.key_rots[:, 0], batch["rots"][:, 0])


def test_upsample_conditions_every_cond_interval_frame():
    inputs = upsample_task().build_inputs(random_batch())
    given_frames = inputs.cond_mask[0, :, 0].nonzero().flatten().tolist()
    assert given_frames == [0, 5, 10]


def test_inpaint_conditions_flank_residues_at_every_frame_and_hides_all_identities():
    batch = random_batch()
    inputs = inpaint_task().build_inputs(batch)
    assert torch.equal(inputs.cond_mask[0], torch.tensor([1.0, 0, 0, 1]).expand(T, L))
    assert torch.equal(inputs.cond_mask[1], torch.tensor([1.0, 0, 0, 0]).expand(T, L))  # residue 3 is padding
    assert (inputs.aatype == UNKNOWN_AATYPE).all()
    assert torch.equal(inputs.target_aatype, batch["aatype"])
    assert inputs.design_mask[0].all() and inputs.design_mask[1].tolist() == [True, True, True, False]
    assert inputs.tokens[..., 14:].abs().sum() == 0  # no_torsion: frames-only token


def test_design_with_aa_embedding_hides_only_designed_residues():
    batch = random_batch()
    inputs = inpaint_task(use_aa_emb=True).build_inputs(batch)
    assert (inputs.aatype[:, 1:3] == UNKNOWN_AATYPE).all()
    assert torch.equal(inputs.aatype[:, [0, 3]], batch["aatype"][:, [0, 3]])
    assert inputs.design_mask[0].tolist() == [False, True, True, False]


def test_no_aa_emb_hides_identities_without_design():
    inputs = forward_task(use_aa_emb=False).build_inputs(random_batch())
    assert (inputs.aatype == UNKNOWN_AATYPE).all()
    assert not inputs.design_mask.any()


def test_loss_mask_follows_residue_and_torsion_masks():
    inputs = forward_task().build_inputs(random_batch())
    mask = inputs.loss_mask
    assert mask.shape == (B, T, L, 21)
    assert (mask[0, :, :, :7] == 1).all()  # offsets of every real residue, conditioned frame included
    assert (mask[1, :, -1] == 0).all()  # padding
    assert (mask[0, :, :, 7:17] == 1).all()  # omega, phi, psi, chi1, chi2 as (sin, cos)
    assert (mask[0, :, :, 17:] == 0).all()  # chi3, chi4 absent


def test_exclude_conditioned_from_loss_drops_given_tokens():
    inputs = forward_task(exclude_conditioned_from_loss=True).build_inputs(random_batch())
    assert inputs.loss_mask[:, 0].sum() == 0
    assert inputs.loss_mask[0, 1:, :, :7].eq(1).all()


def test_masks_follow_the_window_length_not_the_config():
    inputs = interp_task().build_inputs(random_batch(num_frames=7))
    assert inputs.cond_mask[0, :, 0].tolist() == [1, 0, 0, 0, 0, 0, 1]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(token_dim=28), "token_dim=28"),
        (dict(num_key_frames=2), "num_key_frames=2"),
        (dict(cond_frames=()), "nothing is conditioned"),
        (dict(cond_interval=T), "cond_interval"),
        (dict(ode_method="rk45"), "ode_method"),
        (dict(design_residues=(1,)), "design is false"),
    ],
)
def test_inconsistent_task_configs_fail_loudly(changes, message):
    with pytest.raises(ValueError, match=message):
        forward_task(**changes)


def test_out_of_range_residue_index_names_the_task():
    with pytest.raises(ValueError, match="task 'inpaint'.*residue index 3"):
        inpaint_task().build_inputs(random_batch(num_residues=3))


def test_taskspec_is_frozen_and_normalises_lists():
    task = interp_task(key_frames=[0, -1], cond_frames=[0, -1])
    assert task.key_frames == (0, -1) and task.token_dim == 28 and task.num_key_frames == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.num_frames = 5


@pytest.mark.parametrize("make_task", [forward_task, interp_task])
def test_translation_scale_divides_only_translation_channels(make_task):
    batch = random_batch()
    raw = make_task().build_inputs(batch).tokens
    scaled_task = make_task(translation_scale_A=4.0)
    scaled = scaled_task.build_inputs(batch).tokens
    num_key_frames = len(scaled_task.key_frames)
    translation = torch.zeros(raw.shape[-1], dtype=torch.bool)
    for k in range(num_key_frames):
        translation[7 * k + 4 : 7 * k + 7] = True
    assert raw[..., translation].abs().max() > 1.0  # the batch has real translations to scale
    torch.testing.assert_close(scaled[..., translation], raw[..., translation] / 4.0)
    assert torch.equal(scaled[..., ~translation], raw[..., ~translation])
    torch.testing.assert_close(scaled_task.tokens_in_angstrom(scaled), raw)


def test_translation_scale_must_be_positive():
    with pytest.raises(ValueError, match="translation_scale_A"):
        forward_task(translation_scale_A=0.0)


def test_the_task_default_sampler_fills_only_the_fields_not_given():
    """`SolverOptions.of_task`: a sampler field given on the command line replaces the task's; the others
    stay the task's (a bug that took every field from either side breaks one of the three cases)."""
    from mdgen.sampling.sampler_options import SolverOptions

    task = forward_task(ode_method="euler", ode_num_steps=50, ode_grid_power=1.5)
    assert SolverOptions.of_task(task) == SolverOptions("euler", 50, grid_power=1.5)
    assert SolverOptions.of_task(task, {"num_steps": 7, "method": None}) == SolverOptions(
        "euler", 7, grid_power=1.5
    )
    given = {"method": "heun", "num_steps": 11, "grid_power": 1.0, "atol": 1e-5, "rtol": 1e-2}
    assert SolverOptions.of_task(task, given) == SolverOptions(**given)
    with pytest.raises(ValueError, match="no option 'steps'"):
        SolverOptions.of_task(task, {"steps": 7})
    with pytest.raises(ValueError, match="ode_num_steps must be >= 2"):
        forward_task(ode_num_steps=1)
