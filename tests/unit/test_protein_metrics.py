"""Protein-ensemble metrics (mdgen.evaluation.proteins) on real MD frames of the villin headpiece
(tests/fixtures/villin: 36 residues, implicit-solvent MD at 300 K, 10 ps frames, three replicas).

Golden values come from mdtraj and numpy directly (mdtraj.rmsf, mdtraj.compute_contacts,
mdtraj.compute_distances, a loop over frame pairs, an eigen-decomposition of the covariance), never from
the code under test. Cases: identical ensembles (distances 0, correlations 1), rigid motions
(superposition-invariant metrics unchanged), a side-chain-only perturbation (no CA metric moves) and a
displaced residue (its RMSF and its contacts change, the others' contacts do not).
"""

from dataclasses import fields

import mdtraj as md
import numpy as np
import pytest

from mdgen.evaluation.proteins import (
    ProteinScores,
    ProteinSettings,
    analyse_protein,
    contact_sets,
    jaccard,
    md_pca_projections,
    replica_row,
    replica_rows,
    score_protein,
    write_figures,
)
from villin import group, villin_replicas, villin_structure

FAST = ProteinSettings(sasa_sphere_points=100)  # fewer SASA points: same definitions, ~10x cheaper
CHEAPEST = ProteinSettings(sasa_sphere_points=12)  # where exposure is compared only with itself
DISPLACED_RESIDUE = 23  # TRP24, mid-chain
SCALARS = [f.name for f in fields(ProteinScores) if f.name not in ("md_rmsf_A", "generated_rmsf_A")]


@pytest.fixture(scope="module")
def structure() -> md.Trajectory:
    return villin_structure()


@pytest.fixture(scope="module")
def replicas() -> list[md.Trajectory]:
    return villin_replicas()


def with_xyz(traj: md.Trajectory, xyz: np.ndarray) -> md.Trajectory:
    return md.Trajectory(np.asarray(xyz, dtype=np.float32), traj.topology, time=traj.time)


def rigidly_moved(traj: md.Trajectory, seed: int) -> md.Trajectory:
    """Every frame rotated by its own random rotation and shifted by up to 5 nm."""
    rng = np.random.default_rng(seed)
    xyz = []
    for frame in traj.xyz.astype(np.float64):
        rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        rotation *= np.sign(np.linalg.det(rotation))
        xyz.append(frame @ rotation.T + rng.uniform(-5, 5, 3))
    return with_xyz(traj, xyz)


def assert_scores_close(a: ProteinScores, b: ProteinScores, atol: float = 1e-3) -> None:
    for name in SCALARS:
        assert getattr(a, name) == pytest.approx(getattr(b, name), abs=atol, nan_ok=True), name
    np.testing.assert_allclose(a.md_rmsf_A, b.md_rmsf_A, atol=atol)
    np.testing.assert_allclose(a.generated_rmsf_A, b.generated_rmsf_A, atol=atol)


# ---- golden values from mdtraj / numpy --------------------------------------------------------------


def ca_slice(traj: md.Trajectory) -> md.Trajectory:
    return traj.atom_slice(traj.topology.select("name CA"))


def golden_rmsf_A(traj: md.Trajectory, structure: md.Trajectory) -> np.ndarray:
    """mdtraj's RMSF (C implementation): CA frames superposed on the structure's CAs, about their mean."""
    return 10 * md.rmsf(ca_slice(traj), ca_slice(structure), 0)


def golden_superposed_ca_A(traj: md.Trajectory, structure: md.Trajectory) -> np.ndarray:
    return 10 * ca_slice(traj).superpose(ca_slice(structure)).xyz.astype(np.float64)


def golden_pairwise_rmsd_A(coords: np.ndarray) -> float:
    """Mean over frame pairs of sqrt(mean over atoms of squared distance), an explicit loop."""
    values = [
        np.sqrt(np.mean(np.sum((coords[a] - coords[b]) ** 2, axis=-1)))
        for a in range(len(coords))
        for b in range(a + 1, len(coords))
    ]
    return float(np.mean(values))


