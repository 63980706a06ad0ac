"""Evaluation values pinned on fixed inputs, with expected values derived without the code under test.

- JS distances at the configured bin counts (100 per torsion, 50 x 50 per (phi, psi) pair, 100 and
  50 x 50 for TICA) against closed forms, and the histogram edges ([-pi, pi], both ends included);
- the TICA lag and the MSM lag set to DIFFERENT values, each checked against deeptime run directly
  with that lag (METHOD 7.7);
- which frame the trivial baseline repeats (frame 0 of the first sample trajectory);
- the naive upsampling baselines against their closed forms;
- a fixed-seed regression pin of the forward rows (labelled as such below).
"""

import math

import mdtraj as md
import numpy as np
import pytest
from deeptime.decomposition import TICA
from deeptime.markov import TransitionCountEstimator
from deeptime.markov.msm import MaximumLikelihoodMSM
from scipy.spatial.distance import jensenshannon

from eval_peptide import markov_chain, peptide_frame, peptide_trajectory
from mdgen.analysis.features import torsion_angles, torsion_definitions
from mdgen.analysis.loading import TrajectoryGroup
from mdgen.analysis.msm import StateModelSettings, fit_reference_state_model
from mdgen.evaluation import jsd
from mdgen.evaluation.baselines import hold_coarse_frames, interpolate_coarse_frames, repeat_first_frame
from mdgen.evaluation.decorrelation import decorrelation_curves
from mdgen.evaluation.forward import GENERATED, TRIVIAL_BASELINE, ForwardSettings, evaluate_forward
from mdgen.evaluation.upsampling import INTERPOLATED, UpsamplingSettings, evaluate_upsampling

CHAIN = np.array([[0.9, 0.08, 0.02], [0.1, 0.85, 0.05], [0.05, 0.05, 0.9]])
TIMESTEP_PS = 10.0
TICA_LAG_PS, MSM_LAG_PS = 20.0, 50.0  # 2 and 5 frames: deliberately different


def uniform_vs_one_bin(n_bins: int) -> float:
    """Closed form: JS distance (nats) between a histogram uniform over n bins and one with all mass in one.

    M = (P + Q) / 2 has 1/(2n) in n - 1 bins and (n + 1)/(2n) in the shared bin, so
    KL(P||M) = (n - 1)/n ln 2 + (1/n) ln(2/(n + 1)),  KL(Q||M) = ln(2n/(n + 1)).
    """
    kl_p = (n_bins - 1) / n_bins * math.log(2) + math.log(2 / (n_bins + 1)) / n_bins
    kl_q = math.log(2 * n_bins / (n_bins + 1))
    return math.sqrt(0.5 * (kl_p + kl_q))


# ---- JS distances: bin counts and edges --------------------------------------------------------------


def test_closed_form_helper_matches_scipy():
    p = np.ones(7)
    q = np.eye(7)[3]
    assert jensenshannon(p, q) == pytest.approx(uniform_vs_one_bin(7), abs=1e-12)


@pytest.mark.parametrize("bins", [100, 36])
def test_torsion_histogram_has_bins_equal_bins_on_minus_pi_to_pi(bins):
    """One angle at the centre of each of `bins` bins vs all at one centre: any other bin count, range or
    edge placement breaks the closed form (e.g. 101 bins, bins // 2, range [0, 2 pi])."""
    width = 2 * np.pi / bins
    centres = -np.pi + (np.arange(bins) + 0.5) * width
    assert jsd.angle_jsd(centres, np.full(50, centres[7]), bins) == pytest.approx(
        uniform_vs_one_bin(bins), abs=1e-12
    )


def test_torsion_bin_edges_split_neighbouring_angles_and_include_plus_and_minus_pi():
    """Angles a hair either side of an edge are in different bins; -pi and +pi are both counted (end bins)."""
    edge = -np.pi + 37 * (2 * np.pi / 100)
    left, right = np.full(10, edge - 1e-6), np.full(10, edge + 1e-6)
    assert jsd.angle_jsd(left, right, 100) == pytest.approx(jsd.MAX_JS_DISTANCE, abs=1e-12)
    assert jsd.angle_jsd(left, left - 1e-3, 100) == 0.0  # same bin (width 0.063 rad)
    # -pi falls in the first bin, +pi in the last (numpy includes the right edge): disjoint, not empty
    assert jsd.angle_jsd(np.full(5, -np.pi), np.full(5, np.pi), 100) == pytest.approx(jsd.MAX_JS_DISTANCE)
    assert jsd.angle_jsd(np.full(5, np.pi), np.full(5, np.pi - 1e-9), 100) == 0.0


