"""MDGenModule (loss, sampling API) and the LR schedule, with stub networks (the EMA callback: test_ema.py).

The stubs make the expected numbers exact; the real network is exercised in tests/integration.
"""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mdgen.geometry import quaternion_to_rotation
from mdgen.interpolant import DirichletFlow, GVPPath, masked_mse
from mdgen.module import MDGenModule, WarmupThenDecay
from mdgen.tasks import TaskSpec

B, T, L = 2, 6, 4


def random_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    rots = quaternion_to_rotation(torch.randn(B, T, L, 4, generator=g))
    angles = torch.rand(B, T, L, 7, generator=g) * 6.28
    residue_mask = torch.ones(B, L)
    residue_mask[1, -1] = 0.0
    return {
        "rots": rots,
        "trans": 3.0 * torch.randn(B, T, L, 3, generator=g),
        "torsions": torch.stack([angles.sin(), angles.cos()], -1),
        "torsion_mask": torch.ones(B, L, 7) * residue_mask[..., None],
        "aatype": torch.randint(0, 20, (B, L), generator=g),
        "residue_mask": residue_mask,
        "residue_index": torch.arange(L).expand(B, -1),
    }


class ScaledInput(nn.Module):
    """velocity = scale * x_t (scale 0: the zero velocity); with `favourite`, the last 20 output channels
    are per-frame identity logits strongly favouring that class (the design layout of MDGenNetwork)."""

    def __init__(self, favourite=None):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))
        self.favourite = favourite

    def forward(self, x_t, t, **inputs):
        assert t.shape == (x_t.shape[0],)
        velocity = self.scale * x_t
        if self.favourite is None:
            return SimpleNamespace(velocity=velocity, aa_logits=None)
        logits = torch.zeros(*x_t.shape[:-1], 20)
        logits[..., self.favourite] = 30.0
        velocity = torch.cat([velocity[..., :-20], logits], dim=-1)
        return SimpleNamespace(velocity=velocity, aa_logits=logits.mean(1))


def forward_task():
    return TaskSpec(name="forward", num_frames=T, frame_interval_ps=10.0, cond_frames=(0,))


def inpaint_task():
    return TaskSpec(
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


def make_module(task, network=None, **kwargs):
    return MDGenModule(
        network=network or ScaledInput(favourite=7 if task.design else None),
        interpolant_path=GVPPath(),
        task=task,
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
        dirichlet=DirichletFlow() if task.design else None,
        **kwargs,
    )


def test_zero_velocity_loss_is_the_masked_mean_square_of_the_target():
    module, batch = make_module(forward_task()), random_batch()
    terms = module.compute_loss(batch, torch.Generator().manual_seed(3))

    inputs = module.task.build_inputs(batch)
    g = torch.Generator().manual_seed(3)  # the module draws t, then x0
    t = torch.rand(B, generator=g)
    x0 = torch.randn(inputs.tokens.shape, generator=g)
    target = GVPPath().sample(x0, inputs.tokens, t).velocity
    expected = masked_mse(torch.zeros_like(target), target, inputs.loss_mask).mean()
    torch.testing.assert_close(terms.loss, expected)
    assert terms.sequence_ce is None and terms.num_frames == B * T


def test_design_loss_mixes_velocity_mse_and_cross_entropy_half_and_half():
    module = make_module(inpaint_task())
    module.network.favourite = None  # zero velocity and zero logits: CE = ln 20
    terms = module.compute_loss(random_batch(), torch.Generator().manual_seed(0))
    torch.testing.assert_close(terms.sequence_ce, torch.tensor(math.log(20.0)))
    torch.testing.assert_close(terms.loss, 0.5 * terms.velocity_mse + 0.5 * terms.sequence_ce)


def test_design_needs_a_dirichlet_flow():
    with pytest.raises(ValueError, match="DirichletFlow"):
        MDGenModule(ScaledInput(), GVPPath(), inpaint_task(), optimizer=torch.optim.Adam)


def test_sample_with_zero_velocity_returns_the_noise_and_counts_evaluations():
    module, batch = make_module(forward_task()), random_batch()
    result = module.sample(batch, generator=torch.Generator().manual_seed(5), method="euler", num_steps=5)
    noise = torch.randn(result.tokens.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(result.tokens, noise)
    assert result.nfe == 4 and torch.equal(result.aatype, batch["aatype"]) and result.aa_probs is None


def test_clamped_sampling_returns_the_given_tokens_exactly():
    module, batch = make_module(forward_task()), random_batch()
    result = module.sample(
        batch, generator=torch.Generator().manual_seed(5), method="dopri5", clamp_conditioned=True
    )
    inputs = module.task.build_inputs(batch)
    given = inputs.cond_mask > 0
    assert torch.equal(result.tokens[given], inputs.tokens[given])
    assert not torch.allclose(result.tokens[:, 1:], inputs.tokens[:, 1:])  # the rest is generated


def test_sampled_tokens_come_back_in_angstrom_when_the_model_works_in_scaled_units():
    """With translation_scale_A = 4 the model sees translations / 4; sample() must return Å (clamped
    given tokens equal the Å tokens of the batch; the second key frame gives frame 0 a real offset)."""
    import dataclasses

    two_keys = dataclasses.replace(
        forward_task(), key_frames=(0, -1), token_dim=None, num_key_frames=None, translation_scale_A=4.0
    )
    module, batch = make_module(two_keys), random_batch()
    result = module.sample(
        batch, generator=torch.Generator().manual_seed(5), method="euler", num_steps=3, clamp_conditioned=True
    )
    in_angstrom = dataclasses.replace(two_keys, translation_scale_A=1.0).build_inputs(batch).tokens
    given = module.task.build_inputs(batch).cond_mask > 0
    assert in_angstrom[given][..., 11:14].abs().max() > 1.0
    torch.testing.assert_close(result.tokens[given], in_angstrom[given])


def test_design_sampling_follows_the_predicted_identities():
    module = make_module(inpaint_task())  # the stub's logits favour class 7 everywhere
    result = module.sample(random_batch(), generator=torch.Generator().manual_seed(0))  # task default: euler
    assert result.nfe == 49
    assert result.tokens.shape == (B, T, L, 28) and result.aa_probs.shape == (B, L, 20)
    # Dirichlet flow ends at Dirichlet(1 + 7 e_k), not at a vertex: class 7 is likely, not certain.
    assert result.aa_probs[..., 7].mean() > 0.2  # uniform: 0.05
    assert (result.aatype == 7).float().mean() >= 0.75
    torch.testing.assert_close(result.aa_probs.sum(-1), torch.ones(B, L))


def test_checkpoint_hooks_carry_config_task_and_noise_state():
    module = make_module(forward_task(), run_config={"task": {"name": "forward"}})
    module.compute_loss(random_batch(), module._training_generator())
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["mdgen"]["config"] == {"task": {"name": "forward"}}
    assert checkpoint["mdgen"]["task"]["cond_frames"] == (0,)
    expected_next = torch.rand(3, generator=module._training_generator())

    restored = make_module(forward_task())
    restored.on_load_checkpoint(checkpoint)
    torch.testing.assert_close(torch.rand(3, generator=restored._training_generator()), expected_next)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (WarmupThenDecay(warmup_steps=4), [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]),
        (WarmupThenDecay(warmup_steps=2, total_steps=6, decay="cosine"), [0.5, 1.0, 1.0, 0.5, 0.0, 0.0]),
    ],
)
def test_warmup_schedules(schedule, expected):
    values = [schedule(step) for step in (0, 1, 2, 4, 6, 9)]
    assert values == pytest.approx(expected, abs=1e-12)