def golden_contact_sets(traj: md.Trajectory, structure: md.Trajectory, cutoff_A: float = 8.0):
    """(weak, transient) masks from mdtraj.compute_contacts (CA scheme, pairs |i - j| >= 3)."""
    frames, pairs = md.compute_contacts(traj, contacts="all", scheme="ca")
    crystal, crystal_pairs = md.compute_contacts(structure, contacts="all", scheme="ca")
    assert np.array_equal(pairs, crystal_pairs)
    in_crystal = crystal[0] * 10 < cutoff_A
    probability = (frames * 10 < cutoff_A).mean(0)
    return in_crystal & (probability < 0.9), ~in_crystal & (probability > 0.1), pairs


def golden_ca_validity(traj: md.Trajectory) -> tuple[float, float]:
    """(break rate, clash rate) from mdtraj.compute_distances: CA(i)-CA(i+1) outside [3.6, 4.0] Å
    ([2.7, 4.0] before a proline), any CA pair |i - j| >= 2 closer than 3 Å."""
    ca = traj.topology.select("name CA")
    residues = list(traj.topology.residues)
    bonded = 10 * md.compute_distances(traj, [(ca[k], ca[k + 1]) for k in range(len(ca) - 1)])
    low = np.array([2.7 if residues[k + 1].name == "PRO" else 3.6 for k in range(len(ca) - 1)])
    broken = np.any((bonded < low) | (bonded > 4.0), axis=1)
    far = [(ca[i], ca[j]) for i in range(len(ca)) for j in range(i + 2, len(ca))]
    clash = np.any(10 * md.compute_distances(traj, far) < 3.0, axis=1)
    return float(broken.mean()), float(clash.mean())


def golden_ca_validity_union(traj: md.Trajectory) -> float:
    """Fraction of frames with a break or a clash (recomputed per frame from the two golden rates)."""
    per_frame = [golden_ca_validity(traj[t]) for t in range(traj.n_frames)]
    return float(np.mean([b > 0 or c > 0 for b, c in per_frame]))


# ---- identical ensembles -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_scores(replicas, structure) -> ProteinScores:
    return score_protein(group(replicas[0]), group(replicas[0]), structure, FAST)


def test_identical_md_ensembles_give_zero_distances_and_unit_agreement(self_scores, replicas, structure):
    """Replica 1 against itself. Catches: a distance that is not 0 on identical inputs (a biased
    estimator, a frame offset), a correlation that is not 1, a Jaccard over wrong sets."""
    s, run = self_scores, replicas[0]
    assert s.n_residues == 36
    assert s.rmwd_A == pytest.approx(0.0, abs=1e-3)
    assert s.rmwd_translation_A == pytest.approx(0.0, abs=1e-6)
    assert s.md_pca_w2_A == pytest.approx(0.0, abs=1e-6)
    assert s.joint_pca_w2_A == pytest.approx(0.0, abs=1e-6)
    assert s.rmsf_pearson_r == pytest.approx(1.0)
    assert s.pc1_cosine_similarity == pytest.approx(1.0)
    assert s.md_exposed_residues == s.generated_exposed_residues
    weak, transient, _ = golden_contact_sets(run, structure)
    assert weak.any() and transient.any()  # the Jaccards below compare non-empty sets
    assert s.weak_contacts_jaccard == 1.0 and s.transient_contacts_jaccard == 1.0
    assert s.md_exposed_residues > 0 and s.exposed_residues_jaccard == 1.0
    assert s.exposure_mi_spearman_rho == pytest.approx(1.0)  # replica 1's exposure flickers: MI not constant


def test_identical_ensembles_match_mdtraj_golden_values(self_scores, replicas, structure):
    """RMSF against mdtraj.rmsf, pairwise RMSD against an explicit pair loop, validity against
    mdtraj distances, on real MD frames (catches a wrong axis, a missing sqrt, a missing superposition)."""
    s, run = self_scores, replicas[0]
    rmsf = golden_rmsf_A(run, structure)
    np.testing.assert_allclose(s.md_rmsf_A, rmsf, atol=2e-3)
    np.testing.assert_allclose(s.generated_rmsf_A, rmsf, atol=2e-3)
    pairwise = golden_pairwise_rmsd_A(golden_superposed_ca_A(run, structure))
    assert s.md_pairwise_rmsd_A == pytest.approx(pairwise, abs=2e-3)
    assert s.generated_pairwise_rmsd_A == pytest.approx(pairwise, abs=2e-3)
    breaks, clashes = golden_ca_validity(run)
    assert s.ca_break_rate == pytest.approx(breaks) and s.ca_clash_rate == pytest.approx(clashes)
    assert s.ca_valid_fraction == pytest.approx(1 - golden_ca_validity_union(run))


