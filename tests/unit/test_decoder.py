"""The chain decoder (geometry/backbone.py, decoder=chain of sampling): ideal covalent geometry from any
tokens, a faithful round trip of real MD, and METHOD 12 validity at the MD's rate."""

import math
import tempfile
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from mdgen import constants as rc
from mdgen import tokens
from mdgen.analysis.validity import _bond_array, _clash_candidates, frame_failures
from mdgen.geometry import dihedral_sin_cos, ideal_chain, quaternion_to_rotation, superpose
from mdgen.geometry.backbone import (
    C_N_BOND_A,
    C_N_CA_ANGLE_DEG,
    CA_C_N_ANGLE_DEG,
    OMEGA_MAX_DEVIATION_DEG,
    buildable_torsions,
    chain_atom14,
    planar_omega,
    textbook_psi_offset,
)
from mdgen.sampling.decoding import (
    CHAIN_DECODER_MAX_RESIDUES,
    DecoderSettings,
    decode_windows,
    decode_windows_counted,
)
from mdgen.sampling.engine import window_batch
from mdgen.sampling.sterics import _pair_distances, remove_clashes, steric_pairs, torsion_gradient
from mdgen.tasks import TaskSpec
from mdgen.trajectory_files import read_trajectory, write_trajectory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trajectories"
NAMES = ("FLRH", "IPGD", "RTVD")
_N, _CA, _C, _O = 0, 1, 2, 3
# Intra-residue ideal geometry of mdgen.constants (the decoders place N, CA, C from it).
_N_CA, _CA_C, _N_CA_C_DEG = 1.458, 1.525, 111.2


def _angle_deg(a, b, c):
    u, v = a - b, c - b
    return torch.rad2deg(torch.acos((u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1))))


def _unit(sin_cos):
    return sin_cos / sin_cos.norm(dim=-1, keepdim=True)


def _failures(atom14: np.ndarray, aatype: np.ndarray) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        pdb, xtc = write_trajectory(Path(tmp) / "t", atom14, aatype, timestep_ps=1.0)
        return frame_failures(md.load(str(xtc), top=str(pdb)))


def _fixture(name: str):
    traj = read_trajectory(FIXTURES / f"{name}.pdb", FIXTURES / f"{name}.xtc")
    return torch.as_tensor(traj.atom14, dtype=torch.float64), torch.as_tensor(traj.aatype)


def _forward_task(num_frames: int) -> TaskSpec:
    return TaskSpec(
        name="forward", num_frames=num_frames, frame_interval_ps=10.0, key_frames=(0,), cond_frames=(0,)
    )


def test_textbook_psi_offset_is_derived_zero_for_a_planar_carbonyl():
    # O and N(i+1) lie in one plane on opposite sides of CA-C: psi_textbook = psi_AF2 exactly.
    offset = textbook_psi_offset()
    assert abs(math.atan2(offset[0], offset[1])) < 1e-6


def test_ideal_chain_has_ideal_bonds_and_reproduces_its_torsions():
    generator = torch.Generator().manual_seed(0)
    omega, phi, psi = (
        _unit(torch.randn(5, 8, 2, generator=generator, dtype=torch.float64)) for _ in range(3)
    )
    chain = ideal_chain(omega, phi, psi)  # (5, 8, 3, 3)
    n, ca, c = chain.unbind(-2)
    torch.testing.assert_close(
        (n - ca).norm(dim=-1), torch.full((5, 8), _N_CA, dtype=torch.float64), atol=2e-3, rtol=0
    )
    torch.testing.assert_close(
        (c - ca).norm(dim=-1), torch.full((5, 8), _CA_C, dtype=torch.float64), atol=2e-3, rtol=0
    )
    torch.testing.assert_close(
        (n[:, 1:] - c[:, :-1]).norm(dim=-1), torch.full((5, 7), C_N_BOND_A, dtype=torch.float64)
    )
    assert (_angle_deg(n, ca, c) - _N_CA_C_DEG).abs().max() < 0.05
    assert (_angle_deg(ca[:, :-1], c[:, :-1], n[:, 1:]) - CA_C_N_ANGLE_DEG).abs().max() < 1e-6
    assert (_angle_deg(c[:, :-1], n[:, 1:], ca[:, 1:]) - C_N_CA_ANGLE_DEG).abs().max() < 1e-6
    torch.testing.assert_close(dihedral_sin_cos(ca[:, :-1], c[:, :-1], n[:, 1:], ca[:, 1:]), omega[:, 1:])
    torch.testing.assert_close(dihedral_sin_cos(c[:, :-1], n[:, 1:], ca[:, 1:], c[:, 1:]), phi[:, 1:])
    torch.testing.assert_close(dihedral_sin_cos(n[:, :-1], ca[:, :-1], c[:, :-1], n[:, 1:]), psi[:, :-1])