def test_pair_histogram_is_a_joint_bins_by_bins_grid():
    """50 x 50 cells: one point per cell vs all in one cell; and (a, b) vs (b, a) share no cell although
    their marginals are the same (catches marginal histograms or a transposed axis)."""
    bins = 50
    centres = -np.pi + (np.arange(bins) + 0.5) * (2 * np.pi / bins)
    grid = np.stack(np.meshgrid(centres, centres, indexing="ij"), axis=-1).reshape(-1, 2)
    assert jsd.angle_pair_jsd(grid, np.tile(grid[123], (10, 1)), bins) == pytest.approx(
        uniform_vs_one_bin(bins * bins), abs=1e-12
    )
    a, b = centres[3], centres[40]
    assert jsd.angle_pair_jsd(np.array([[a, b]]), np.array([[b, a]]), bins) == pytest.approx(
        jsd.MAX_JS_DISTANCE
    )


@pytest.mark.parametrize("bins", [100, 50])
def test_joint_range_histogram_spans_min_to_max_of_both_samples(bins):
    """Values 0..bins-1 split over the two samples fill every bin of [min, max] once: uniform vs one bin.

    A range from one sample only, or a different bin count, breaks the closed form."""
    values = np.arange(bins, dtype=np.float64)[:, None] * 0.37 - 5.0
    assert jsd.joint_range_jsd(values, np.full((20, 1), values[0, 0]), bins) == pytest.approx(
        uniform_vs_one_bin(bins), abs=1e-12
    )
    grid = np.stack(np.meshgrid(values[:, 0], values[:, 0], indexing="ij"), axis=-1).reshape(-1, 2)
    if bins == 50:  # 2-D: bins x bins cells over the joint range of both columns
        assert jsd.joint_range_jsd(grid, np.tile(grid[:1], (3, 1)), bins) == pytest.approx(
            uniform_vs_one_bin(bins * bins), abs=1e-12
        )


def test_joint_range_bin_count_decides_which_values_share_a_bin():
    """Range [0, 1] (both samples hold 0 and 1); 0.4905 and 0.4995 share bin 49 of 100 but not of 99 or
    101 bins. Empty bins do not change a JS distance, so the closed forms above cannot see bins + 1."""
    reference = np.array([0.0, 1.0, 0.4905])[:, None]
    sample = np.array([0.0, 1.0, 0.4995])[:, None]
    assert jsd.joint_range_jsd(reference, sample, 100) == 0.0
    # split: P = (1/3, 1/3, 0, 1/3), Q = (1/3, 0, 1/3, 1/3), so JS = (1/3) ln 2 (two bins of 1/3 vs 1/6)
    for bins in (99, 101):
        assert jsd.joint_range_jsd(reference, sample, bins) == pytest.approx(math.sqrt(math.log(2) / 3))


# ---- TICA lag vs MSM lag ----------------------------------------------------------------------------


# Function scope on purpose: mutmut runs a mutant only against the tests its coverage run saw reaching the
# mutated code, and a module-scoped fixture's work is credited to the first test that uses it only
# (experiments/tests/README.md, run 3).
@pytest.fixture
def lag_model():
    rng = np.random.default_rng(11)
    labels = markov_chain(CHAIN, 3000, rng)
    centres = np.array([[-2.0, 0.5, 1.0], [2.0, 0.0, -1.0], [0.0, 2.5, 0.0]])
    angles = 0.5 * centres[labels] + 0.25 * rng.standard_normal((len(labels), 3))
    features = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    settings = StateModelSettings(
        tica_lag_ps=TICA_LAG_PS, msm_lag_ps=MSM_LAG_PS, n_clusters=20, n_metastable=3, var_cutoff=0.95
    )
    return features, fit_reference_state_model(features, TIMESTEP_PS, settings, "synthetic")


def _deeptime_tica(features, lag_frames):
    """deeptime's projection, centred on the data mean (mdgen centres there; deeptime on the mean of the
    first T - lag frames: a constant shift, to which k-means and joint-range histograms are blind)."""
    model = TICA(lagtime=lag_frames, scaling="kinetic_map").fit(features).fetch_model()
    projected = model.transform(features)
    return projected - projected.mean(axis=0), model.cumulative_kinetic_variance


def _same_up_to_sign(a, b, atol):
    return all(
        np.allclose(a[:, c], b[:, c], atol=atol) or np.allclose(a[:, c], -b[:, c], atol=atol)
        for c in range(a.shape[1])
    )


def test_tica_uses_the_tica_lag_not_the_msm_lag(lag_model):
    features, model = lag_model
    projected = model.project(features)
    at_tica_lag, cumulative = _deeptime_tica(features, int(TICA_LAG_PS / TIMESTEP_PS))
    at_msm_lag, _ = _deeptime_tica(features, int(MSM_LAG_PS / TIMESTEP_PS))
    assert projected.shape == at_tica_lag.shape
    assert _same_up_to_sign(projected, at_tica_lag, atol=1e-6)
    assert not _same_up_to_sign(projected, at_msm_lag, atol=1e-3)  # the two lags are distinguishable here
    assert model.n_kept_components == int(np.searchsorted(cumulative, 0.95) + 1)


