"""Conditioning matters: the given tokens reach the network, the in-ODE clamp keeps them on their path,
and the sampling library returns the requested reference frames at the given positions.

Every test uses a small MDGenNetwork whose zero-initialised parameters (FinalLayer, adaLN gates) are
re-randomised, so its output depends on all of its inputs (a freshly built network outputs 0 and would
make every "this input matters" check vacuous). Each test names the one-line bugs it catches.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mdgen.geometry import quaternion_to_rotation
from mdgen.interpolant import GVPPath, LinearPath
from mdgen.model import MDGenNetwork
from mdgen.module import MDGenModule
from mdgen.sampling.decoding import DecoderSettings
from mdgen.sampling.engine import WindowSampler
from mdgen.sampling.sampler_options import SolverOptions
from mdgen.sampling.transition_paths import endpoints_from_frames, run_paths
from mdgen.sampling.upsampling import UpsamplingLayout, run_upsampling
from mdgen.tasks import TaskSpec
from mdgen.trajectory_files import read_trajectory

B, T, L = 2, 5, 4
CA = 1  # atom14 slot of CA: the origin of the residue frame, so decoding puts it back exactly
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


def responsive_network(task: TaskSpec, seed: int = 0) -> MDGenNetwork:
    """A tiny MDGenNetwork for `task` with every all-zero parameter re-randomised (eval mode)."""
    torch.manual_seed(seed)
    network = MDGenNetwork(token_dim=task.token_dim, num_key_frames=len(task.key_frames), **TINY)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in network.parameters():
            if not parameter.any():
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=g))
    return network.eval()


def make_module(task: TaskSpec, path=None) -> MDGenModule:
    return MDGenModule(
        network=responsive_network(task),
        interpolant_path=path or GVPPath(),
        task=task,
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
    ).eval()


def random_batch(num_frames: int = T, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random rigids (translations ~3 Å), torsions and identities; residue 3 of sample 1 is padding."""
    g = torch.Generator().manual_seed(seed)
    angles = torch.rand(B, num_frames, L, 7, generator=g) * 6.28
    residue_mask = torch.ones(B, L)
    residue_mask[1, -1] = 0.0
    return {
        "rots": quaternion_to_rotation(torch.randn(B, num_frames, L, 4, generator=g)),
        "trans": 3.0 * torch.randn(B, num_frames, L, 3, generator=g),
        "torsions": torch.stack([angles.sin(), angles.cos()], -1),
        "torsion_mask": torch.ones(B, L, 7) * residue_mask[..., None],
        "aatype": torch.randint(0, 20, (B, L), generator=g),
        "residue_mask": residue_mask,
        "residue_index": torch.arange(L).expand(B, -1),
    }


def forward_task(**changes) -> TaskSpec:
    return TaskSpec(name="forward", num_frames=T, frame_interval_ps=10.0, cond_frames=(0,), **changes)


def interp_task(num_frames: int = T, **changes) -> TaskSpec:
    return TaskSpec(
        name="interp",
        num_frames=num_frames,
        frame_interval_ps=10.0,
        key_frames=(0, -1),
        cond_frames=(0, -1),
        **changes,
    )


def upsample_task(cond_interval: int = 2, intervals: int = 2, **changes) -> TaskSpec:
    return TaskSpec(
        name="upsample",
        num_frames=intervals * cond_interval + 1,
        frame_interval_ps=1.0,
        cond_frames=(0,),
        cond_interval=cond_interval,
        **changes,
    )


def flanks_task(**changes) -> TaskSpec:
    """Inpainting without design: residues 0 and 3 given at every frame."""
    return TaskSpec(
        name="flanks",
        num_frames=T,
        frame_interval_ps=1.0,
        key_frames=(0, -1),
        cond_residues=(0, 3),
        **changes,
    )


def with_torsions_changed(batch: dict, frame: int, seed: int = 7) -> dict:
    """The batch with new torsion angles at one frame (torsions reach the model only through tokens)."""
    g = torch.Generator().manual_seed(seed)
    angles = torch.rand(B, L, 7, generator=g) * 6.28
    torsions = batch["torsions"].clone()
    torsions[:, frame] = torch.stack([angles.sin(), angles.cos()], -1)
    return {**batch, "torsions": torsions}


# ---- (a) the network reads the given tokens and the mask ---------------------------------------------------


def network_inputs(task: TaskSpec, batch: dict, seed: int = 3) -> dict:
    inputs = task.build_inputs(batch)
    g = torch.Generator().manual_seed(seed)
    return dict(
        x_t=torch.randn(inputs.tokens.shape, generator=g),
        t=torch.full((B,), 0.4),
        **inputs.network_kwargs(),
    )


def velocity(network: MDGenNetwork, inputs: dict) -> torch.Tensor:
    inputs = dict(inputs)
    with torch.no_grad():
        return network(inputs.pop("x_t"), inputs.pop("t"), **inputs).velocity