def test_superpose_recovers_a_rigid_motion_and_never_reflects():
    generator = torch.Generator().manual_seed(1)
    points = torch.randn(4, 12, 3, generator=generator, dtype=torch.float64)
    q = _unit(torch.randn(4, 4, generator=generator, dtype=torch.float64))
    rots, trans = quaternion_to_rotation(q), torch.randn(4, 3, generator=generator, dtype=torch.float64)
    moved = points @ rots.transpose(-1, -2) + trans[:, None]
    fit_rots, fit_trans = superpose(points, moved)
    torch.testing.assert_close(fit_rots, rots)
    torch.testing.assert_close(fit_trans, trans)
    mirrored = moved * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(
        torch.linalg.det(superpose(points, mirrored)[0]), torch.ones(4, dtype=torch.float64)
    )


def test_planar_omega_keeps_md_like_values_and_clamps_the_rest():
    degrees = torch.tensor([180.0, -170.0, 150.0, 100.0, -20.0, 10.0, -80.0], dtype=torch.float64)
    cis_allowed = torch.tensor([False, False, False, False, False, True, True])
    omega = torch.stack([torch.deg2rad(degrees).sin(), torch.deg2rad(degrees).cos()], -1)
    clamped = planar_omega(omega, cis_allowed, OMEGA_MAX_DEVIATION_DEG)
    result = torch.rad2deg(torch.atan2(clamped[:, 0], clamped[:, 1]))
    limit = OMEGA_MAX_DEVIATION_DEG
    # trans kept, trans kept, trans kept, clamped toward 180, clamped toward -180 (cis before a non-proline
    # is not allowed), cis kept (proline), clamped toward cis (proline, nearer to 0° than to 180°)
    expected = torch.tensor(
        [180.0, -170.0, 150.0, 180.0 - limit, -180.0 + limit, 10.0, -limit], dtype=torch.float64
    )
    wrapped = torch.remainder(result - expected + 180.0, 360.0) - 180.0
    assert wrapped.abs().max() < 1e-6, (result, expected)


def _random_tokens(shape, generator) -> torch.Tensor:
    """Garbage tokens (..., 21): random quaternions, translations up to ~10 Å, random torsion pairs
    (some exactly zero)."""
    garbage = torch.randn(*shape, 21, generator=generator) * torch.cat(
        [torch.ones(4), torch.full((3,), 5.0), torch.ones(14)]
    )
    garbage[..., 7 + 2 * 2 : 7 + 2 * 3] = 0.0  # psi (0, 0) everywhere: must still decode
    return garbage


def _garbage_window(sequence: str, batch_size: int, num_frames: int, seed: int):
    """Random key-frame rigids (spread over ~10 Å) and garbage tokens (..., 21): random quaternions,
    translations of ~5 Å, random torsion pairs, psi exactly (0, 0) everywhere (must still decode)."""
    generator = torch.Generator().manual_seed(seed)
    aatype = torch.as_tensor(rc.aatype_from_sequence(sequence)).expand(batch_size, -1)
    num_residues = len(sequence)
    batch = {
        "rots": quaternion_to_rotation(
            torch.randn(batch_size, num_frames, num_residues, 4, generator=generator)
        ),
        "trans": 10.0 * torch.randn(batch_size, num_frames, num_residues, 3, generator=generator),
        "residue_mask": torch.ones(batch_size, num_residues),
    }
    garbage = torch.randn(batch_size, num_frames, num_residues, 21, generator=generator)
    garbage[..., 4:7] *= 5.0
    garbage[..., 7 + 2 * 2 : 7 + 2 * 3] = 0.0
    return garbage, batch, aatype


