"""Protein-ensemble metrics on inputs with analytic answers: constructed arrays, the AKIR peptide, and
real protein frames (the villin headpiece, perturbed)."""

from dataclasses import fields, replace
from pathlib import Path

import mdtraj as md
import numpy as np
import pdbfixer
import pytest
from scipy.stats import pearsonr, spearmanr

from eval_peptide import markov_chain, peptide_frame, peptide_trajectory
from mdgen.analysis.loading import TrajectoryGroup
from mdgen.evaluation.proteins import (
    ProteinScores,
    ProteinSettings,
    ca_links,
    ca_validity,
    exposed_residues,
    exposure_mutual_information,
    jaccard,
    joint_pca_w2,
    mean_pairwise_rmsd,
    pc1_cosine_similarity,
    pca_w2,
    replica_row,
    replica_rows,
    rmwd,
    score_protein,
    sidechain_sasa_nm2,
    upper_triangle_spearman,
)
from mdgen.evaluation.sections import protein_summary


def test_rmwd_of_shifted_and_widened_gaussians():
    rng = np.random.default_rng(0)
    md_coords = rng.standard_normal((200_000, 1, 3))
    shift = np.array([1.0, 2.0, 2.0])  # |shift| = 3
    generated = 2.0 * rng.standard_normal((200_000, 1, 3)) + shift
    total, translation, variance = rmwd(md_coords, generated)
    # W2^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2) = 9 + 3 (1 + 4 - 4) = 12
    assert translation == pytest.approx(3.0, rel=0.01)
    assert variance == pytest.approx(np.sqrt(3.0), rel=0.01)
    assert total == pytest.approx(np.sqrt(12.0), rel=0.01)


def test_pairwise_rmsd_and_pca_w2_on_constructed_ensembles():
    two_frames = np.zeros((2, 4, 3))
    two_frames[1, :, 0] = 2.0  # every atom moved 2 A
    assert mean_pairwise_rmsd(two_frames) == pytest.approx(2.0)
    rng = np.random.default_rng(1)
    ensemble = np.zeros((300, 4, 3))
    ensemble[:, 0, 0] = 3.0 * rng.standard_normal(300)  # one atom moving along x: PC1
    assert pca_w2(ensemble, ensemble, rng) == pytest.approx(0.0, abs=1e-9)
    shifted = ensemble.copy()
    shifted[:, 0, 0] += 2.0  # every matched pair 2 A apart along PC1, reported per atom: 2 / sqrt(4)
    assert pca_w2(ensemble, shifted, rng) == pytest.approx(1.0, rel=1e-6)


def test_identical_ensembles_score_perfectly(tmp_path):
    frame = peptide_frame(tmp_path)
    rng = np.random.default_rng(2)
    chain = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]])
    traj = peptide_trajectory(frame, markov_chain(chain, 200, rng), rng)
    group = TrajectoryGroup.from_trajectories([traj], "ensemble")
    scores = score_protein(group, group, md.Trajectory(frame.xyz, frame.topology), FAST)
    assert scores.n_residues == 4
    assert scores.rmsf_pearson_r == pytest.approx(1.0)
    assert scores.md_pairwise_rmsd_A == pytest.approx(scores.generated_pairwise_rmsd_A)
    assert scores.rmwd_A == pytest.approx(0.0, abs=1e-3)
    assert scores.md_pca_w2_A == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------------
# Real protein frames: the villin headpiece (PDB 1VII, pdbfixer's test structure), heavy atoms.

VILLIN_PDB = Path(pdbfixer.__file__).parent / "tests" / "data" / "test.pdb"
FAST = ProteinSettings(sasa_sphere_points=100)  # fewer SASA points: same definitions, 10x cheaper
CHEAPEST = ProteinSettings(sasa_sphere_points=12)  # where exposure is compared only with itself


@pytest.fixture(scope="module")
def villin() -> md.Trajectory:
    structure = md.load(str(VILLIN_PDB))
    return structure.atom_slice(structure.topology.select("not element H"))