def _deeptime_msm(labels, lag_frames, n_labels):
    counts = TransitionCountEstimator(lagtime=lag_frames, count_mode="sliding", n_states=n_labels).fit(labels)
    active = counts.fetch_model().submodel_largest(directed=True)
    msm = MaximumLikelihoodMSM(reversible=True).fit(active).fetch_model()
    return np.asarray(msm.transition_matrix), np.asarray(active.state_symbols)


def test_msms_use_the_msm_lag_not_the_tica_lag(lag_model):
    features, model = lag_model
    msm_lag, tica_lag = int(MSM_LAG_PS / TIMESTEP_PS), int(TICA_LAG_PS / TIMESTEP_PS)
    clusters = model.clusters(features)
    n_clusters = len(model.cluster_centers)
    expected, active = _deeptime_msm(clusters, msm_lag, n_clusters)
    wrong, _ = _deeptime_msm(clusters, tica_lag, n_clusters)
    assert model.cluster_msm.lag_frames == msm_lag and model.state_msm.lag_frames == msm_lag
    np.testing.assert_array_equal(model.cluster_msm.active_labels, active)
    np.testing.assert_allclose(model.cluster_msm.transition_matrix, expected, atol=1e-8)
    assert np.abs(wrong - expected).max() > 0.01  # the lags give different matrices here
    states, _ = _deeptime_msm(model.cluster_to_state[clusters], msm_lag, model.n_states)
    np.testing.assert_allclose(model.state_msm.transition_matrix, states, atol=1e-8)


# ---- baselines ---------------------------------------------------------------------------------------


def _toy(xyz: np.ndarray, timestep_ps: float) -> md.Trajectory:
    topology = md.Topology()
    residue = topology.add_residue("GLY", topology.add_chain())
    for name in ("N", "CA"):
        topology.add_atom(name, md.element.get_by_symbol(name[0]), residue)
    time = np.arange(len(xyz)) * timestep_ps
    return md.Trajectory(xyz.astype(np.float32), topology, time=time)


def test_trivial_baseline_repeats_frame_zero():
    xyz = np.arange(5 * 2 * 3, dtype=np.float64).reshape(5, 2, 3)
    held = repeat_first_frame(_toy(xyz, 1.0), 7, 10.0)
    assert held.n_frames == 7
    np.testing.assert_array_equal(held.xyz, np.repeat(xyz[:1], 7, axis=0).astype(np.float32))
    np.testing.assert_allclose(np.diff(held.time), 10.0)


def test_upsampling_baselines_match_their_closed_forms():
    """Coarse x = 0, 4, 12 (nm) at factor 4: held = each value 4 times; interpolated = 0,1,2,3,4,6,8,10,12."""
    xyz = np.zeros((3, 2, 3))
    xyz[:, 0, 0] = [0.0, 4.0, 12.0]
    xyz[:, 1, 2] = [1.0, -3.0, 1.0]
    coarse = _toy(xyz, 4.0)
    interpolated = interpolate_coarse_frames(coarse, 4, 1.0)
    np.testing.assert_allclose(interpolated.xyz[:, 0, 0], [0, 1, 2, 3, 4, 6, 8, 10, 12], atol=1e-6)
    np.testing.assert_allclose(interpolated.xyz[:, 1, 2], [1, 0, -1, -2, -3, -2, -1, 0, 1], atol=1e-6)
    np.testing.assert_allclose(np.diff(interpolated.time), 1.0)
    held = hold_coarse_frames(coarse, 4, 1.0)
    np.testing.assert_allclose(held.xyz[:, 0, 0], np.repeat([0.0, 4.0, 12.0], 4))


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return peptide_frame(tmp_path_factory.mktemp("peptide"))


def test_upsampling_interpolation_row_is_built_from_every_kth_reference_frame(frame):
    """The interpolated row's curves equal those of an interpolation done here with numpy from
    reference[::k], k = coarse / fine (catches a wrong factor, a wrong source or an offset)."""
    rng = np.random.default_rng(5)
    fine = peptide_trajectory(
        frame, markov_chain(np.full((3, 3), 0.01) + np.eye(3) * 0.97, 600, rng), rng, 15.0, 0.1, 0.9
    )
    reference = TrajectoryGroup.from_trajectories([fine], "fine")
    settings = UpsamplingSettings(coarse_interval_ps=2.0, curve_max_lag_ps=10.0)
    analysis = evaluate_upsampling("AKIR", reference, reference, settings)
    k = 20
    coarse = fine.xyz[::k].astype(np.float64)  # (31, N, 3)
    weights = (np.arange(k) / k)[None, :, None, None]
    inner = (1 - weights) * coarse[:-1, None] + weights * coarse[1:, None]
    xyz = np.concatenate([inner.reshape(-1, fine.n_atoms, 3), coarse[-1:]])
    angles = torsion_angles(
        md.Trajectory(xyz.astype(np.float32), fine.topology), torsion_definitions(fine.topology)
    )
    expected = decorrelation_curves([angles], 0.1, 10.0)
    got = analysis.candidates[INTERPOLATED]
    np.testing.assert_allclose(got.lags_ps, expected.lags_ps)
    np.testing.assert_allclose(got.curves, expected.curves, atol=1e-6, equal_nan=True)


