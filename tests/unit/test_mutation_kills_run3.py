"""Tests for mutants that survived run 3 of `make mutate` (experiments/tests/run3_survivors.md).

Each test names the realistic bug it catches; expected values are derived by hand (closed forms,
residue chemistry) or by numpy, not taken from the code under test.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from eval_peptide import STATE_TORSIONS, markov_chain, peptide_frame, peptide_trajectory
from mdgen import constants as rc
from mdgen import geometry as g
from mdgen import tokens
from mdgen.analysis.loading import EvaluationInputError, TrajectoryGroup
from mdgen.analysis.msm import StateModelSettings
from mdgen.evaluation import forward
from mdgen.evaluation.baselines import hold_coarse_frames, interpolate_coarse_frames, set_backbone_torsions
from mdgen.evaluation.decorrelation import (
    DecorrelationCurves,
    RelaxationTime,
    adjusted_autocovariance,
    decorrelation_curves,
    dynamical_content,
    log_relaxation_correlation,
    log_spaced_lags,
    relaxation_time,
)
from mdgen.evaluation.upsampling import UpsamplingSettings, evaluate_upsampling, score_upsampling
from mdgen.interpolant.dirichlet import DirichletFlow
from mdgen.tasks import TaskSpec
from mdgen.timesteps import TimeStepError
from mdgen.trajectory_files import read_trajectory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trajectories"


def _task(**fields) -> TaskSpec:
    spec = dict(name="fwd", num_frames=11, frame_interval_ps=1.0, cond_frames=(0,))
    return TaskSpec(**{**spec, **fields})


# ---- tokens ------------------------------------------------------------------------------------------


def test_wrong_token_width_message_names_the_channel_count_and_both_widths():
    """Catches the count taken from dim 1 instead of the channel dim, and a wrong expected width
    (21 = 7 + 14 for one key frame, 28 = 2 * 7 + 14 for two)."""
    with pytest.raises(ValueError, match=re.escape("tokens have 25 channels; expected 21 or 28")):
        tokens.num_key_frames_of(torch.zeros(2, 3, 25))


def test_key_frame_minus_num_frames_is_frame_zero():
    """Catches `-T < k` instead of `-T <= k`: index -T is frame 0 in Python and must be accepted."""
    generator = torch.Generator().manual_seed(0)
    rots = g.quaternion_to_rotation(torch.randn(3, 2, 4, generator=generator))  # (T=3, L=2, 3, 3)
    trans = torch.randn(3, 2, 3, generator=generator)
    torsions = torch.zeros(3, 2, 7, 2)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    assert torch.equal(
        tokens.tokens_from_features(rots, trans, torsions, mask, key_frames=(-3,)),
        tokens.tokens_from_features(rots, trans, torsions, mask, key_frames=(0,)),
    )


def test_a_masked_all_zero_torsion_pair_decodes_to_zero_not_nan():
    """Catches `- eps` for `+ eps` in the (sin, cos) normalisation: sqrt(0 - eps) is NaN."""
    token = torch.zeros(1, 1, tokens.token_width(1))
    token[..., 0] = 1.0  # identity quaternion
    token[..., 7:9] = torch.tensor([0.6, 0.8])  # omega present, already unit
    _, _, torsions = tokens.features_from_tokens(token, torch.eye(3)[None], torch.zeros(1, 3))
    assert torch.equal(torsions[0, 0, 1:], torch.zeros(6, 2))  # masked pairs stay exactly zero
    assert torch.allclose(torsions[0, 0, 0], torch.tensor([0.6, 0.8]))


def _peptide_bond_lengths(atom14: torch.Tensor) -> torch.Tensor:
    """(..., L, 14, 3) Å -> (..., L-1) C(i)-N(i+1) distances."""
    return (atom14[..., 1:, 0, :] - atom14[..., :-1, 2, :]).norm(dim=-1)


def test_chain_decoder_closes_a_peptide_bond_that_the_frames_decoder_leaves_broken():
    """Catches `decoder="chain"` not reaching chain_frames_on_frames (comparison to another string, or
    its arguments dropped / aatype unsqueezed on the wrong dim): residue 2 of frame 1 is moved 1.5 Å,
    which breaks C(1)-N(2) when each residue sits on its own frame; the chain decoder rebuilds an
    ideal chain, every C-N bond 1.33-1.35 Å (Engh & Huber 1.329 Å; the MD mean 1.342 Å)."""
    traj = read_trajectory(FIXTURES / "FLRH.pdb", FIXTURES / "FLRH.xtc")
    atom14 = torch.from_numpy(traj.atom14[:2]).float()  # (2, 4, 14, 3) Å
    aatype = torch.from_numpy(traj.aatype).long()  # (4,)
    encoded = tokens.encode(atom14, aatype)
    encoded[1, 2, 4:7] += torch.tensor([1.5, 0.0, 0.0])  # offset translation of residue 2, frame 1
    frames = tokens.decode(encoded, atom14[0], aatype, decoder="frames")
    chain = tokens.decode(encoded, atom14[0], aatype, decoder="chain")
    assert (_peptide_bond_lengths(frames[1]) - 1.34).abs().max() > 0.3  # control: broken without chain
    assert (_peptide_bond_lengths(chain) - 1.34).abs().max() < 0.015


# ---- tasks -------------------------------------------------------------------------------------------


def test_a_string_where_a_list_of_indices_belongs_names_the_field():
    """Catches the refusal of cond_frames="0,1" losing its text or naming another field."""
    with pytest.raises(TypeError, match=re.escape("TaskSpec.cond_frames must be a list of integers")):
        _task(cond_frames="0,1")


def test_numbers_given_as_text_by_a_config_are_converted():
    """Catches a dropped int()/float() conversion (a quoted YAML value stays a str, and the range
    checks then fail with a TypeError instead of building the task)."""
    task = _task(num_frames="11", frame_interval_ps="0.5", cond_interval="5", translation_scale_A="10")
    assert (task.num_frames, task.frame_interval_ps, task.cond_interval, task.translation_scale_A) == (
        11,
        0.5,
        5,
        10.0,
    )
    assert type(task.num_frames) is int and type(task.cond_interval) is int
    assert type(task.frame_interval_ps) is float and type(task.translation_scale_A) is float


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(num_frames=1), "task 'fwd': num_frames must be >= 2, got 1"),
        (dict(frame_interval_ps=0.0), "task 'fwd': frame_interval_ps must be > 0, got 0.0"),
        (dict(key_frames=()), "task 'fwd': key_frames must name at least one frame"),
        (
            dict(cond_residues=(0, 1), design_residues=(1, 2), design=True),
            "task 'fwd': residues [1] are both conditioned and designed",
        ),
    ],
)
def test_invalid_task_configs_are_refused_naming_the_task_and_the_field(fields, message):
    """Catches the frame_interval_ps check at < 0 (0 ps accepted), a dropped overlap check between
    conditioned and designed residues, and refusals without their text or without the task name."""
    with pytest.raises(ValueError, match=re.escape(message)):
        _task(**fields)


def test_smallest_valid_window_and_conditioning_interval_are_accepted():
    """Catches `num_frames <= 2` / `< 3` and `cond_interval >= 2` / `> 1` (both bounds are inclusive)."""
    assert _task(num_frames=2).num_frames == 2
    task = _task(cond_frames=(), cond_interval=1)  # every frame given
    assert task.frame_cond_mask(11).all()


@pytest.mark.parametrize(
    ("task", "call", "message"),
    [
        (
            _task(key_frames=(0, 12)),
            "key_frame_indices",
            "task 'fwd': frame index 12 is out of range for a window of 11 frames",
        ),
        (
            _task(cond_frames=(0, -12)),
            "frame_cond_mask",
            "task 'fwd': frame index -12 is out of range for a window of 11 frames",
        ),
        (
            _task(design_residues=(1, 4), design=True),
            "design_residue_mask",
            "task 'fwd': residue index 4 is out of range for a window of 4 residues",
        ),
    ],
)
def test_out_of_range_indices_name_the_task_the_index_kind_and_the_window(task, call, message):
    """Catches a range refusal that names no task or calls a frame index a residue index (or None)."""
    size = 4 if "residue" in call else 11
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(task, call)(size)


def test_key_frame_indices_are_non_negative_and_a_repeated_frame_is_refused():
    """Catches key frames returned without adding the window length to negative ones: (0, -1) must
    give [0, 10], and (10, -1) names frame 10 twice."""
    assert _task(key_frames=(0, -1), cond_frames=(0, -1)).key_frame_indices(11) == [0, 10]
    with pytest.raises(ValueError, match=re.escape("task 'fwd': key_frames [10, -1] repeat a frame")):
        _task(key_frames=(10, -1)).key_frame_indices(11)


@pytest.mark.parametrize(("scale", "expected"), [(4.0, [1.0, 2.0, 3.0]), (0.5, [8.0, 16.0, 24.0])])
def test_tokens_in_model_units_divide_translations_by_the_scale(scale, expected):
    """Catches 2/scale for 1/scale (test_tasks compares two outputs of the same wrong code) and the
    early return at factor 2 instead of 1: translations (4, 8, 12) Å / scale, other channels kept."""
    token = torch.arange(1.0, 22.0)
    token[4:7] = torch.tensor([4.0, 8.0, 12.0])
    scaled = _task(translation_scale_A=scale).tokens_in_model_units(token)
    assert scaled[4:7].tolist() == expected
    assert torch.equal(scaled[:4], token[:4]) and torch.equal(scaled[7:], token[7:])


def test_float64_tokens_are_scaled_in_float64():
    """Catches the scale vector built in the default float32: 1/3 in float32 is off by 1e-8."""
    token = torch.zeros(21, dtype=torch.float64)
    token[4:7] = 1.0
    scaled = _task(translation_scale_A=3.0).tokens_in_model_units(token)
    assert scaled.dtype == torch.float64
    assert scaled[4].item() == 1.0 / 3.0


def test_build_inputs_pass_the_padding_mask_and_residue_index_to_the_network():
    """Catches TaskInputs built with residue_mask=None / residue_index=None (the network would attend
    to padding and lose chain positions)."""
    generator = torch.Generator().manual_seed(0)
    rots = g.quaternion_to_rotation(torch.randn(1, 3, 2, 4, generator=generator))
    batch = {
        "rots": rots,
        "trans": torch.randn(1, 3, 2, 3, generator=generator),
        "torsions": torch.zeros(1, 3, 2, 7, 2),
        "torsion_mask": torch.zeros(1, 2, 7),
        "aatype": torch.tensor([[0, 5]]),
        "residue_mask": torch.tensor([[1.0, 0.0]]),  # residue 1 is padding
        "residue_index": torch.tensor([[7, 8]], dtype=torch.int32),
    }
    kwargs = _task(num_frames=3).build_inputs(batch).network_kwargs()
    assert kwargs["residue_mask"].tolist() == [[1.0, 0.0]]
    assert kwargs["residue_index"].tolist() == [[7, 8]] and kwargs["residue_index"].dtype == torch.int64


# ---- geometry ----------------------------------------------------------------------------------------


def test_a_missing_side_chain_atom_masks_only_the_chi_angles_that_use_it():
    """Catches the all() over the chi axis instead of the atom axis of the (L, 4 chi, 4 atom) gather.
    Lys without CE loses chi3 (CB-CG-CD-CE) and chi4 (CG-CD-CE-NZ), keeps chi1 (N-CA-CB-CG) and chi2
    (CA-CB-CG-CD); Ile without CD1 loses chi2 (CA-CB-CG1-CD1), keeps chi1 (N-CA-CB-CG1). (Lys alone
    cannot tell the axes apart: its chi atoms are a sliding window, so the 4 x 4 table is symmetric.)"""
    aatype = torch.tensor(rc.aatype_from_sequence("AKIA"))
    atom14_mask = torch.from_numpy(rc.ATOM14_MASK[aatype.numpy()]).clone().bool()  # (4, 14)
    atom14_mask[1, rc.ATOM14_NAMES["LYS"].index("CE")] = False
    atom14_mask[2, rc.ATOM14_NAMES["ILE"].index("CD1")] = False
    atom14 = torch.randn(4, 14, 3, generator=torch.Generator().manual_seed(0))
    mask = g.torsion_angles(atom14, aatype, atom14_mask=atom14_mask)[1]  # (4, 7)
    assert mask[1, 3:].tolist() == [True, True, False, False]
    assert mask[2, 3:].tolist() == [True, False, False, False]


def test_a_zero_quaternion_gives_a_finite_rotation():
    """Catches `- eps` for `+ eps` in the normalisation: a zero quaternion would give NaN; with + eps
    it stays zero and the closed form gives the identity."""
    assert torch.equal(g.quaternion_to_rotation(torch.zeros(2, 4)), torch.eye(3).expand(2, 3, 3))


# ---- interpolant -------------------------------------------------------------------------------------


def test_dirichlet_probabilities_divide_logits_by_the_temperature_over_the_class_axis():
    """Catches logits * T for logits / T and a softmax over another axis; checked against numpy."""
    logits = torch.randn(2, 3, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    probs = DirichletFlow(temperature=2.0).probs_from_logits(logits).numpy()
    scaled = logits.numpy() / 2.0
    expected = np.exp(scaled) / np.exp(scaled).sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-12)


# ---- evaluation --------------------------------------------------------------------------------------


def test_mean_of_no_torsions_is_nan():
    """Catches a crash (float(None) / float("XXnanXX")) when a peptide has no side-chain torsions,
    whose mean JSD the forward table reports as NaN."""
    assert math.isnan(forward._mean([]))
    assert forward._mean([0.25, 0.5]) == 0.375


def test_dynamical_content_is_placed_at_the_geometric_mean_of_consecutive_lags():
    """Catches 10 * x or 11 ** x for 10 ** x: the midpoints of lags 1, 10, 100 ps in log10 are
    10^0.5 and 10^1.5 ps; D = -(C(10) - C(1)) / 1 per decade."""
    lags = np.array([0.0, 1.0, 10.0, 100.0])
    curves = DecorrelationCurves(lags, np.array([[1.0], [0.9], [0.5], [0.1]]))
    midpoints, content = dynamical_content(curves, np.array([1.0, 10.0, 100.0]))
    np.testing.assert_allclose(midpoints, [10**0.5, 10**1.5], rtol=1e-12)
    np.testing.assert_allclose(content[:, 0], [0.4, 0.4], rtol=1e-12)


def _relax(time_ps: float, status: str = "measured") -> RelaxationTime:
    return RelaxationTime(time_ps if status == "measured" else float("nan"), status, 100.0)


def test_relaxation_correlation_pairs_only_torsions_measured_in_both_and_needs_three():
    """Catches `or` for `and` (a torsion measured in one set only joins with a NaN partner) and a
    minimum of 4 pairs instead of 3: three measured pairs, sample = 3 x reference, give r = 1."""
    reference = [_relax(2.0), _relax(5.0), _relax(10.0), _relax(20.0)]
    sample = [_relax(6.0), _relax(15.0), _relax(30.0), _relax(0.0, "censored")]
    r, n = log_relaxation_correlation(reference, sample)
    assert n == 3 and r == pytest.approx(1.0)


def test_relaxation_correlation_of_equal_reference_times_is_nan_and_lengths_must_match():
    """Catches a crash instead of NaN when every reference time is the same (no spread to correlate),
    and torsion lists of different lengths silently truncated by zip instead of refused."""
    r, n = log_relaxation_correlation([_relax(5.0)] * 3, [_relax(1.0), _relax(2.0), _relax(3.0)])
    assert math.isnan(r) and n == 3
    with pytest.raises(ValueError):
        log_relaxation_correlation([_relax(5.0)] * 3, [_relax(5.0)] * 4)


def _group(n_frames: int, timestep_ps: float, source: str) -> TrajectoryGroup:
    """One trajectory of a single atom, n_frames frames spaced timestep_ps (time stamps in ps)."""
    topology = md.Topology()
    topology.add_atom("CA", md.element.carbon, topology.add_residue("ALA", topology.add_chain()))
    traj = md.Trajectory(np.zeros((n_frames, 1, 3)), topology, time=np.arange(n_frames) * timestep_ps)
    return TrajectoryGroup.from_trajectories([traj], source)


def test_md_rows_as_long_as_the_replica_are_kept_and_as_long_as_the_reference_omitted():
    """Catches the omission bounds moved by a frame: with a 50 ps replica (1 ps frames) a 50 ps row is
    kept and a 51 ps row omitted; without one, a row as long as the 60 ps reference is omitted (it would
    be the reference itself) and a 59 ps row kept."""
    reference, replica = _group(60, 1.0, "ref"), _group(50, 1.0, "replica")
    rows, omitted = forward.md_truncations(reference, replica, (50.0, 51.0))
    assert set(rows) == {"MD 50 ps"} and set(omitted) == {"MD 51 ps"}
    assert rows["MD 50 ps"].n_frames == 50
    rows, omitted = forward.md_truncations(reference, None, (59.0, 60.0))
    assert set(rows) == {"MD 59 ps"} and set(omitted) == {"MD 60 ps"}


@pytest.fixture
def forward_analysis(tmp_path):
    """One small forward evaluation (about 0.5 s): AKIR moving between three backbone states, reference
    300 frames x 10 ps, two 100-frame rollouts, a 100-frame replica supplying the MD 500 ps row.

    Function scope on purpose: mutmut maps a mutated function only to the test during which it first
    ran, so a module-scoped fixture would hide the second test from the mutants it kills."""
    frame = peptide_frame(tmp_path)
    chain = np.array([[0.9, 0.08, 0.02], [0.1, 0.85, 0.05], [0.05, 0.05, 0.9]])
    rng = np.random.default_rng(5)

    def group(n_frames: int, source: str, start: int = 0, count: int = 1) -> TrajectoryGroup:
        trajs = [peptide_trajectory(frame, markov_chain(chain, n_frames, rng, start=start), rng)]
        trajs += [
            peptide_trajectory(frame, markov_chain(chain, n_frames, rng), rng) for _ in range(count - 1)
        ]
        return TrajectoryGroup.from_trajectories(trajs, source)

    settings = forward.ForwardSettings(
        decorrelation_max_lag_ps=50.0,
        md_truncations_ps=(500.0,),
        state_model=StateModelSettings(tica_lag_ps=20.0, msm_lag_ps=20.0, n_clusters=10, n_metastable=3),
    )
    samples = group(100, "rollouts", start=2, count=2)
    return forward.evaluate_forward("AKIR", samples, group(300, "reference"), group(100, "replica"), settings)


def test_forward_result_describes_its_reference_and_notes_only_what_happened(forward_analysis):
    """Catches result fields left None (name, reference source / length / spacing, TICA dimension,
    reference validity and relaxation times), the 'MD rows are prefixes' note added although a replica
    supplied them, and the 'decorrelation limited' note added although the reference (1500 ps of lags
    available) reaches the requested 50 ps."""
    result = forward_analysis.result
    assert (result.name, result.reference_source) == ("AKIR", "reference")
    assert (result.reference_duration_ps, result.reference_timestep_ps) == (3000.0, 10.0)
    assert result.n_clusters == 10 and isinstance(result.n_tica_components, int)
    assert 1 <= result.n_tica_components <= forward_analysis.reference.tica.shape[1]
    assert 0.0 <= result.reference_validity.valid_fraction <= 1.0
    assert set(result.reference_relaxation_times) == set(result.rows[forward.GENERATED].relaxation_times)
    assert result.notes == tuple(forward_analysis.reference.state_model.notes)
    assert result.rows[forward.TRIVIAL_BASELINE].source == "rollouts frame 0 repeated"
    assert sum(result.reference_populations) == pytest.approx(1.0)


def test_forward_rows_hold_normalised_populations_and_per_residue_pair_scores(forward_analysis):
    """Catches populations multiplied instead of divided by their sum (or dropped), the side-chain mean
    taken over backbone torsions or left None/NaN, the per-residue (phi, psi) JSDs, the validity or the
    number of relaxation pairs left None, and the arrays for the plots dropped.
    Residues 2 and 3 (Lys, Ile) are the ones with both phi and psi."""
    for row, scores in forward_analysis.result.rows.items():
        assert sum(scores.state_populations) == pytest.approx(1.0), row
        assert scores.torsion_jsd_sidechain == 0.0, row  # side chains are rigid in every group
        assert 0.0 <= scores.validity.valid_fraction <= 1.0, row
        assert min(scores.state_populations) >= 0.0, row
        assert len(scores.torsion_pair_jsd) == 2, row
        assert np.mean(list(scores.torsion_pair_jsd.values())) == pytest.approx(scores.torsion_pair_jsd_mean)
        assert isinstance(scores.relaxation_pairs, int) and 0 <= scores.relaxation_pairs <= len(
            scores.relaxation_times
        ), row
    for row, analysis in forward_analysis.candidates.items():
        n_frames = analysis.scores.n_frames
        assert analysis.angles.shape[0] == n_frames and analysis.tica.shape[0] == n_frames, row
        assert analysis.decorrelation.lags_ps[0] == 0.0, row


def test_relaxation_correlation_is_the_off_diagonal_pearson_r():
    """Catches the diagonal [1, 1] of the correlation matrix (always 1) returned instead of [0, 1]:
    times 1, 10, 100 ps against 100, 10, 1 ps are perfectly anti-correlated in log10 (r = -1)."""
    r, n = log_relaxation_correlation(
        [_relax(1.0), _relax(10.0), _relax(100.0)], [_relax(100.0), _relax(10.0), _relax(1.0)]
    )
    assert n == 3 and r == pytest.approx(-1.0)


def test_relaxation_time_keeps_the_longest_lag_and_nan_for_every_status():
    """Catches max_lag_ps or the NaN time of a censored torsion left None (the report writes both):
    C = exp(-t / 10 ps) crosses 1/e at 10 ps; C = 1 never does; an all-NaN curve is a static torsion."""
    lags = np.arange(41) * 1.0  # 0..40 ps
    measured = relaxation_time(np.exp(-lags / 10.0), lags)
    censored = relaxation_time(np.ones(41), lags)
    static = relaxation_time(np.full(41, np.nan), lags)
    assert (measured.status, censored.status, static.status) == ("measured", "censored", "static")
    assert measured.time_ps == pytest.approx(10.0, abs=0.1)  # linear interpolation between 10 and 11 ps
    assert math.isnan(censored.time_ps) and math.isnan(static.time_ps)
    assert measured.max_lag_ps == censored.max_lag_ps == static.max_lag_ps == 40.0


def test_forward_notes_say_when_md_rows_are_reference_prefixes_and_how_far_decorrelation_reached(tmp_path):
    """Catches the report notes' texts and numbers: without a replica the MD rows are prefixes of the
    reference; a 100-frame x 10 ps reference gives decorrelation lags up to half its length, 500 ps,
    short of the 2000 ps asked for (the note must name 500, not the first or second-to-last lag)."""
    frame = peptide_frame(tmp_path)
    chain = np.array([[0.9, 0.08, 0.02], [0.1, 0.85, 0.05], [0.05, 0.05, 0.9]])
    rng = np.random.default_rng(6)

    def group(n_frames: int, source: str) -> TrajectoryGroup:
        trajectory = peptide_trajectory(frame, markov_chain(chain, n_frames, rng), rng)
        return TrajectoryGroup.from_trajectories([trajectory], source)

    settings = forward.ForwardSettings(
        decorrelation_max_lag_ps=2000.0,
        md_truncations_ps=(200.0,),
        state_model=StateModelSettings(tica_lag_ps=20.0, msm_lag_ps=20.0, n_clusters=5, n_metastable=2),
    )
    result = forward.evaluate_forward(
        "AKIR", group(50, "rollout"), group(100, "reference"), None, settings
    ).result
    assert set(result.rows) == {forward.GENERATED, forward.TRIVIAL_BASELINE, "MD 200 ps"}
    assert (
        "MD rows are prefixes of the reference itself (optimistic); pass replica_dir= for independent MD"
        in (result.notes)
    )
    assert "reference decorrelation limited to 500 ps (half its length) instead of 2000 ps" in result.notes


def _one_moving_torsion(frame, n_frames: int, jumps: bool, rng: np.random.Generator) -> TrajectoryGroup:
    """AKIR with only phi(2) moving, 10 ps frames: jumping between exactly -70 and 60 deg (its cos/sin
    lie on one line: one TICA component), or a random walk (cos/sin fill an arc: two components)."""
    angles = np.repeat(STATE_TORSIONS[:1], n_frames, axis=0)
    if jumps:
        states = np.cumsum(rng.random(n_frames) < 0.1) % 2
        angles[:, 1] = np.where(states == 0, np.radians(-70.0), np.radians(60.0))
    else:
        angles[:, 1] = np.radians(-70.0) + np.cumsum(rng.standard_normal(n_frames)) * 0.1
    moved = set_backbone_torsions(
        md.Trajectory(np.repeat(frame.xyz[:1], n_frames, axis=0), frame.topology), angles
    )
    moved.time = np.arange(1, n_frames + 1) * 10.0
    return TrajectoryGroup.from_trajectories([moved], "one torsion")


@pytest.mark.parametrize(("jumps", "components"), [(True, 1), (False, 2)])
def test_tica01_jsd_needs_two_tica_components_and_is_nan_with_one(tmp_path, jumps, components):
    """Catches the TICA-0,1 JSD computed with a single component (or a crash building its NaN), and the
    two-component threshold moved to three (NaN although there are exactly two components)."""
    frame, rng = peptide_frame(tmp_path), np.random.default_rng(0)
    settings = forward.ForwardSettings(
        decorrelation_max_lag_ps=50.0,
        md_truncations_ps=(),
        state_model=StateModelSettings(tica_lag_ps=20.0, msm_lag_ps=20.0, n_clusters=5, n_metastable=2),
    )
    samples, reference = (
        _one_moving_torsion(frame, 100, jumps, rng),
        _one_moving_torsion(frame, 300, jumps, rng),
    )
    analysis = forward.evaluate_forward("AKIR", samples, reference, None, settings)
    assert analysis.reference.tica.shape[1] == components
    tica01 = analysis.result.rows[forward.GENERATED].tica01_jsd
    assert math.isnan(tica01) if components == 1 else 0.0 <= tica01 <= 1.0


def test_log_spaced_lags_keep_the_count_and_the_one_frame_lag():
    """Catches the count dropped (numpy's default 50 points) and lags of one frame excluded: 3 lags
    from 1 to 100 ps at 1 ps frames are 1, 10 and 100 ps."""
    assert log_spaced_lags(1.0, 100.0, 1.0, 3).tolist() == [1.0, 10.0, 100.0]


def test_coarse_frame_baselines_keep_the_topology():
    """Catches held / interpolated baseline trajectories built without a topology."""
    coarse = _group(3, 10.0, "coarse").trajectories[0]
    assert hold_coarse_frames(coarse, 2, 5.0).topology == coarse.topology
    assert interpolate_coarse_frames(coarse, 2, 5.0).topology == coarse.topology


def _curves(*columns: list[float]) -> DecorrelationCurves:
    """C(tau) at 0, 1, 10 ps (one column per torsion), linearly interpolated on the 1 ps grid 0..10 ps."""
    lags = np.arange(11.0)
    knots = np.array([0.0, 1.0, 10.0])
    return DecorrelationCurves(lags, np.stack([np.interp(lags, knots, c) for c in columns], axis=1))


def test_upsampling_scores_ratio_of_drops_between_fine_and_coarse_lags():
    """R = candidate drop / reference drop of C between 1 ps and 10 ps, for torsions whose reference
    drop reaches min_reference_drop (0.25, inclusive). Torsion a: 0.25 / 0.5 = 0.5; b: drop exactly
    0.25, R = 1; c: reference drop 0.125, not scored (NaN). Catches `|` for `&`, `>` for `>=`, the
    median always NaN, and the per-torsion / median fields left None."""
    reference = _curves([1.0, 1.0, 0.5], [1.0, 1.0, 0.75], [1.0, 1.0, 0.875])
    candidate = _curves([1.0, 1.0, 0.75], [1.0, 1.0, 0.75], [1.0, 1.0, 0.5])
    settings = UpsamplingSettings(coarse_interval_ps=10.0, n_log_lags=3, min_reference_drop=0.25)
    scores = score_upsampling(reference, candidate, ("a", "b", "c"), 1.0, 10.0, settings)
    per_torsion = scores.recovered_fraction_per_torsion
    assert (per_torsion["a"], per_torsion["b"]) == (0.5, 1.0) and math.isnan(per_torsion["c"])
    assert (scores.recovered_fraction, scores.recovered_fraction_median) == (0.75, 0.75)
    assert (scores.n_torsions_scored, scores.n_torsions_excluded) == (2, 1)


def test_upsampling_scores_without_a_scored_torsion_or_a_finite_curve_are_nan():
    """Catches float(None) / float("XXnanXX") where nothing can be scored: no reference drop reaches
    0.9, and static torsions (all-NaN curves) leave no finite curve difference."""
    settings = UpsamplingSettings(coarse_interval_ps=10.0, n_log_lags=3, min_reference_drop=0.9)
    curves = _curves([1.0, 1.0, 0.5])
    scores = score_upsampling(curves, curves, ("a",), 1.0, 10.0, settings)
    assert math.isnan(scores.recovered_fraction) and math.isnan(scores.recovered_fraction_median)
    static = _curves([np.nan, np.nan, np.nan])
    assert math.isnan(score_upsampling(static, static, ("a",), 1.0, 10.0, settings).curve_mean_abs_difference)


def test_a_coarse_interval_off_the_frame_grid_names_the_option_and_the_file():
    """Catches the refusal naming no option (None / upper case / XX) or no source: 15 ps is not a whole
    number of the reference's 10 ps frames, nor 20 ps of the samples' 3 ps frames."""
    reference, samples = _group(20, 10.0, "ref.xtc"), _group(20, 5.0, "samples.xtc")
    with pytest.raises(TimeStepError, match=re.escape("ref.xtc: coarse_interval_ps=15.0 ps is not a whole")):
        evaluate_upsampling("AKIR", samples, reference, UpsamplingSettings(coarse_interval_ps=15.0))
    samples = _group(20, 3.0, "samples.xtc")
    with pytest.raises(
        TimeStepError, match=re.escape("samples.xtc: coarse_interval_ps=20.0 ps is not a whole")
    ):
        evaluate_upsampling("AKIR", samples, reference, UpsamplingSettings(coarse_interval_ps=20.0))


@pytest.mark.parametrize("samples_step_ps", [2.0, 1.0])
def test_upsampling_result_describes_its_windows_and_notes_a_different_sample_timestep(
    tmp_path, samples_step_ps
):
    """Catches result fields left None (name, fine timestep, coarse interval, reference length, notes,
    the reference curves for the plots) and the timestep note written when the steps agree (or written
    without text when they differ): reference 200 frames x 2 ps, coarse input every 10 ps."""
    frame, rng = peptide_frame(tmp_path), np.random.default_rng(1)
    chain = np.array([[0.9, 0.08, 0.02], [0.1, 0.85, 0.05], [0.05, 0.05, 0.9]])

    def group(n_frames: int, step_ps: float, source: str) -> TrajectoryGroup:
        traj = peptide_trajectory(frame, markov_chain(chain, n_frames, rng), rng, timestep_ps=step_ps)
        return TrajectoryGroup.from_trajectories([traj], source)

    settings = UpsamplingSettings(coarse_interval_ps=10.0, curve_max_lag_ps=20.0, n_log_lags=4)
    analysis = evaluate_upsampling(
        "AKIR", group(100, samples_step_ps, "up"), group(200, 2.0, "ref"), settings
    )
    result = analysis.result
    assert (result.name, result.fine_timestep_ps, result.coarse_interval_ps) == ("AKIR", 2.0, 10.0)
    assert result.reference_duration_ps == 400.0
    assert analysis.reference.lags_ps[0] == 0.0 and analysis.reference.lags_ps[1] == 2.0
    expected = (
        () if samples_step_ps == 2.0 else ("upsampled timestep 1 ps differs from the reference's 2 ps",)
    )
    assert result.notes == expected


def test_decorrelation_curves_reach_the_requested_lag_or_half_the_longest_trajectory():
    """Catches the lag count off by one or more (floor(x - 1e-9) / + 1.000000001 at an exact 50 ps,
    a third instead of half the length, a lag axis one shorter or longer than the curves), a single
    lag refused, and the refusal of a 1-frame trajectory without its text."""
    rng = np.random.default_rng(0)
    long = decorrelation_curves([rng.uniform(-3, 3, (100, 2))], 10.0, 50.0)  # 50 ps = 5 frames exactly
    assert long.lags_ps.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0] and long.curves.shape == (6, 2)
    short = decorrelation_curves([rng.uniform(-3, 3, (8, 2))], 10.0, 1000.0)  # half of 8 frames
    assert short.lags_ps.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0] and short.curves.shape == (5, 2)
    assert decorrelation_curves([rng.uniform(-3, 3, (2, 1))], 10.0, 1000.0).lags_ps.tolist() == [0.0, 10.0]
    with pytest.raises(EvaluationInputError, match="trajectories of 1 frames are too short"):
        decorrelation_curves([rng.uniform(-3, 3, (1, 1))], 10.0, 1000.0)


def test_autocovariance_at_a_lag_with_a_single_pair_is_that_product():
    """Catches lags with exactly one pair of frames treated as unreached (NaN): x = (1, 2, 3) has
    C(2) = x0 * x2 / 1 = 3 (statsmodels acovf, demean=False, adjusted=True)."""
    np.testing.assert_allclose(
        adjusted_autocovariance([np.array([[1.0], [2.0], [3.0]])], 2)[:, 0], [14 / 3, 4.0, 3.0]
    )


def test_dirichlet_simplex_points_have_one_channel_per_class_and_seeded_priors_repeat():
    """Catches one_hot without num_classes (width = largest class present + 1) and the uniform prior
    ignoring the generator (two equally seeded draws must agree)."""
    flow = DirichletFlow(num_classes=20)
    points = flow.sample_simplex(
        torch.tensor([[0, 3]]), torch.tensor([0.5]), generator=torch.Generator().manual_seed(0)
    )
    assert points.shape == (1, 2, 20)
    assert torch.allclose(points.sum(-1), torch.ones(1, 2))
    first = flow.sample_uniform((2, 3), generator=torch.Generator().manual_seed(7))
    second = flow.sample_uniform((2, 3), generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


def test_set_backbone_torsions_skips_nan_columns_and_keeps_time_stamps(tmp_path):
    """Catches a NaN column (proline phi) rotating by NaN or ending the loop (`break` for `continue`),
    and the time stamps dropped. AKIR columns: psi1, phi2, psi2, phi3, psi3, phi4; psi1 is left as it
    is (NaN), phi2 is set to -100 deg; mdtraj measures both."""
    frame = peptide_frame(tmp_path)
    traj = md.Trajectory(np.repeat(frame.xyz[:1], 2, axis=0), frame.topology, time=np.array([10.0, 20.0]))
    angles = np.full((2, 6), np.nan)
    angles[:, 1] = np.radians(-100.0)
    moved = set_backbone_torsions(traj, angles)
    psi_before, psi_after = md.compute_psi(traj)[1][:, 0], md.compute_psi(moved)[1][:, 0]
    np.testing.assert_allclose(psi_after, psi_before, atol=1e-4)
    np.testing.assert_allclose(md.compute_phi(moved)[1][:, 0], np.radians(-100.0), atol=1e-4)
    assert moved.time.tolist() == [10.0, 20.0]


def test_dirichlet_flow_defaults_and_the_alpha_max_bound():
    """Catches changed defaults (METHOD: alpha_max 8, so d_alpha = 7; softmax temperature 1) and the
    bound on alpha_max moved: 1 (a flow that never leaves the uniform prior) is refused with its
    reason, 1.5 is accepted."""
    flow = DirichletFlow()
    assert (flow.alpha_max, flow.d_alpha, flow.temperature) == (8.0, 7.0, 1.0)
    with pytest.raises(ValueError, match="alpha_max must exceed 1, got 1.0"):
        DirichletFlow(alpha_max=1.0)
    assert DirichletFlow(alpha_max=1.5).d_alpha == 0.5