def villin_ensemble(
    structure: md.Trajectory, n_frames: int, seed: int, noise_scale: float = 1.0
) -> md.Trajectory:
    """Frames of villin moved by two smooth collective modes (wavelength 8 nm, amplitudes uniform in
    +-0.2 A and centred over frames: CA-CA distances change by at most 0.12 A and stay in the validity
    range) plus 0.5 A noise on side-chain atoms beyond CB (their exposure flickers); `noise_scale`
    multiplies every displacement from the structure. 10 ps apart."""
    rng = np.random.default_rng(seed)
    xyz0 = structure.xyz[0].astype(np.float64)
    modes = []
    for _ in range(2):
        direction, wave = rng.standard_normal(3), rng.standard_normal(3)
        wave *= 2 * np.pi / 8.0 / np.linalg.norm(wave)
        modes.append(
            np.sin(xyz0 @ wave + rng.uniform(0, 2 * np.pi))[:, None] * direction / np.linalg.norm(direction)
        )
    amplitudes = rng.uniform(-0.02, 0.02, (n_frames, 2))  # nm
    amplitudes -= amplitudes.mean(0)
    displacement = np.einsum("tk,kai->tai", amplitudes, np.stack(modes))
    beyond_cb = np.asarray(
        [a.name not in ("N", "CA", "C", "O", "OXT", "CB") for a in structure.topology.atoms]
    )
    displacement[:, beyond_cb] += 0.05 * rng.standard_normal((n_frames, beyond_cb.sum(), 3))
    xyz = xyz0 + noise_scale * displacement
    return md.Trajectory(xyz.astype(np.float32), structure.topology, time=10.0 * np.arange(n_frames))


def rigidly_moved(traj: md.Trajectory, seed: int) -> md.Trajectory:
    """Every frame rotated by its own random rotation and shifted by up to 5 nm."""
    rng = np.random.default_rng(seed)
    xyz = []
    for frame in traj.xyz:
        rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        rotation *= np.sign(np.linalg.det(rotation))
        xyz.append(frame @ rotation.T + rng.uniform(-5, 5, 3))
    return md.Trajectory(np.asarray(xyz, dtype=np.float32), traj.topology, time=traj.time)


def group(*trajectories: md.Trajectory) -> TrajectoryGroup:
    return TrajectoryGroup.from_trajectories(list(trajectories), "villin")


SCALAR_FIELDS = [f.name for f in fields(ProteinScores) if f.name not in ("md_rmsf_A", "generated_rmsf_A")]


def assert_scores_close(a: ProteinScores, b: ProteinScores, atol: float = 1e-3):
    for name in SCALAR_FIELDS:
        assert getattr(a, name) == pytest.approx(getattr(b, name), abs=atol, nan_ok=True), name
    np.testing.assert_allclose(a.generated_rmsf_A, b.generated_rmsf_A, atol=atol)
    np.testing.assert_allclose(a.md_rmsf_A, b.md_rmsf_A, atol=atol)


def flickering_cutoff_A(structure: md.Trajectory) -> float:
    """A contact cutoff 0.001 A above the crystal CA-CA distance (|i - j| >= 3) closest to 8 A: that
    pair is a crystal contact that the frames' small CA motions break about half the time."""
    ca = structure.xyz[0, structure.topology.select("name CA")] * 10
    i, j = np.triu_indices(len(ca), k=3)
    distances = np.linalg.norm(ca[i] - ca[j], axis=-1)
    return float(distances[np.argmin(np.abs(distances - 8.0))] + 1e-3)


@pytest.fixture(scope="module")
def villin_self_scores(villin):
    ensemble = group(villin_ensemble(villin, 30, seed=1))
    return score_protein(
        ensemble, ensemble, villin, replace(FAST, contact_cutoff_A=flickering_cutoff_A(villin))
    )


