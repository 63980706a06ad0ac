"""MDGenNetwork: parameter counts of the paper model, shapes, initial output, padding, invariance, checkpointing."""

import pytest
import torch

from mdgen.geometry import quaternion_to_rotation
from mdgen.model import MDGenNetwork, SinkAttention

TINY = dict(
    embed_dim=32,
    num_ipa_blocks=1,
    num_blocks=1,
    num_heads=4,
    ipa_heads=2,
    ipa_head_dim=8,
    ipa_qk_points=2,
    ipa_v_points=2,
)


def random_rots(*shape, generator):
    return quaternion_to_rotation(torch.randn(*shape, 4, generator=generator))


def make_inputs(batch, frames, residues, num_key_frames, token_dim, design=False, seed=0):
    """Keyword inputs of MDGenNetwork.forward plus x_t and t, all real residues."""
    g = torch.Generator().manual_seed(seed)
    width = token_dim + (20 if design else 0)
    return dict(
        x_t=torch.randn(batch, frames, residues, width, generator=g),
        t=torch.rand(batch, generator=g),
        x_cond=torch.randn(batch, frames, residues, token_dim, generator=g),
        cond_mask=(torch.rand(batch, frames, residues, generator=g) > 0.5).float(),
        residue_mask=torch.ones(batch, residues),
        key_rots=random_rots(batch, num_key_frames, residues, generator=g),
        key_trans=5 * torch.randn(batch, num_key_frames, residues, 3, generator=g),
        aatype=torch.randint(0, 21, (batch, residues), generator=g),
        residue_index=torch.arange(residues).expand(batch, residues) + 3,
    )


def run(model, inputs):
    inputs = dict(inputs)
    return model(inputs.pop("x_t"), inputs.pop("t"), **inputs)