def real(batch: dict) -> torch.Tensor:
    """(B, 1, L, 1) bool: real residues (padding outputs are meaningless)."""
    return (batch["residue_mask"] > 0)[:, None, :, None]


def test_network_output_depends_on_the_given_tokens():
    """Catches: x_cond dropped or zeroed inside MDGenNetwork.forward (cond_embed not applied)."""
    task, batch = forward_task(), random_batch()
    network, inputs = responsive_network(task), network_inputs(task, batch)
    assert inputs["x_cond"][:, 0].abs().sum() > 0  # frame 0 is given and non-zero
    changed = {**inputs, "x_cond": inputs["x_cond"] + 0.5 * (inputs["cond_mask"][..., None] > 0)}
    difference = (velocity(network, inputs) - velocity(network, changed)).abs()
    assert difference.masked_select(real(batch)).max() > 1e-2


def test_network_output_depends_on_which_tokens_are_marked_given():
    """Catches: cond_mask not embedded (or embedded as a constant) in MDGenNetwork.forward."""
    task, batch = forward_task(), random_batch()
    network, inputs = responsive_network(task), network_inputs(task, batch)
    flipped = {**inputs, "cond_mask": 1.0 - inputs["cond_mask"]}
    difference = (velocity(network, inputs) - velocity(network, flipped)).abs()
    assert difference.masked_select(real(batch)).max() > 1e-2


def sample(module: MDGenModule, batch: dict, seed: int = 11, **kwargs) -> torch.Tensor:
    kwargs = {"method": "euler", "num_steps": 4, **kwargs}
    return module.sample(batch, generator=torch.Generator().manual_seed(seed), **kwargs).tokens


def test_sampling_reads_the_given_frame_and_never_the_placeholder_frames():
    """Forward task, same noise: new torsions at the given frame 0 (they reach the model only through
    x_cond) change every generated token; new torsions and positions at a placeholder frame change
    nothing, bit for bit.

    Catches: x_cond dropped from `TaskInputs.network_kwargs`/`MDGenModule.sample`; the cond mask inverted
    (placeholders would be read as given); x_cond built from the unmasked tokens.
    """
    module, batch = make_module(forward_task()), random_batch()
    reference = sample(module, batch)

    given_changed = sample(module, with_torsions_changed(batch, frame=0))
    generated = real(batch)[:, :, :, 0] & (torch.arange(T) > 0)[None, :, None]  # (B, T, L)
    assert (reference - given_changed).abs()[generated].amax(-1).min() > 1e-4  # every generated token moved

    placeholder = 2
    moved = with_torsions_changed(batch, frame=placeholder)
    moved["trans"] = batch["trans"].clone()
    moved["trans"][:, placeholder] += 5.0
    assert torch.equal(sample(module, moved), reference)


# ---- (b) the in-ODE clamp ---------------------------------------------------------------------------------


class Recording(torch.nn.Module):
    """Wraps a network and keeps (t, x_t) of every call."""

    def __init__(self, network):
        super().__init__()
        self.network = network
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x_t, t, **kwargs):
        self.calls.append((t.clone(), x_t.clone()))
        return self.network(x_t, t, **kwargs)


def expected_given(task: TaskSpec, batch: dict) -> torch.Tensor:
    """(B, T, L) bool given tokens, from the task definition (not from build_inputs)."""
    num_frames = batch["trans"].shape[1]
    given = torch.zeros(num_frames, L, dtype=torch.bool)
    for frame in task.cond_frames:
        given[frame] = True
    if task.cond_interval:
        given[:: task.cond_interval] = True
    for residue in task.cond_residues:
        given[:, residue] = True
    return given[None] & (batch["residue_mask"] > 0)[:, None, :]


@pytest.mark.parametrize("task", [interp_task(), upsample_task(), flanks_task()], ids=lambda t: t.name)
def test_clamp_keeps_exactly_the_given_tokens_on_their_path(task):
    """Linear path + Euler: with the clamp, the given tokens of every state the network sees are
    (1 - t) * noise + t * x1 (the exact path), the other tokens are not, and the result holds the given
    tokens exactly. Without the clamp the given tokens come back regenerated (not equal).

    Catches: the clamp applied with the wrong mask (inverted, all tokens, loss_mask, wrong axis), the
    exact velocity taken from the wrong end points, the final `torch.where` dropped.
    """
    batch = random_batch(task.num_frames)
    module = make_module(task, path=LinearPath())
    module.network = Recording(module.network)
    tokens = sample(module, batch, clamp_conditioned=True)

    x1 = task.build_inputs(batch).tokens  # (B, T, L, C) in model units (scale 1: Å)
    noise = torch.randn(x1.shape, generator=torch.Generator().manual_seed(11))
    given = expected_given(task, batch)
    free = ~given & (batch["residue_mask"] > 0)[:, None, :]
    assert len(module.network.calls) == 3
    for t, x_t in module.network.calls:
        on_path = (1 - t[0]) * noise + t[0] * x1
        torch.testing.assert_close(x_t[given], on_path[given], atol=1e-5, rtol=0)
        if t[0] > 0:
            assert (x_t[free] - on_path[free]).abs().max() > 0.1
    assert torch.equal(tokens[given], x1[given])

    unclamped = sample(module, batch, clamp_conditioned=False)
    assert (unclamped[given] - x1[given]).abs().max() > 0.1
    # The clamp changes what is generated too: the given tokens' path feeds every other token.
    assert (unclamped[free] - tokens[free]).abs().max() > 1e-3