def test_identical_villin_ensembles_give_zero_distances_and_unit_agreement(villin_self_scores):
    """Identical ensembles: every distance 0, every correlation/similarity/Jaccard 1. The sets the
    Jaccards compare are non-empty (else NaN would hide a broken definition)."""
    s = villin_self_scores
    assert s.n_residues == 36
    assert s.rmwd_A == pytest.approx(0.0, abs=1e-4)
    assert s.md_pca_w2_A == pytest.approx(0.0, abs=1e-6)
    assert s.joint_pca_w2_A == pytest.approx(0.0, abs=1e-6)
    assert s.md_pairwise_rmsd_A == pytest.approx(s.generated_pairwise_rmsd_A) and s.md_pairwise_rmsd_A > 0.01
    assert s.rmsf_pearson_r == pytest.approx(1.0)
    assert s.pc1_cosine_similarity == pytest.approx(1.0)
    assert s.md_exposed_residues == s.generated_exposed_residues > 0
    assert s.exposed_residues_jaccard == 1.0
    assert s.exposure_mi_spearman_rho == pytest.approx(1.0)
    assert s.weak_contacts_jaccard == 1.0
    assert s.ca_valid_fraction == 1.0 and s.ca_break_rate == 0.0 and s.ca_clash_rate == 0.0


def test_rigid_motion_of_the_generated_frames_changes_nothing(villin, villin_self_scores):
    """Every frame rotated and shifted at random: every metric superposes frames on the structure first,
    so every score equals the identical-ensemble one (catches a missing superposition)."""
    ensemble = villin_ensemble(villin, 30, seed=1)
    settings = replace(FAST, contact_cutoff_A=flickering_cutoff_A(villin))
    moved = score_protein(group(ensemble), group(rigidly_moved(ensemble, 2)), villin, settings)
    assert_scores_close(moved, villin_self_scores)


def test_replica_rows_a_rigidly_moved_replica_changes_nothing(villin):
    """Replica rows (each replica against the others): moving replica 3 rigidly leaves every row as it was."""
    runs = [villin_ensemble(villin, 12, seed) for seed in (3, 4, 5)]
    rows = replica_rows(group(*runs), villin, CHEAPEST)
    assert list(rows) == [replica_row(1), replica_row(2), replica_row(3)]
    moved = replica_rows(group(runs[0], runs[1], rigidly_moved(runs[2], 6)), villin, CHEAPEST)
    for row in rows:
        assert_scores_close(moved[row], rows[row])
    assert (
        rows[replica_row(1)].md_rmsf_A != rows[replica_row(2)].md_rmsf_A
    )  # the rows use different rest sets
    assert replica_rows(group(runs[0]), villin, FAST) == {}


def test_doubling_one_replicas_motion_changes_only_its_variance_terms(villin):
    """Replica 3 = replica 1's frames with every displacement from the structure doubled. Against
    replica 1 alone (rest = [R1]): RMSF doubles (so its Pearson r stays 1), the means stay (RMWD
    translation ~0), and the Gaussian W2 variance term is the closed form for S2 = 4 S1:
    tr(S1 + 4 S1 - 2 * 2 S1) = tr(S1), i.e. RMWD variance = RMS over atoms of MD RMSF."""
    base = villin_ensemble(villin, 30, seed=7)
    doubled = villin_ensemble(villin, 30, seed=7, noise_scale=2.0)
    s = score_protein(group(base), group(doubled), villin, FAST)
    md_rmsf, gen_rmsf = np.asarray(s.md_rmsf_A), np.asarray(s.generated_rmsf_A)
    np.testing.assert_allclose(gen_rmsf, 2 * md_rmsf, rtol=0.05)
    assert s.rmsf_pearson_r > 0.99
    assert s.rmwd_translation_A < 0.05 * s.rmwd_variance_A
    assert s.rmwd_variance_A == pytest.approx(np.sqrt(np.mean(md_rmsf**2)), rel=0.05)
    assert s.generated_pairwise_rmsd_A == pytest.approx(2 * s.md_pairwise_rmsd_A, rel=0.05)
    assert s.pc1_cosine_similarity > 0.95  # same modes, larger: the direction is unchanged


# ---------------------------------------------------------------------------------------------------
# Hand-built cases