def _check_ideal_chain(atom14: torch.Tensor) -> None:
    """Bonds and angles of N, CA, C, the peptide bond and a planar carbonyl, for (..., L, 14, 3)."""
    n, ca, c, o = (atom14[..., i, :].double() for i in (_N, _CA, _C, _O))
    assert torch.isfinite(atom14).all()
    assert ((n - ca).norm(dim=-1) - _N_CA).abs().max() < 2e-3
    assert ((c - ca).norm(dim=-1) - _CA_C).abs().max() < 2e-3
    assert ((n[..., 1:, :] - c[..., :-1, :]).norm(dim=-1) - C_N_BOND_A).abs().max() < 2e-3
    assert (_angle_deg(n, ca, c) - _N_CA_C_DEG).abs().max() < 0.2
    assert (_angle_deg(ca[..., :-1, :], c[..., :-1, :], n[..., 1:, :]) - CA_C_N_ANGLE_DEG).abs().max() < 0.2
    assert (_angle_deg(c[..., :-1, :], n[..., 1:, :], ca[..., 1:, :]) - C_N_CA_ANGLE_DEG).abs().max() < 0.2
    # O is built from psi like N(i+1): the carbonyl stays planar (O and N(i+1) on opposite sides of CA-C).
    improper = dihedral_sin_cos(o[..., :-1, :], ca[..., :-1, :], c[..., :-1, :], n[..., 1:, :])
    assert (improper[..., 1] + 1.0).abs().max() < 1e-3


@pytest.mark.parametrize("sequence", ["APGPWK", "IPGD"])
def test_chain_decoder_has_ideal_geometry_and_no_chain_break_from_garbage_tokens(sequence):
    garbage, batch, aatype = _garbage_window(sequence, batch_size=2, num_frames=5, seed=2)
    num_residues = len(sequence)

    def failures_of(atom14):
        return _failures(atom14.reshape(-1, num_residues, 14, 3).numpy(), aatype[0].numpy())

    plain = decode_windows(garbage, batch, aatype, _forward_task(5), declash=False)
    _check_ideal_chain(plain)
    plain_failures = failures_of(plain)
    assert not plain_failures["ca_break"].any() and not plain_failures["cn_break"].any()
    assert plain_failures["clash"].any()  # random torsions: the plain chain clashes
    # The default, with clash removal: still ideal and unbroken, and fewer clashes.
    declashed = decode_windows(garbage, batch, aatype, _forward_task(5))
    _check_ideal_chain(declashed)
    failures = failures_of(declashed)
    assert not failures["ca_break"].any() and not failures["cn_break"].any()
    assert failures["clash"].mean() < plain_failures["clash"].mean()
    # The same tokens through the original's per-residue decoder break the chain (the check can fail).
    frames = decode_windows(garbage, batch, aatype, _forward_task(5), decoder="frames")
    assert failures_of(frames)["cn_break"].mean() > 0.9


def test_decoder_settings_choose_the_chain_for_peptides_and_refuse_declash_without_it():
    auto = DecoderSettings()
    assert auto.decoder_for(4) == "chain" and auto.declashes
    assert auto.decoder_for(CHAIN_DECODER_MAX_RESIDUES + 1) == "frames"
    assert DecoderSettings("chain").decoder_for(300) == "chain"
    assert not DecoderSettings("chain", declash=False).declashes
    with pytest.raises(ValueError, match="declash needs the chain decoder"):
        DecoderSettings("frames", declash=True)
    with pytest.raises(ValueError, match="not one of"):
        DecoderSettings("atoms")


def test_auto_decodes_long_chains_with_frames():
    garbage, batch, aatype = _garbage_window("A" * (CHAIN_DECODER_MAX_RESIDUES + 1), 1, 2, seed=3)
    task = _forward_task(2)
    auto = decode_windows_counted(garbage, batch, aatype, task, DecoderSettings())
    frames = decode_windows(garbage, batch, aatype, task, decoder="frames")
    assert auto.decoder == "frames" and auto.frames_declashed == 0
    assert torch.equal(auto.atom14, frames)