# ---- forward rows: trivial baseline frame and a regression pin ----------------------------------------

FORWARD = ForwardSettings(
    decorrelation_max_lag_ps=200.0,
    md_truncations_ps=(500.0,),
    state_model=StateModelSettings(
        tica_lag_ps=TICA_LAG_PS, msm_lag_ps=MSM_LAG_PS, n_clusters=20, n_metastable=3
    ),
)


# Function scope on purpose: mutmut runs a mutant only against the tests its coverage run saw reaching the
# mutated code, and a module-scoped fixture's work is credited to the first test that uses it only
# (experiments/tests/README.md, run 3).
@pytest.fixture
def forward_result(frame):
    rng = np.random.default_rng(3)
    reference = peptide_trajectory(frame, markov_chain(CHAIN, 600, rng), rng)
    rollouts = [peptide_trajectory(frame, markov_chain(CHAIN, 150, rng, start=s), rng) for s in (2, 0)]
    samples = TrajectoryGroup.from_trajectories(rollouts, "rollouts")
    ref_group = TrajectoryGroup.from_trajectories([reference], "reference")
    return evaluate_forward("AKIR", samples, ref_group, None, FORWARD).result, reference, rollouts


def test_trivial_baseline_is_frame_zero_of_the_first_rollout(forward_result):
    """Per-torsion JSD of the trivial row = reference histogram vs a delta at rollout 0's frame 0
    (computed here with mdtraj/numpy/scipy); catches the last frame, another rollout, or a wrong length."""
    result, reference, rollouts = forward_result
    trivial = result.rows[TRIVIAL_BASELINE]
    assert trivial.n_frames == 300 and trivial.duration_ps == pytest.approx(3000.0)
    ref_phi = md.compute_phi(reference)[1]
    start_phi = md.compute_phi(rollouts[0][:1])[1]
    for column, residue in enumerate(("LYS2", "ILE3", "ARG4")):
        p, _ = np.histogram(ref_phi[:, column], bins=100, range=(-np.pi, np.pi))
        q, _ = np.histogram(np.repeat(start_phi[:, column], 300), bins=100, range=(-np.pi, np.pi))
        assert trivial.torsion_jsd[f"phi:{residue}"] == pytest.approx(jensenshannon(p, q), abs=1e-9)


# REGRESSION PIN (not independently derived): the forward rows of this fixed-seed input as computed by
# mdgen at commit time. A change here means the evaluation changed; re-derive and update on purpose.
METRICS = ("torsion_jsd_backbone", "torsion_jsd_all", "torsion_pair_jsd_mean", "tica0_jsd", "tica01_jsd")
FORWARD_PIN = {  # row: (values of METRICS, msm_state_jsd, state populations (3 states + unassigned), valid %)
    GENERATED: (
        (0.247709235, 0.087426789, 0.376128199, 0.323975916, 0.410877505),
        0.204249619,
        (0.263333333, 0.476666667, 0.26, 0.0),
        0.683333333,
    ),
    TRIVIAL_BASELINE: (
        (0.778149004, 0.274640825, 0.811073939, 0.825815618, 0.828844001),
        0.747908625,
        (1.0, 0.0, 0.0, 0.0),
        1.0,
    ),
    "MD 500 ps": (
        (0.286978597, 0.101286564, 0.468518325, 0.337903216, 0.469049987),
        0.173503287,
        (0.0, 0.42, 0.58, 0.0),
        0.74,
    ),
}


def test_forward_rows_regression_pin(forward_result):
    result, _, _ = forward_result
    assert (result.n_states, result.n_clusters) == (3, 20) and set(result.rows) == set(FORWARD_PIN)
    for row, (values, msm_jsd, populations, valid) in FORWARD_PIN.items():
        scores = result.rows[row]
        assert [getattr(scores, m) for m in METRICS] == pytest.approx(values, abs=1e-6), row
        assert scores.msm_state_jsd == pytest.approx(msm_jsd, abs=1e-6), row
        assert scores.state_populations == pytest.approx(populations, abs=1e-6), row
        assert scores.validity.valid_fraction == pytest.approx(valid, abs=1e-6), row
        assert scores.torsion_jsd_sidechain == 0.0  # side chains never move in this fixture