def test_jaccard_by_hand():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    assert jaccard(a, b) == pytest.approx(1 / 3)  # {0} / {0, 1, 2}
    assert jaccard(a, a) == 1.0
    assert np.isnan(jaccard(np.zeros(3, bool), np.zeros(3, bool)))


def test_exposed_residues_by_hand():
    """Buried in the structure (<= 0.02 nm^2) and exposed in more than 10% of frames."""
    structure = np.array([0.0, 0.01, 0.5, 0.0])  # residue 2 is exposed already: never counted
    frames = np.zeros((10, 4))
    frames[:2, 0] = 0.1  # 20% of frames: counted
    frames[:1, 1] = 0.1  # 10%: not more than 10%, not counted
    frames[:, 2] = 0.1
    frames[:5, 3] = 0.015  # below the threshold: never exposed
    np.testing.assert_array_equal(exposed_residues(structure, frames, 0.02), [True, False, False, False])


def test_exposure_mutual_information_by_hand():
    """Four equally frequent (a, b) patterns: a and b independent (MI 0), c = a (MI ln 2), d constant
    (MI 0), diagonal 0. Against H(x) + H(y) - H(x, y) from counts on a random case."""
    patterns = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=bool)
    a, b = np.repeat(patterns, 5, axis=0).T
    x = np.stack([a, b, a, np.ones_like(a)], axis=1)
    mi = exposure_mutual_information(x)
    assert mi[0, 2] == pytest.approx(np.log(2)) and mi[2, 0] == pytest.approx(np.log(2))
    assert mi[0, 1] == pytest.approx(0.0, abs=1e-12) and mi[0, 3] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(np.diag(mi), 0.0)
    rng = np.random.default_rng(0)
    y = rng.random((200, 3)) < [0.3, 0.5, 0.8]
    entropy = lambda counts: -sum(c / 200 * np.log(c / 200) for c in counts if c)  # noqa: E731
    for i, j in [(0, 1), (1, 2), (0, 2)]:
        joint = [np.sum((y[:, i] == u) & (y[:, j] == v)) for u in (0, 1) for v in (0, 1)]
        expected = entropy(np.bincount(y[:, i], minlength=2)) + entropy(np.bincount(y[:, j], minlength=2))
        expected -= entropy(joint)
        assert exposure_mutual_information(y)[i, j] == pytest.approx(expected)


def test_mi_matrices_are_compared_over_the_upper_triangle():
    rng = np.random.default_rng(1)
    a = rng.random((5, 5))
    b = a + 0.3 * rng.random((5, 5))
    i, j = np.triu_indices(5, k=1)
    assert upper_triangle_spearman(a, b) == pytest.approx(spearmanr(a[i, j], b[i, j])[0])
    assert upper_triangle_spearman(a, a.T.copy() * 0 + a) == pytest.approx(1.0)
    assert np.isnan(upper_triangle_spearman(a, np.zeros((5, 5))))  # constant: undefined, not 0


def test_sidechain_sasa_of_villin(villin):
    """Glycines have no side chain (0); a side chain never has more area than its residue
    (mdtraj's per-residue SASA)."""
    sidechain = sidechain_sasa_nm2(villin, 0.28, 100)[0]
    residue = md.shrake_rupley(villin, probe_radius=0.28, n_sphere_points=100, mode="residue")[0]
    glycine = np.asarray([r.name == "GLY" for r in villin.topology.residues])
    assert glycine.sum() == 2 and np.all(sidechain[glycine] == 0.0)
    assert np.all(sidechain <= residue + 1e-6) and np.sum(sidechain[~glycine] > 0) > 25