def test_contact_sets_match_mdtraj(replicas, structure):
    """The weak/transient contact masks (pairs in np.triu_indices(N, 3) order) equal those from
    mdtraj.compute_contacts on the same frames."""
    run = replicas[1]
    weak, transient = contact_sets(
        golden_superposed_ca_A(structure, structure)[0], golden_superposed_ca_A(run, structure), 8.0
    )
    golden_weak, golden_transient, pairs = golden_contact_sets(run, structure)
    np.testing.assert_array_equal(np.stack(np.triu_indices(36, k=3), axis=1), pairs)
    np.testing.assert_array_equal(weak, golden_weak)
    np.testing.assert_array_equal(transient, golden_transient)


# ---- rigid motions ---------------------------------------------------------------------------------


def test_rigid_motion_of_the_generated_frames_changes_nothing(self_scores, replicas, structure):
    """Generated = replica 1 with every frame rotated and shifted: every score equals the identical-
    ensemble one (every metric superposes first; catches a metric on raw coordinates)."""
    moved = score_protein(group(replicas[0]), group(rigidly_moved(replicas[0], 1)), structure, FAST)
    assert_scores_close(moved, self_scores)


def test_a_rigidly_moved_replica_leaves_every_replica_row_unchanged(replicas, structure):
    """Replica 3 moved rigidly: the three "replica i vs rest" rows are unchanged, and they differ from
    one another (each scores another replica against another rest)."""
    rows = replica_rows(group(*replicas), structure, CHEAPEST)
    assert list(rows) == [replica_row(1), replica_row(2), replica_row(3)]
    moved = replica_rows(group(replicas[0], replicas[1], rigidly_moved(replicas[2], 2)), structure, CHEAPEST)
    for row in rows:
        assert_scores_close(moved[row], rows[row])
    assert rows[replica_row(1)].rmwd_A != pytest.approx(rows[replica_row(2)].rmwd_A)
    # Row 1 scores replica 1 against replicas 2 + 3 pooled: its MD RMSF is mdtraj's on those frames.
    rest = md.join([replicas[1], replicas[2]])
    np.testing.assert_allclose(rows[replica_row(1)].md_rmsf_A, golden_rmsf_A(rest, structure), atol=2e-3)


# ---- local perturbations ---------------------------------------------------------------------------


def test_a_side_chain_perturbation_changes_no_ca_metric(self_scores, replicas, structure):
    """Side-chain atoms beyond CB of one residue moved at random (1 Å per axis) in every frame: CA metrics (RMSF, RMSD,
    RMWD, PCA, contacts, validity) are exactly those of the identical ensembles (catches CA metrics
    computed on other atoms, or a superposition on all heavy atoms)."""
    run = replicas[0]
    rng = np.random.default_rng(3)
    xyz = run.xyz.astype(np.float64).copy()
    atoms = [
        a.index
        for a in run.topology.residue(DISPLACED_RESIDUE).atoms
        if a.name not in ("N", "CA", "C", "O", "CB")
    ]
    xyz[:, atoms] += 0.1 * rng.standard_normal((run.n_frames, 1, 3))
    s = score_protein(group(run), group(with_xyz(run, xyz)), structure, FAST)
    ca_only = [name for name in SCALARS if "expos" not in name]
    for name in ca_only:
        assert getattr(s, name) == pytest.approx(getattr(self_scores, name), abs=1e-4, nan_ok=True), name
    np.testing.assert_allclose(s.generated_rmsf_A, self_scores.generated_rmsf_A, atol=1e-4)


