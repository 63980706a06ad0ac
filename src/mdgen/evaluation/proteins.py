"""Protein-ensemble metrics in the style of AlphaFlow's ATLAS analysis (METHOD 7.6), a subset.

All on CA atoms (Å), after superposing every frame on the reference structure (the reference PDB):
- RMSF per residue for MD and generated, and their Pearson r per target (the global r over all
  targets' residues is computed when aggregating);
- mean pairwise CA RMSD within each ensemble (frames subsampled evenly to at most `max_frames`);
- RMWD: per CA atom the 2-Wasserstein distance between Gaussians fitted to MD and generated positions,
  W2^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2); RMWD = sqrt(mean over atoms of W2^2),
  split into its translation and variance terms;
- MD-PCA W2: PCA of MD CA coordinates; both ensembles projected on the top 2 PCs; equal-size sets
  matched one-to-one by the Hungarian algorithm; W2 = sqrt(mean matched squared distance / n_CA), so
  it reads like an RMSD in Å;
- contacts (CA-CA < `contact_cutoff_A`, |i - j| >= 3): weak contacts = reference-structure contacts
  present in < 90% of frames, transient = non-reference contacts present in > 10% of frames;
  Jaccard index of the MD and generated sets (NaN when both sets are empty).
Not implemented (stated, not stubbed): exposed-residue Jaccard (SASA), the exposure mutual-information
matrix, joint-PCA W2 and PC cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import mdtraj as md
import numpy as np
from scipy.linalg import sqrtm
from scipy.optimize import linear_sum_assignment

from mdgen.evaluation.loading import EvaluationInputError, TrajectoryGroup

_NM_TO_A = 10.0
NOT_IMPLEMENTED = (
    "exposed-residue Jaccard (SASA)",
    "exposure MI matrix",
    "joint-PCA W2",
    "PC cosine similarity",
)


@dataclass(frozen=True)
class ProteinSettings:
    max_frames: int = 500  # pairwise RMSD and PCA matching cost O(n^2) / O(n^3)
    contact_cutoff_A: float = 8.0
    seed: int = 137


@dataclass(frozen=True)
class ProteinScores:
    n_residues: int
    md_rmsf_A: tuple[float, ...]  # per residue
    generated_rmsf_A: tuple[float, ...]
    rmsf_pearson_r: float
    md_pairwise_rmsd_A: float
    generated_pairwise_rmsd_A: float
    rmwd_A: float
    rmwd_translation_A: float
    rmwd_variance_A: float
    md_pca_w2_A: float
    weak_contacts_jaccard: float
    transient_contacts_jaccard: float


def _ca_coordinates(group: TrajectoryGroup, structure: md.Trajectory, ca: np.ndarray) -> np.ndarray:
    """Superposed CA coordinates (T, n_CA, 3) Å of all trajectories of `group`."""
    parts = []
    for traj in group.trajectories:
        moved = md.Trajectory(traj.xyz.copy(), traj.topology).superpose(structure, atom_indices=ca)
        parts.append(moved.xyz[:, ca] * _NM_TO_A)
    return np.concatenate(parts)


def _even(coords: np.ndarray, limit: int) -> np.ndarray:
    return coords[np.linspace(0, len(coords) - 1, min(limit, len(coords))).astype(int)]


def _rmsf(coords: np.ndarray) -> np.ndarray:
    return np.sqrt(((coords - coords.mean(0)) ** 2).sum(-1).mean(0))


def mean_pairwise_rmsd(coords: np.ndarray) -> float:
    """Mean RMSD over frame pairs of already superposed coordinates (T, N, 3)."""
    flat = coords.reshape(len(coords), -1)
    squared = (flat**2).sum(1)
    distances = np.clip(squared[:, None] + squared[None] - 2 * flat @ flat.T, 0, None) / coords.shape[1]
    i, j = np.triu_indices(len(coords), k=1)
    return float(np.sqrt(distances[i, j]).mean())


def rmwd(md_coords: np.ndarray, gen_coords: np.ndarray) -> tuple[float, float, float]:
    translation, variance = [], []
    for a in range(md_coords.shape[1]):
        mu1, mu2 = md_coords[:, a].mean(0), gen_coords[:, a].mean(0)
        s1, s2 = np.cov(md_coords[:, a].T), np.cov(gen_coords[:, a].T)
        root = sqrtm(s2)
        cross = np.real(sqrtm(root @ s1 @ root))
        translation.append(((mu1 - mu2) ** 2).sum())
        variance.append(max(np.trace(s1 + s2 - 2 * cross), 0.0))
    translation, variance = np.asarray(translation), np.asarray(variance)
    return (
        float(np.sqrt((translation + variance).mean())),
        float(np.sqrt(translation.mean())),
        float(np.sqrt(variance.mean())),
    )


def pca_w2(md_coords: np.ndarray, gen_coords: np.ndarray, rng: np.random.Generator) -> float:
    md_flat = md_coords.reshape(len(md_coords), -1)
    mean = md_flat.mean(0)
    _, _, components = np.linalg.svd(md_flat - mean, full_matrices=False)
    project = lambda coords: (coords.reshape(len(coords), -1) - mean) @ components[:2].T  # noqa: E731
    n = min(len(md_coords), len(gen_coords))
    a = project(md_coords[rng.choice(len(md_coords), n, replace=False)])
    b = project(gen_coords[rng.choice(len(gen_coords), n, replace=False)])
    cost = ((a[:, None] - b[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean() / md_coords.shape[1]))


def _contact_probability(
    coords: np.ndarray, cutoff: float, pairs: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    i, j = pairs
    return (np.linalg.norm(coords[:, i] - coords[:, j], axis=-1) < cutoff).mean(0)


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.sum(a | b)
    return float(np.sum(a & b) / union) if union else float("nan")


def score_protein(
    reference: TrajectoryGroup,
    generated: TrajectoryGroup,
    structure: md.Trajectory,
    settings: ProteinSettings,
) -> ProteinScores:
    """Both groups and the one-frame `structure` must share one topology (see `loading.match_groups`)."""
    ca = np.asarray([atom.index for atom in structure.topology.atoms if atom.name == "CA"])
    if len(ca) < 3:
        raise EvaluationInputError(f"{reference.source}: needs at least 3 CA atoms, has {len(ca)}")
    rng = np.random.default_rng(settings.seed)
    md_coords = _ca_coordinates(reference, structure, ca)
    gen_coords = _ca_coordinates(generated, structure, ca)
    md_rmsf, gen_rmsf = _rmsf(md_coords), _rmsf(gen_coords)
    md_sample, gen_sample = _even(md_coords, settings.max_frames), _even(gen_coords, settings.max_frames)
    rmwd_total, rmwd_translation, rmwd_variance = rmwd(md_coords, gen_coords)

    pairs = np.triu_indices(len(ca), k=3)
    crystal = _contact_probability(structure.xyz[:, ca] * _NM_TO_A, settings.contact_cutoff_A, pairs) > 0.5
    md_prob = _contact_probability(md_coords, settings.contact_cutoff_A, pairs)
    gen_prob = _contact_probability(gen_coords, settings.contact_cutoff_A, pairs)
    weak = lambda p: crystal & (p < 0.9)  # noqa: E731
    transient = lambda p: ~crystal & (p > 0.1)  # noqa: E731
    return ProteinScores(
        n_residues=len(ca),
        md_rmsf_A=tuple(md_rmsf.tolist()),
        generated_rmsf_A=tuple(gen_rmsf.tolist()),
        rmsf_pearson_r=float(np.corrcoef(md_rmsf, gen_rmsf)[0, 1]),
        md_pairwise_rmsd_A=mean_pairwise_rmsd(md_sample),
        generated_pairwise_rmsd_A=mean_pairwise_rmsd(gen_sample),
        rmwd_A=rmwd_total,
        rmwd_translation_A=rmwd_translation,
        rmwd_variance_A=rmwd_variance,
        md_pca_w2_A=pca_w2(md_sample, gen_sample, rng),
        weak_contacts_jaccard=_jaccard(weak(md_prob), weak(gen_prob)),
        transient_contacts_jaccard=_jaccard(transient(md_prob), transient(gen_prob)),
    )


@dataclass(frozen=True)
class ProteinPeptideResult:
    name: str
    rows: dict[str, ProteinScores]  # one row, "generated"

    @property
    def scores(self) -> ProteinScores:
        return self.rows["generated"]
