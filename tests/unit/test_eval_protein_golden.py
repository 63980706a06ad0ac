"""Protein metrics (mdgen.evaluation.proteins) on real villin MD frames (tests/fixtures/villin: 36 residues,
three replicas x 20 frames at 10 ps) against values derived without the code under test.

Two kinds of case:
- a rigid shift d of one ensemble's superposed CA coordinates, whose effect on every metric has a closed
  form: RMWD = its translation part = |d| and its variance part 0; MD-PCA W2 = 0 (superposed frames share
  one CA centroid, so MD's PCs are orthogonal to a uniform shift); joint-PCA W2 = |d| (the shift is a
  joint PC); pairwise RMSD, PC1 similarity, contacts and validity unchanged;
- replica 1 (as MD) against replica 2 (as generated), each metric recomputed independently: RMSF with
  mdtraj.rmsf and Pearson r with scipy; Gaussian W2 with the other order of the matrix roots and roots by
  eigendecomposition; PCA from numpy's eigh of the covariance and the optimal matching by brute force over
  permutations; contacts from mdtraj.compute_contacts and Jaccards from Python sets; exposure from
  mdtraj's per-atom Shrake-Rupley summed over mdtraj's "sidechain" selection and mutual information from
  scikit-learn; validity from mdtraj.compute_distances. The "MD replica i vs rest" rows are checked the
  same way, replica by replica.
Each test names the realistic one-line bug it catches (each was planted in a copy of the code).
"""

from __future__ import annotations

import itertools

import mdtraj as md
import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import mutual_info_score

from mdgen.evaluation.proteins import (
    ProteinSettings,
    ca_links,
    ca_validity,
    contact_sets,
    joint_pca_w2,
    mean_pairwise_rmsd,
    pc1_cosine_similarity,
    pca_w2,
    replica_row,
    replica_rows,
    rmwd,
    score_protein,
)
from villin import group, villin_replicas, villin_structure

# 50 SASA points instead of 960: the definitions are the same and the golden values use the same count
SETTINGS = ProteinSettings(sasa_sphere_points=50)
EXPOSURE_NM2 = SETTINGS.exposure_threshold_nm2


@pytest.fixture(scope="module")
def structure() -> md.Trajectory:
    return villin_structure()


@pytest.fixture(scope="module")
def replicas() -> list[md.Trajectory]:
    return villin_replicas()


# ---- independent computations ------------------------------------------------------------------------


def ca_slice(traj: md.Trajectory) -> md.Trajectory:
    return traj.atom_slice(traj.topology.select("name CA"))


def superposed_ca_A(traj: md.Trajectory, structure: md.Trajectory) -> np.ndarray:
    """(T, N_CA, 3) Å, every frame superposed on the structure's CA atoms by mdtraj."""
    return 10 * ca_slice(traj).superpose(ca_slice(structure)).xyz.astype(np.float64)


def golden_rmsf_A(traj: md.Trajectory, structure: md.Trajectory) -> np.ndarray:
    return 10 * md.rmsf(ca_slice(traj), ca_slice(structure), 0)


def golden_pairwise_rmsd_A(coords: np.ndarray) -> float:
    pairs = itertools.combinations(range(len(coords)), 2)
    return float(np.mean([np.sqrt(np.mean(np.sum((coords[a] - coords[b]) ** 2, -1))) for a, b in pairs]))


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def golden_rmwd(md_coords: np.ndarray, gen_coords: np.ndarray) -> tuple[float, float, float]:
    """Per CA atom W2^2 of fitted Gaussians = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), with
    unbiased covariances (numpy's np.cov convention, written out); roots by eigh, the S1-rooted order."""
    translation, variance = [], []
    for a in range(md_coords.shape[1]):
        x, y = md_coords[:, a], gen_coords[:, a]
        s1 = (x - x.mean(0)).T @ (x - x.mean(0)) / (len(x) - 1)
        s2 = (y - y.mean(0)).T @ (y - y.mean(0)) / (len(y) - 1)
        root = psd_sqrt(s1)
        translation.append(np.sum((x.mean(0) - y.mean(0)) ** 2))
        variance.append(np.trace(s1 + s2 - 2 * psd_sqrt(root @ s2 @ root)))
    t, v = np.mean(translation), np.mean(variance)
    return float(np.sqrt(t + v)), float(np.sqrt(t)), float(np.sqrt(v))