def test_steric_pairs_are_those_of_method_12_validity():
    for sequence in ("KSHF", "WLPE", "IPGD"):
        aatype = rc.aatype_from_sequence(sequence)
        with tempfile.TemporaryDirectory() as tmp:  # the topology that validity sees in written files
            pdb, _ = write_trajectory(
                Path(tmp) / "t", np.zeros((1, len(aatype), 14, 3)), aatype, timestep_ps=1.0
            )
            topology = md.load_topology(str(pdb))
        expected_pairs, expected_limits = _clash_candidates(topology, _bond_array(topology))
        flat = np.flatnonzero(rc.ATOM14_MASK[aatype])  # atom order of the topology, as residue * 14 + slot
        expected = {(flat[i], flat[j]): limit for (i, j), limit in zip(expected_pairs, expected_limits)}
        pairs = steric_pairs(aatype)
        got = {
            (int(i), int(j)): float(limit)
            for i, j, limit in zip(pairs.first, pairs.second, pairs.min_distance_A)
        }
        assert got.keys() == expected.keys()
        assert all(abs(got[key] - expected[key]) < 1e-6 for key in got)


def _heavy_rmsd(decoded: torch.Tensor, atom14: torch.Tensor, aatype: torch.Tensor) -> torch.Tensor:
    mask = torch.as_tensor(rc.ATOM14_MASK[aatype.numpy()])
    return (decoded - atom14)[:, mask].pow(2).sum(-1).mean(-1).sqrt()  # (T,) as placed, no superposition


# Measured on the fixtures (50 frames each of FLRH, IPGD, RTVD; experiments/quality/decoder.md):
# mean heavy-atom RMSD as placed, frames 0.31 Å, chain 0.50 Å (ideal bond angles accumulate along
# the chain; 350 K MD bends them by ~3.5°). Bounds leave margin.
CHAIN_ROUND_TRIP_MEAN_A = 0.7
CHAIN_ROUND_TRIP_MAX_A = 1.8


def test_round_trip_of_md_through_the_chain_decoder_is_close_to_the_frames_decoder():
    chain_rmsd, frames_rmsd = [], []
    for name in NAMES:
        atom14, aatype = _fixture(name)
        encoded = tokens.encode(atom14, aatype)
        chain_rmsd.append(
            _heavy_rmsd(tokens.decode(encoded, atom14[0], aatype, decoder="chain"), atom14, aatype)
        )
        frames_rmsd.append(
            _heavy_rmsd(tokens.decode(encoded, atom14[0], aatype, decoder="frames"), atom14, aatype)
        )
    chain_rmsd, frames_rmsd = torch.cat(chain_rmsd), torch.cat(frames_rmsd)
    assert chain_rmsd.mean() < CHAIN_ROUND_TRIP_MEAN_A and chain_rmsd.max() < CHAIN_ROUND_TRIP_MAX_A
    assert chain_rmsd.mean() < 2.0 * frames_rmsd.mean()


def _decode_md(atom14: torch.Tensor, aatype: torch.Tensor, settings: DecoderSettings) -> torch.Tensor:
    """MD frames (T, L, 14, 3) -> their tokens -> decode_windows as sampling does (one window)."""
    batch = window_batch(atom14[None].float(), aatype[None])
    task = _forward_task(len(atom14))
    window_tokens = task.build_inputs(batch).tokens
    return decode_windows(window_tokens, batch, aatype[None], task, settings.decoder, settings.declash)[0]