def perturbed(model, seed=0):
    """The model with every all-zero parameter (zero-initialised gates, heads, biases) re-randomised,
    so that outputs depend on every path and equality checks are not trivially 0 == 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(token_dim=21, num_key_frames=1), 34_152_521),
        (dict(token_dim=28, num_key_frames=2), 34_166_736),
        (dict(token_dim=28, num_key_frames=2, design=True, use_aa_emb=False), 34_633_336),
    ],
)
def test_base_model_has_the_paper_parameter_count(kwargs, expected):
    with torch.device("meta"):  # count without allocating 34 M parameters
        model = MDGenNetwork(**kwargs)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize(
    ("num_key_frames", "token_dim", "design"), [(1, 21, False), (2, 28, False), (2, 28, True)]
)
def test_output_shapes_and_zero_initial_velocity(num_key_frames, token_dim, design):
    torch.manual_seed(0)
    model = MDGenNetwork(token_dim, num_key_frames, design=design, use_aa_emb=not design, **TINY)
    output = run(model, make_inputs(2, 5, 4, num_key_frames, token_dim, design))
    assert output.velocity.shape == (2, 5, 4, token_dim + (20 if design else 0))
    continuous = output.velocity[..., :token_dim]
    assert torch.equal(continuous, torch.zeros_like(continuous))  # zero-initialised final layer
    if design:
        assert output.aa_logits.shape == (2, 4, 20)
        # The final layer's logit channels are zero too, so the per-frame logits are the pooled ones.
        torch.testing.assert_close(
            output.velocity[..., token_dim:], output.aa_logits[:, None].expand(-1, 5, -1, -1)
        )
        assert output.aa_logits.abs().sum() > 0
    else:
        assert output.aa_logits is None


def pad_residues(inputs, extra, seed=1):
    """Append `extra` padded residues filled with junk (tokens, rigids, aatype, indices) and mask 0."""
    g = torch.Generator().manual_seed(seed)
    padded = {}
    for name, value in inputs.items():
        if name == "t":
            padded[name] = value
            continue
        residue_dim = {"key_rots": 2, "key_trans": 2, "x_t": 2, "x_cond": 2, "cond_mask": 2}.get(name, 1)
        shape = list(value.shape)
        shape[residue_dim] = extra
        if name == "residue_mask":
            junk = torch.zeros(shape)
        elif name in ("aatype", "residue_index"):
            junk = torch.randint(0, 21, shape, generator=g)
        elif name == "cond_mask":
            junk = (torch.rand(shape, generator=g) > 0.5).float()
        elif name == "key_rots":
            junk = random_rots(*shape[:-2], generator=g)
        else:
            junk = 100 * torch.randn(shape, generator=g)
        padded[name] = torch.cat([value, junk.to(value.dtype)], dim=residue_dim)
    return padded


@pytest.mark.parametrize(
    ("num_key_frames", "token_dim", "design", "pos_emb"),
    [(1, 21, False, "rotary"), (2, 28, True, "rotary"), (1, 21, False, "table")],
)
def test_padding_residues_does_not_change_real_outputs(num_key_frames, token_dim, design, pos_emb):
    torch.manual_seed(0)
    model = MDGenNetwork(
        token_dim, num_key_frames, design=design, residue_pos_emb=pos_emb, max_residues=32, **TINY
    )
    model = perturbed(model)
    inputs = make_inputs(2, 6, 4, num_key_frames, token_dim, design)
    with torch.no_grad():
        reference = run(model, inputs)
        padded = run(model, pad_residues(inputs, extra=3))
    assert reference.velocity.abs().amax() > 1e-2  # the comparison is not 0 == 0
    assert torch.isfinite(padded.velocity).all()  # padded residues attend to the sink only, no NaN
    torch.testing.assert_close(padded.velocity[:, :, :4], reference.velocity, atol=1e-5, rtol=1e-5)
    if design:
        torch.testing.assert_close(padded.aa_logits[:, :4], reference.aa_logits, atol=1e-5, rtol=1e-5)


def test_each_sample_of_a_ragged_batch_matches_its_own_run():
    torch.manual_seed(0)
    model = perturbed(MDGenNetwork(21, 1, **TINY))
    short = make_inputs(1, 4, 3, 1, 21, seed=1)
    long = make_inputs(1, 4, 5, 1, 21, seed=2)
    batch = {k: torch.cat([pad_residues({k: v}, 2)[k] if k != "t" else v, long[k]]) for k, v in short.items()}
    with torch.no_grad():
        together = run(model, batch).velocity
        torch.testing.assert_close(together[:1, :, :3], run(model, short).velocity, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(together[1:], run(model, long).velocity, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_key_frames", [1, 2])
def test_output_is_invariant_to_a_global_rigid_motion_of_the_key_frames(num_key_frames):
    torch.manual_seed(0)
    model = perturbed(MDGenNetwork(7 * num_key_frames + 14, num_key_frames, **TINY))
    inputs = make_inputs(2, 3, 5, num_key_frames, 7 * num_key_frames + 14)
    g = torch.Generator().manual_seed(5)
    rotation = random_rots(2, 1, 1, generator=g)  # one rotation per sample
    shift = 20 * torch.randn(2, 1, 1, 3, generator=g)
    moved = dict(inputs)
    moved["key_rots"] = rotation @ inputs["key_rots"]
    moved["key_trans"] = (rotation @ inputs["key_trans"].unsqueeze(-1)).squeeze(-1) + shift
    with torch.no_grad():
        torch.testing.assert_close(
            run(model, moved).velocity, run(model, inputs).velocity, atol=1e-4, rtol=1e-4
        )


def test_rotary_positions_are_relative_so_shifting_residue_index_changes_nothing():
    torch.manual_seed(0)
    model = perturbed(MDGenNetwork(21, 1, **TINY))
    inputs = make_inputs(1, 3, 5, 1, 21)
    shifted = dict(inputs, residue_index=inputs["residue_index"] + 100)
    reordered = dict(inputs, residue_index=inputs["residue_index"].flip(-1))
    with torch.no_grad():
        reference = run(model, inputs).velocity
        torch.testing.assert_close(run(model, shifted).velocity, reference, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(run(model, reordered).velocity, reference, atol=1e-3)  # positions are used


def test_gradient_checkpointing_gives_the_same_output_and_gradients():
    torch.manual_seed(0)
    plain = perturbed(MDGenNetwork(28, 2, design=True, **TINY)).train()
    checkpointed = MDGenNetwork(28, 2, design=True, grad_checkpointing=True, **TINY).train()
    checkpointed.load_state_dict(plain.state_dict())
    inputs = make_inputs(2, 3, 4, 2, 28, design=True)
    outputs = []
    for model in (plain, checkpointed):
        output = run(model, inputs)
        (output.velocity.square().mean() + output.aa_logits.square().mean()).backward()
        outputs.append(output.velocity.detach())
    torch.testing.assert_close(outputs[1], outputs[0])
    for (name, p_plain), p_checkpointed in zip(plain.named_parameters(), checkpointed.parameters()):
        assert p_plain.grad is not None, name
        torch.testing.assert_close(p_checkpointed.grad, p_plain.grad, msg=name)


def test_sink_attention_matches_explicit_softmax_attention():
    torch.manual_seed(0)
    attention = SinkAttention(embed_dim=16, num_heads=2).eval()
    x = torch.randn(3, 5, 16)
    positions = torch.tensor([[0, 1, 2, 3, 4], [2, 3, 4, 5, 6], [0, 2, 4, 6, 8]])
    key_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)

    def heads(y):
        return y.view(3, -1, 2, 8).transpose(1, 2)  # (N, H, S, d)

    def rotate(y, pos):
        inverse_frequency = 10000.0 ** (-torch.arange(0, 8, 2) / 8)
        angle = pos[:, None, :, None] * inverse_frequency  # (N, 1, S, 4)
        first, second = y[..., :4], y[..., 4:]
        return torch.cat(
            [first * angle.cos() - second * angle.sin(), second * angle.cos() + first * angle.sin()], -1
        )

    q = rotate(heads(attention.q_proj(x)), positions)
    k = rotate(heads(attention.k_proj(x)), positions)
    v = heads(attention.v_proj(x))
    k = torch.cat([k, attention.sink_key.view(1, 2, 1, 8).expand(3, -1, -1, -1)], dim=2)
    v = torch.cat([v, attention.sink_value.view(1, 2, 1, 8).expand(3, -1, -1, -1)], dim=2)
    scores = q @ k.transpose(-1, -2) / 8**0.5
    visible = torch.cat([key_mask, torch.ones(3, 1, dtype=torch.bool)], dim=1)[:, None, None]
    weights = scores.masked_fill(~visible, float("-inf")).softmax(-1)
    expected = attention.out_proj((weights @ v).transpose(1, 2).reshape(3, 5, 16))

    with torch.no_grad():
        torch.testing.assert_close(attention(x, positions, key_mask), expected, atol=1e-5, rtol=1e-5)
        # A sequence with no visible key returns the sink value for every query, finite.
        sink_only = attention.out_proj(attention.sink_value).expand(5, -1)
        torch.testing.assert_close(attention(x, positions, key_mask)[2], sink_only, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_runs_and_stays_finite():
    torch.manual_seed(0)
    model = perturbed(MDGenNetwork(28, 2, design=True, **TINY))
    inputs = pad_residues(make_inputs(2, 3, 4, 2, 28, design=True), extra=2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        output = run(model, inputs)
    assert torch.isfinite(output.velocity.float()).all()


def test_original_sink_position_rotates_the_sink_key_as_position_s():
    """sink_position="original" equals attention whose sink key is rotated as position S (the key length),
    as in the original code; "start" leaves it unrotated. Same parameters, different outputs."""
    torch.manual_seed(0)
    start = SinkAttention(embed_dim=16, num_heads=2).eval()
    original = SinkAttention(embed_dim=16, num_heads=2, sink_position="original").eval()
    original.load_state_dict(start.state_dict())
    x = torch.randn(2, 5, 16)
    positions = torch.arange(5)

    def heads(y):
        return y.view(2, -1, 2, 8).transpose(1, 2)  # (N, H, S, d)

    def rotate(y, pos):  # pos: (S,) positions of the rows of y
        angle = pos[:, None].float() * 10000.0 ** (-torch.arange(0, 8, 2) / 8)  # (S, 4)
        first, second = y[..., :4], y[..., 4:]
        return torch.cat(
            [first * angle.cos() - second * angle.sin(), second * angle.cos() + first * angle.sin()], -1
        )

    with torch.no_grad():
        q = rotate(heads(original.q_proj(x)), positions)
        k = torch.cat(
            [heads(original.k_proj(x)), original.sink_key.view(1, 2, 1, 8).expand(2, -1, -1, -1)], 2
        )
        k = rotate(k, torch.arange(6))  # the sink is key number S = 5
        v = torch.cat(
            [heads(original.v_proj(x)), original.sink_value.view(1, 2, 1, 8).expand(2, -1, -1, -1)], 2
        )
        weights = (q @ k.transpose(-1, -2) / 8**0.5).softmax(-1)
        expected = original.out_proj((weights @ v).transpose(1, 2).reshape(2, 5, 16))
        torch.testing.assert_close(original(x, positions), expected, atol=1e-5, rtol=1e-5)
        assert (original(x, positions) - start(x, positions)).abs().amax() > 1e-3


def test_original_sink_position_makes_real_outputs_depend_on_padding():
    """Why "start" is our default: with the original's sink position, padding residues moves the sink
    (S grows) and changes the outputs of the real residues; with "start" it does not (test above)."""
    torch.manual_seed(0)
    model = perturbed(MDGenNetwork(21, 1, sink_position="original", **TINY))
    inputs = make_inputs(2, 6, 4, 1, 21)
    with torch.no_grad():
        reference = run(model, inputs).velocity
        padded = run(model, pad_residues(inputs, extra=3)).velocity[:, :, :4]
    assert (padded - reference).abs().amax() > 1e-4