def top_components(coords: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (3N,), top-k eigenvectors (3N, k) of the covariance, all eigenvalues descending)."""
    flat = coords.reshape(len(coords), -1)
    values, vectors = np.linalg.eigh(np.cov(flat.T, bias=True))
    return flat.mean(0), vectors[:, ::-1][:, :k], values[::-1]


def brute_force_w2(a: np.ndarray, b: np.ndarray, n_atoms: int) -> float:
    """sqrt(min over one-to-one matchings of the mean squared distance / n_atoms), every permutation."""
    cost = ((a[:, None] - b[None]) ** 2).sum(-1)
    matchings = np.asarray(list(itertools.permutations(range(len(b)))))  # (n!, n)
    best = cost[np.arange(len(a)), matchings].mean(1).min()
    return float(np.sqrt(best / n_atoms))


def golden_contacts(traj: md.Trajectory, structure: md.Trajectory) -> tuple[set, set]:
    """(weak, transient) sets of CA pairs from mdtraj.compute_contacts (|i - j| >= 3, 8 Å)."""
    frames, pairs = md.compute_contacts(traj, contacts="all", scheme="ca")
    crystal = md.compute_contacts(structure, contacts="all", scheme="ca")[0][0] * 10 < 8.0
    probability = (frames * 10 < 8.0).mean(0)
    as_set = lambda mask: {tuple(pair) for pair in pairs[mask]}  # noqa: E731
    return as_set(crystal & (probability < 0.9)), as_set(~crystal & (probability > 0.1))


def set_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else float("nan")


def golden_sidechain_sasa_nm2(traj: md.Trajectory, structure: md.Trajectory) -> np.ndarray:
    """(T, L) per-residue SASA of mdtraj's "sidechain" atoms (without the terminal OXT), frames superposed
    on the structure on all heavy atoms as the evaluator does (Shrake-Rupley's sphere points are fixed in
    space, so a rigid motion changes the discretised area slightly)."""
    moved = md.Trajectory(traj.xyz.copy(), traj.topology).superpose(structure)
    per_atom = md.shrake_rupley(moved, probe_radius=0.28, n_sphere_points=SETTINGS.sasa_sphere_points)
    sidechain = traj.topology.select("sidechain and not name OXT")
    out = np.zeros((traj.n_frames, traj.n_residues))
    for atom in sidechain:
        out[:, traj.topology.atom(atom).residue.index] += per_atom[:, atom]
    return out


def golden_exposed(structure_sasa: np.ndarray, frames_sasa: np.ndarray) -> set:
    often = (frames_sasa > EXPOSURE_NM2).mean(0) > 0.1
    return {r for r in range(len(structure_sasa)) if structure_sasa[r] <= EXPOSURE_NM2 and often[r]}


def golden_mi_upper(exposed: np.ndarray) -> np.ndarray:
    """scikit-learn's mutual information (nats) of every residue pair i < j's exposure series (T, L); a
    pair with a constant series has MI 0 (computed only where both vary: sklearn costs ~5 ms a pair)."""
    varies = exposed.min(0) != exposed.max(0)
    i, j = np.triu_indices(exposed.shape[1], k=1)
    return np.array(
        [
            mutual_info_score(exposed[:, a], exposed[:, b]) if varies[a] and varies[b] else 0.0
            for a, b in zip(i, j)
        ]
    )


def golden_validity(traj: md.Trajectory) -> tuple[float, float, float]:
    """(break rate, clash rate, valid fraction) from mdtraj.compute_distances (METHOD 12 ranges)."""
    ca = traj.topology.select("name CA")
    residues = list(traj.topology.residues)
    bonded = 10 * md.compute_distances(traj, [(ca[k], ca[k + 1]) for k in range(len(ca) - 1)])
    low = np.array([2.7 if residues[k + 1].name == "PRO" else 3.6 for k in range(len(ca) - 1)])
    broken = np.any((bonded < low) | (bonded > 4.0), axis=1)
    far = [(ca[a], ca[b]) for a in range(len(ca)) for b in range(a + 2, len(ca))]
    clash = np.any(10 * md.compute_distances(traj, far) < 3.0, axis=1)
    return float(broken.mean()), float(clash.mean()), float(1 - (broken | clash).mean())


# ---- a rigid shift of one ensemble -------------------------------------------------------------------

SHIFT_A = np.array([2.0, -1.0, 2.0])  # |d| = 3 Å


def test_a_rigid_shift_of_one_ensemble_changes_only_the_translation_terms(replicas, structure):
    """Generated = replica 1's superposed CA frames + d. Closed forms: RMWD = RMWD translation = |d|, RMWD
    variance 0; MD-PCA W2 0 (MD's PCs are orthogonal to a uniform shift: every superposed frame has the
    structure's CA centroid); joint-PCA W2 = |d| (the shift, N|d|^2/4 = 81 Å^2 of variance, is the top joint
    PC: larger than MD's largest eigenvalue, asserted); pairwise RMSD, PC1, contacts, validity unchanged.
    Catches: RMWD's translation and variance parts swapped; joint PCA fitted on the MD frames only (0);
    MD-PCA fitted on both ensembles (|d|); a W2 not divided by the number of atoms (|d| sqrt(36))."""
    md_coords = superposed_ca_A(replicas[0], structure)
    shifted = md_coords + SHIFT_A
    d, n = float(np.linalg.norm(SHIFT_A)), md_coords.shape[1]
    _, _, md_eigenvalues = top_components(md_coords)
    assert n * d**2 / 4 > md_eigenvalues[0]  # the closed form's condition

    total, translation, variance = rmwd(md_coords, shifted)
    assert translation == pytest.approx(d, rel=1e-6)
    assert variance == pytest.approx(0.0, abs=2e-3)  # sqrt of a round-off-sized trace
    assert total == pytest.approx(d, rel=1e-6)
    rng = np.random.default_rng(0)
    assert pca_w2(md_coords, shifted, rng) == pytest.approx(0.0, abs=1e-3)
    assert joint_pca_w2(md_coords, shifted, rng) == pytest.approx(d, rel=1e-4)
    assert pc1_cosine_similarity(md_coords, shifted) == pytest.approx(1.0, abs=1e-6)
    assert mean_pairwise_rmsd(shifted) == pytest.approx(golden_pairwise_rmsd_A(md_coords), abs=1e-4)
    structure_ca = superposed_ca_A(structure, structure)[0]
    for before, after in zip(
        contact_sets(structure_ca, md_coords, 8.0), contact_sets(structure_ca, shifted, 8.0), strict=True
    ):
        np.testing.assert_array_equal(before, after)
    links, before_proline = ca_links(structure.topology, structure.topology.select("name CA"))
    assert ca_validity(shifted, links, before_proline, 3.0) == pytest.approx(
        golden_validity(replicas[0]), abs=1e-12
    )


# ---- replica 1 (MD) against replica 2 (generated) ------------------------------------------------------


@pytest.fixture(scope="module")
def r1_vs_r2(replicas, structure):
    return score_protein(group(replicas[0]), group(replicas[1]), structure, SETTINGS)


def test_rmsf_pairwise_rmsd_and_pearson_r_against_mdtraj_and_scipy(r1_vs_r2, replicas, structure):
    """Catches: RMSF r computed as Spearman, or on the wrong pair of profiles (MD with MD gives 1); a
    pairwise RMSD of the wrong ensemble."""
    md_rmsf, gen_rmsf = golden_rmsf_A(replicas[0], structure), golden_rmsf_A(replicas[1], structure)
    np.testing.assert_allclose(r1_vs_r2.md_rmsf_A, md_rmsf, atol=2e-3)
    np.testing.assert_allclose(r1_vs_r2.generated_rmsf_A, gen_rmsf, atol=2e-3)
    assert r1_vs_r2.rmsf_pearson_r == pytest.approx(pearsonr(md_rmsf, gen_rmsf)[0], abs=2e-3)
    assert r1_vs_r2.rmsf_pearson_r != pytest.approx(spearmanr(md_rmsf, gen_rmsf)[0], abs=5e-3)
    gen_pairwise = golden_pairwise_rmsd_A(superposed_ca_A(replicas[1], structure))
    assert r1_vs_r2.generated_pairwise_rmsd_A == pytest.approx(gen_pairwise, abs=2e-3)


def test_rmwd_against_gaussian_w2_with_eigh_roots(r1_vs_r2, replicas, structure):
    """Catches: the cross term with S1 in place of S2 (or either root missing), a biased covariance on
    one side, translation and variance parts swapped (both are non-zero here)."""
    expected = golden_rmwd(superposed_ca_A(replicas[0], structure), superposed_ca_A(replicas[1], structure))
    got = (r1_vs_r2.rmwd_A, r1_vs_r2.rmwd_translation_A, r1_vs_r2.rmwd_variance_A)
    assert got == pytest.approx(expected, abs=2e-3)
    assert min(expected[1:]) > 0.3  # both parts large enough to tell apart


def test_pca_w2_and_pc_similarity_against_eigh_and_brute_force_matching(replicas, structure):
    """7 evenly spaced frames of each replica (5040 matchings, checked exhaustively). MD-PCA: PCs of the MD
    frames; joint: PCs of both sets together; PC1 |cos| from eigh of each ensemble's covariance. Catches:
    MD-PCA fitted on the generated frames or on both; joint PCA fitted on MD only; three PCs instead of
    two; a matching on distances instead of squared distances."""
    md_all, gen_all = superposed_ca_A(replicas[0], structure), superposed_ca_A(replicas[1], structure)
    pick = np.linspace(1, len(md_all) - 1, 7).astype(int)  # frames 1, 4, ..., 19
    md7, gen7 = md_all[pick], gen_all[pick]
    n = md7.shape[1]
    project = lambda coords, mean, top: (coords.reshape(len(coords), -1) - mean) @ top  # noqa: E731

    def w2_on_pcs_of(fitted: np.ndarray) -> float:
        mean, top, _ = top_components(fitted)
        return brute_force_w2(project(md7, mean, top), project(gen7, mean, top), n)

    expected_md, expected_joint = w2_on_pcs_of(md7), w2_on_pcs_of(np.concatenate([md7, gen7]))
    rng = np.random.default_rng(0)
    assert pca_w2(md7, gen7, rng) == pytest.approx(expected_md, rel=1e-6)
    assert joint_pca_w2(md7, gen7, rng) == pytest.approx(expected_joint, rel=1e-6)
    # the PCs of MD, of the generated frames and of both give values 0.09-0.21 Å apart here
    values = sorted([expected_md, expected_joint, w2_on_pcs_of(gen7)])
    assert min(np.diff(values)) > 0.05

    cosine = abs(top_components(md_all, 1)[1][:, 0] @ top_components(gen_all, 1)[1][:, 0])
    assert pc1_cosine_similarity(md_all, gen_all) == pytest.approx(cosine, abs=1e-6)


def test_contacts_and_validity_of_replica_2_against_mdtraj(r1_vs_r2, replicas, structure):
    """Jaccards of mdtraj's contact sets, computed with Python sets; validity of the generated side from
    mdtraj distances. Catches: transient contacts counted at >= 90 % (the weak rule), validity scored on
    the MD frames."""
    md_weak, md_transient = golden_contacts(replicas[0], structure)
    gen_weak, gen_transient = golden_contacts(replicas[1], structure)
    assert r1_vs_r2.weak_contacts_jaccard == pytest.approx(set_jaccard(md_weak, gen_weak))
    assert r1_vs_r2.transient_contacts_jaccard == pytest.approx(set_jaccard(md_transient, gen_transient))
    breaks, clashes, valid = golden_validity(replicas[1])
    assert (r1_vs_r2.ca_break_rate, r1_vs_r2.ca_clash_rate, r1_vs_r2.ca_valid_fraction) == pytest.approx(
        (breaks, clashes, valid)
    )
    assert golden_validity(replicas[0]) != pytest.approx((breaks, clashes, valid))  # sides told apart


def test_exposure_against_mdtraj_sasa_and_sklearn_mutual_information(r1_vs_r2, replicas, structure):
    """Exposed residues (buried in the structure, side chain > 0.02 nm^2 in > 10 % of frames) from
    mdtraj's per-atom SASA over its "sidechain" selection; the MI matrices from scikit-learn, ranked by
    scipy. Catches: the side chain summed with backbone atoms (CA), exposure judged against the frames
    instead of the structure, the MI matrix of one side compared with itself."""
    structure_sasa = golden_sidechain_sasa_nm2(structure, structure)[0]
    md_sasa = golden_sidechain_sasa_nm2(replicas[0], structure)
    gen_sasa = golden_sidechain_sasa_nm2(replicas[1], structure)
    md_exposed, gen_exposed = (
        golden_exposed(structure_sasa, md_sasa),
        golden_exposed(structure_sasa, gen_sasa),
    )
    assert (r1_vs_r2.md_exposed_residues, r1_vs_r2.generated_exposed_residues) == (
        len(md_exposed),
        len(gen_exposed),
    )
    assert md_exposed and r1_vs_r2.exposed_residues_jaccard == pytest.approx(
        set_jaccard(md_exposed, gen_exposed)
    )
    rho = spearmanr(golden_mi_upper(md_sasa > EXPOSURE_NM2), golden_mi_upper(gen_sasa > EXPOSURE_NM2))[0]
    assert r1_vs_r2.exposure_mi_spearman_rho == pytest.approx(rho, abs=1e-9)
    assert abs(rho) < 0.95  # not the value of a matrix compared with itself


# ---- the replica-vs-rest reference rows ----------------------------------------------------------------


def test_each_replica_row_scores_that_replica_against_the_other_two(replicas, structure):
    """Row "MD replica k vs rest": generated = replica k alone, MD = the other two pooled (mdtraj RMSF of
    each side, scipy's Pearson r, the Gaussian W2 of the two sides). Catches: the rest including replica k
    itself, every row scoring replica 1, the two sides swapped."""
    cheap = ProteinSettings(sasa_sphere_points=12)  # exposure is not checked here
    rows = replica_rows(group(*replicas), structure, cheap)
    assert list(rows) == [replica_row(k) for k in (1, 2, 3)]
    for k in range(3):
        rest = md.join([run for other, run in enumerate(replicas) if other != k])
        row = rows[replica_row(k + 1)]
        md_rmsf, gen_rmsf = golden_rmsf_A(rest, structure), golden_rmsf_A(replicas[k], structure)
        np.testing.assert_allclose(row.md_rmsf_A, md_rmsf, atol=2e-3)
        np.testing.assert_allclose(row.generated_rmsf_A, gen_rmsf, atol=2e-3)
        assert row.rmsf_pearson_r == pytest.approx(pearsonr(md_rmsf, gen_rmsf)[0], abs=2e-3)
        expected = golden_rmwd(superposed_ca_A(rest, structure), superposed_ca_A(replicas[k], structure))
        assert row.rmwd_translation_A == pytest.approx(expected[1], abs=2e-3)
        assert row.rmwd_A == pytest.approx(expected[0], abs=2e-3)