def test_the_task_clamp_setting_is_the_default():
    """Catches: `clamp_conditioned=None` not falling back to `task.clamp_conditioned`."""
    batch = random_batch()
    clamped = make_module(forward_task(clamp_conditioned=True))
    tokens = sample(clamped, batch)
    x1 = clamped.task.build_inputs(batch).tokens
    given = expected_given(clamped.task, batch)
    assert torch.equal(tokens[given], x1[given])
    assert not torch.equal(sample(make_module(forward_task()), batch)[given], x1[given])


# ---- (c) the sampling library puts the reference frames where they belong ------------------------------


@pytest.fixture(scope="module")
def moving_reference(repo_root):
    """A demo MD trajectory (GWEK, 10 ps frames) whose frame j is shifted by 4 Å * j along x, so that
    any two frames are several Å apart: a swapped or off-by-one frame cannot pass for the right one."""
    md = repo_root / "data" / "demo" / "md" / "GWEK"
    trajectory = read_trajectory(md / "GWEK.pdb", md / "GWEK.xtc")
    atom14 = trajectory.atom14[:12].copy()
    atom14 += (4.0 * np.arange(len(atom14)))[:, None, None, None] * np.array([1.0, 0.0, 0.0], np.float32)
    atom14 *= trajectory.atom14_mask[None, :, :, None]  # absent atoms stay at 0
    return dataclasses.replace(trajectory, atom14=atom14.astype(np.float32))


def sampler_for(task: TaskSpec) -> WindowSampler:
    """Clamped sampling, frames decoder: CA atoms of given frames are the reference CA atoms (float32)."""
    module = make_module(dataclasses.replace(task, clamp_conditioned=True))
    return WindowSampler(
        module,
        SolverOptions(method="euler", num_steps=3),
        torch.device("cpu"),
        decoding=DecoderSettings(decoder="frames"),
    )


def written_ca(stem) -> np.ndarray:
    """(T, L, 3) Å CA coordinates of a written sample."""
    return read_trajectory(f"{stem}.pdb", f"{stem}.xtc", check_bonds=False).atom14[:, :, CA]


def test_interpolation_paths_start_and_end_at_the_requested_reference_frames(moving_reference, tmp_path):
    """Catches: start and end frames swapped, the end frame placed at T-2 (off by one), the wrong
    reference frame looked up."""
    task = interp_task(num_frames=6)
    start, end = 2, 9
    run_paths(
        sampler_for(task),
        moving_reference,
        "GWEK",
        endpoints_from_frames(2, start, end),
        tmp_path,
        base_seed=0,
        batch_size=2,
    )
    reference_ca = moving_reference.atom14[:, :, CA]
    for i in range(2):
        ca = written_ca(tmp_path / f"GWEK_{i}")
        assert ca.shape == (6, 4, 3)
        np.testing.assert_allclose(ca[0], reference_ca[start], atol=0.02)
        np.testing.assert_allclose(ca[-1], reference_ca[end], atol=0.02)
        # the frames in between are generated, not copies of either end
        assert np.abs(ca[1:-1] - reference_ca[end]).max() > 1.0


@pytest.mark.parametrize("num_coarse", [5, 4])  # two full windows; one full window and a short tail
def test_upsampled_trajectory_passes_through_every_coarse_frame(moving_reference, tmp_path, num_coarse):
    """Fine frame j*k is coarse frame j for every j (k = cond_interval = 2, windows of 2 intervals).

    Catches: coarse frames placed at the wrong fine positions, a window started at the wrong coarse
    frame, the duplicate frame between windows kept (or the wrong one dropped), the tail window misplaced.
    """
    k = 2
    task = upsample_task(cond_interval=k, intervals=2)
    coarse = dataclasses.replace(moving_reference, atom14=moving_reference.atom14[:num_coarse])
    run_upsampling(
        sampler_for(task),
        coarse,
        "GWEK",
        UpsamplingLayout.from_task(task),
        tmp_path,
        base_seed=0,
        batch_size=2,
    )
    ca = written_ca(tmp_path / "GWEK")
    assert ca.shape[0] == (num_coarse - 1) * k + 1
    np.testing.assert_allclose(ca[::k], coarse.atom14[:, :, CA], atol=0.02)
    # the in-between frames are generated, not copies of a neighbouring coarse frame
    for j in range(num_coarse - 1):
        assert np.abs(ca[j * k + 1] - coarse.atom14[j, :, CA]).max() > 1.0