@pytest.fixture(scope="module")
def displaced(replicas) -> md.Trajectory:
    """Replica 1 with every atom of residue DISPLACED_RESIDUE shifted by 3 Å in a random direction per frame."""
    run = replicas[0]
    rng = np.random.default_rng(4)
    direction = rng.standard_normal((run.n_frames, 1, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    xyz = run.xyz.astype(np.float64).copy()
    atoms = [a.index for a in run.topology.residue(DISPLACED_RESIDUE).atoms]
    xyz[:, atoms] += 0.3 * direction
    return with_xyz(run, xyz)


def test_a_displaced_residue_changes_its_rmsf_and_only_its_contacts(replicas, structure, displaced):
    """Residue k moved 3 Å per frame: the generated RMSF is mdtraj's on the displaced frames, it grows
    at k by far more than anywhere else (the others move only through the superposition); the contact
    sets differ from MD's only in pairs involving k, and at least one such pair changes."""
    run, k = replicas[0], DISPLACED_RESIDUE
    s = score_protein(group(run), group(displaced), structure, FAST)
    gen_rmsf, md_rmsf = np.asarray(s.generated_rmsf_A), np.asarray(s.md_rmsf_A)
    np.testing.assert_allclose(gen_rmsf, golden_rmsf_A(displaced, structure), atol=2e-3)
    change = np.abs(gen_rmsf - md_rmsf)
    assert change[k] > 1.5
    assert np.delete(change, k).max() < 0.25 * change[k]

    structure_ca = golden_superposed_ca_A(structure, structure)[0]
    md_sets = contact_sets(structure_ca, golden_superposed_ca_A(run, structure), 8.0)
    gen_sets = contact_sets(structure_ca, golden_superposed_ca_A(displaced, structure), 8.0)
    i, j = np.triu_indices(36, k=3)
    involves_k = (i == k) | (j == k)
    changed = np.zeros_like(involves_k)
    for md_mask, gen_mask in zip(md_sets, gen_sets):
        changed |= md_mask != gen_mask
    assert changed.any() and not (changed & ~involves_k).any()
    # the scores' Jaccards are those of the mdtraj sets
    golden_md, golden_gen = golden_contact_sets(run, structure), golden_contact_sets(displaced, structure)
    assert s.weak_contacts_jaccard == pytest.approx(jaccard(golden_md[0], golden_gen[0]), nan_ok=True)
    assert s.transient_contacts_jaccard == pytest.approx(jaccard(golden_md[1], golden_gen[1]), nan_ok=True)
    assert s.ca_break_rate == pytest.approx(golden_ca_validity(displaced)[0])


# ---- PCA projections and figures -----------------------------------------------------------------------


def test_md_pca_projections_against_a_covariance_eigendecomposition(replicas, structure, tmp_path):
    """Projections on the top two MD PCs equal those from numpy's eigh of the MD covariance (up to the
    sign of each PC); identical generated frames land on the MD points; rigid motion changes nothing."""
    reference = group(*replicas)
    projections = md_pca_projections(reference, group(replicas[0]), structure)
    md_coords = [golden_superposed_ca_A(run, structure).reshape(run.n_frames, -1) for run in replicas]
    pooled = np.concatenate(md_coords)
    mean = pooled.mean(0)
    values, vectors = np.linalg.eigh(np.cov(pooled.T, bias=True))
    top = vectors[:, ::-1][:, :2]
    assert projections.explained_variance == pytest.approx(tuple(values[::-1][:2] / values.sum()), rel=1e-3)
    for run, golden in zip(projections.md, md_coords):
        expected = (golden - mean) @ top
        signs = np.sign(np.sum(run * expected, axis=0))
        np.testing.assert_allclose(run * signs, expected, atol=2e-2)
    np.testing.assert_allclose(projections.generated, projections.md[0], atol=1e-3)
    moved = md_pca_projections(reference, group(rigidly_moved(replicas[0], 5)), structure)
    np.testing.assert_allclose(moved.generated, projections.generated, atol=1e-3)


@pytest.fixture(scope="module")
def analysis(replicas, structure):
    """Replicas 1-3 as MD, replica 2 rigidly moved as generated."""
    return analyse_protein(
        "villin", group(*replicas), group(rigidly_moved(replicas[1], 6)), structure, CHEAPEST
    )


def test_analyse_protein_gives_every_row_and_the_pca_projections(analysis, replicas, structure):
    """The analysis evaluate draws from: the generated row, one row per replica, the MD-PC projections
    of the same frames."""
    assert list(analysis.result.rows) == ["generated", replica_row(1), replica_row(2), replica_row(3)]
    gen_rmsf = analysis.result.rows["generated"].generated_rmsf_A
    np.testing.assert_allclose(gen_rmsf, golden_rmsf_A(replicas[1], structure), atol=2e-3)
    np.testing.assert_allclose(analysis.projections.generated, analysis.projections.md[1], atol=1e-3)


@pytest.mark.slow  # matplotlib: ~1-2 s for the two figures
def test_write_figures_writes_the_rmsf_and_the_pca_figure(analysis, tmp_path):
    paths = write_figures(analysis, tmp_path / "plots")
    assert [p.name for p in paths] == ["villin_rmsf.png", "villin_pca.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