def test_joint_pca_w2_and_pc_similarity_on_constructed_ensembles():
    rng = np.random.default_rng(2)
    ensemble = np.zeros((200, 4, 3))
    ensemble[:, 0, 0] = 3.0 * rng.standard_normal(200)  # one atom moving along x
    shifted = ensemble.copy()
    shifted[:, 0, 0] += 2.0
    # Joint PC1 is that x axis; matched pairs are 2 A apart along it, per atom 2 / sqrt(4).
    assert joint_pca_w2(ensemble, shifted, rng) == pytest.approx(1.0, rel=1e-6)
    assert joint_pca_w2(ensemble, ensemble, rng) == pytest.approx(0.0, abs=1e-9)
    other = np.zeros((200, 4, 3))
    other[:, 1, 2] = 3.0 * rng.standard_normal(200)  # another atom along z: orthogonal PC1
    assert pc1_cosine_similarity(ensemble, -ensemble) == pytest.approx(1.0)  # sign-free
    assert pc1_cosine_similarity(ensemble, other) == pytest.approx(0.0, abs=1e-9)


def test_ca_validity_by_hand(villin):
    """A straight CA chain 3.8 A apart is valid; one frame with a 4.5 A gap is a break, one with two
    CAs three residues apart at 2.5 A a clash; 2.9 A is allowed only before a proline."""
    chain = np.zeros((4, 5, 3))
    chain[:, :, 0] = 3.8 * np.arange(5)
    chain[1, 3:, 0] += 0.7  # CA2-CA3 = 4.5 A
    chain[2, 3] = chain[2, 0] + [0.0, 2.5, 0.0]  # CA3 next to CA0: CA2-CA3, CA3-CA4 also broken
    chain[3, 2:, 0] -= 0.9  # CA1-CA2 = 2.9 A
    links = np.arange(4)
    no_proline = np.zeros(4, bool)
    assert ca_validity(chain[:1], links, no_proline, 3.0) == (0.0, 0.0, 1.0)
    breaks, clashes, valid = ca_validity(chain, links, no_proline, 3.0)
    assert (breaks, clashes, valid) == (0.75, 0.25, 0.25)
    proline_at_2 = np.array([False, True, False, False])  # residue 2 is a proline
    assert ca_validity(chain[3:], links, proline_at_2, 3.0) == (0.0, 0.0, 1.0)
    ca = villin.topology.select("name CA")
    links, before_proline = ca_links(villin.topology, ca)
    np.testing.assert_array_equal(links, np.arange(35))
    assert (
        before_proline.sum() == 1
        and villin.topology.residue(int(np.argmax(before_proline)) + 1).name == "PRO"
    )


def test_protein_summary_across_targets():
    """Medians per target, correlations pooled over targets, % of targets with PC similarity > 0.5."""
    villin_like = dict(zip(SCALAR_FIELDS, [0.0] * len(SCALAR_FIELDS), strict=True))

    def scores(md_rmsf, gen_rmsf, pc, rmwd_value, valid):
        values = villin_like | {
            "n_residues": 3, "pc1_cosine_similarity": pc, "rmwd_A": rmwd_value, "ca_valid_fraction": valid,
            "md_pairwise_rmsd_A": md_rmsf[0], "generated_pairwise_rmsd_A": gen_rmsf[0],
        }  # fmt: skip
        return ProteinScores(md_rmsf_A=tuple(md_rmsf), generated_rmsf_A=tuple(gen_rmsf), **values)

    targets = [
        scores([1, 2, 3], [1, 2, 4], 0.6, 1.0, 1.0),
        scores([2, 2, 1], [3, 1, 1], 0.4, 2.0, 0.5),
        scores([5, 1, 1], [4, 2, 1], 0.9, 7.0, 0.0),
    ]
    summary = protein_summary(targets)
    assert summary["pc_sim_above_half_percent"] == pytest.approx(200 / 3)
    assert summary["rmwd_A"] == 2.0  # median, not mean (3.33)
    assert summary["ca_valid_fraction"] == 0.5  # validity is a mean
    md_all, gen_all = [1, 2, 3, 2, 2, 1, 5, 1, 1], [1, 2, 4, 3, 1, 1, 4, 2, 1]
    assert summary["global_rmsf_pearson_r"] == pytest.approx(pearsonr(md_all, gen_all)[0])
    assert summary["pairwise_rmsd_pearson_r"] == pytest.approx(pearsonr([1, 2, 5], [1, 3, 4])[0])
    assert summary["md_rmsf_median_A"] == np.median(md_all)