def test_md_decoded_by_the_chain_decoder_never_breaks_and_with_clash_removal_is_valid():
    """Both decoders rebuild MD with ideal geometry, which turns some close contacts of MD into METHOD 12
    clashes (fixtures: MD 89 % valid, frames 61 %, plain chain 62 %). Clash removal clears them."""
    settings = {
        "frames": DecoderSettings("frames", declash=False),
        "chain": DecoderSettings("chain", declash=False),
        "chain+declash": DecoderSettings("chain", declash=True),
    }
    valid = {key: [] for key in ("md", *settings)}
    breaks = []
    for name in NAMES:
        atom14, aatype = _fixture(name)
        decoded = {"md": atom14} | {key: _decode_md(atom14, aatype, s) for key, s in settings.items()}
        for key, frames in decoded.items():
            failures = _failures(frames.float().numpy(), aatype.numpy())
            valid[key].append(~(failures["ca_break"] | failures["cn_break"] | failures["clash"]))
            if key.startswith("chain"):
                breaks.append(failures["ca_break"] | failures["cn_break"])
    rate = {key: np.concatenate(flags).mean() for key, flags in valid.items()}
    assert not np.concatenate(breaks).any()
    assert rate["md"] > 0.8, rate  # the control: the fixtures' MD itself is mostly valid
    assert rate["chain"] >= rate["frames"] - 0.05, rate
    assert rate["chain+declash"] >= max(rate["md"], 0.98), rate


def test_clash_removal_changes_only_clashing_frames_and_only_a_little():
    atom14, aatype = _fixture("RTVD")
    features = tokens.frame_features(atom14.float(), aatype)
    built = buildable_torsions(features.torsions, aatype)
    removal = remove_clashes(built, aatype)
    assert removal.clashing_before > 0 and removal.clashing_after == 0
    changed = (removal.torsions != built).flatten(1).any(-1)
    assert int(changed.sum()) <= removal.clashing_before  # frames without a (near) clash untouched
    turn = torch.rad2deg(
        torch.atan2(removal.torsions[..., 0], removal.torsions[..., 1])
        - torch.atan2(built[..., 0], built[..., 1])
    )
    turn = (torch.remainder(turn + 180.0, 360.0) - 180.0).abs()
    assert turn.mean() < 1.0 and turn.max() < 60.0  # measured on data/demo: mean 0.3°, p99 8°
    still = _failures(chain_atom14(removal.torsions, aatype).numpy(), aatype.numpy())["clash"]
    assert not still.any()


@pytest.mark.parametrize("sequence", ["FLRH", "GPWY", "KMEQ"])  # 4 χ (R, K), a ring (P, W, Y), no χ (G)
def test_torsion_gradient_of_clash_removal_equals_autograd_through_the_chain_builder(sequence):
    """The analytic torsion-space gradient (atom forces turned into torques about each torsion's axis)
    must equal back-propagation through `chain_atom14` for every torsion clash removal moves (φ, ψ, χ).
    A wrong moving-atom set (e.g. φ(i) not turning residue i's side chain, or χ2 turning χ1's atoms),
    a wrong axis atom or a sign flip changes whole columns of it."""
    torch.manual_seed(0)
    aatype = torch.as_tensor(rc.aatype_from_sequence(sequence))
    angles = (torch.rand(12, len(sequence), 7, dtype=torch.float64) * 2 - 1) * math.pi
    angles[..., 0] = math.pi  # ω trans
    pairs = steric_pairs(aatype.numpy())
    target = pairs.min_distance_A.double() + 1.0  # a generous limit: many pairs short in every frame
    delta = torch.zeros_like(angles, requires_grad=True)
    moved = angles + delta
    atoms = chain_atom14(torch.stack([moved.sin(), moved.cos()], dim=-1), aatype)
    shortfall = torch.relu(target - _pair_distances(atoms, pairs))
    (expected,) = torch.autograd.grad((shortfall**2).sum(), delta)
    got = torsion_gradient(atoms.detach(), shortfall.detach(), pairs, aatype.tolist())
    free = torch.zeros(len(sequence), 7, dtype=torch.bool)
    free[1:, 1], free[:, 2] = True, True
    free[:, 3:] = torch.as_tensor(rc.CHI_ANGLES_MASK)[aatype].bool()
    assert expected[..., free].abs().amax() > 10.0  # the check is not vacuous
    # float32 residue tables put the side-chain axes ~1e-7 off the builder's frame axes
    torch.testing.assert_close(got[..., free], expected[..., free], rtol=1e-6, atol=1e-4)
    assert (got[..., 0] == 0).all()  # ω is never moved
