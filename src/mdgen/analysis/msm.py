"""Reference kinetic model: TICA -> k-means -> MSM -> PCCA+ metastable states (deeptime), and discretisation.

Built on the reference MD only (METHOD 7.1), then applied to any trajectory:
frame -> cos/sin torsions -> TICA (kinetic map, components kept up to `var_cutoff` of the kinetic
variance) -> nearest k-means centre -> metastable state.

Index spaces are kept apart on purpose (the original mixed them, METHOD 8.1):
- *cluster labels* 0..k-1 (k-means), *state labels* 0..n_states-1 (PCCA+ on the MSM's active set);
- an MSM's *active indices* 0..n_active-1 enumerate the largest connected set; `DiscreteMSM.active_labels`
  maps active index -> label and `to_active` maps back, giving -1 for labels outside the active set.
Clusters outside the reference MSM's active set have no metastable state: frames there get state
`UNASSIGNED` (-1) and are counted in their own population bin, never silently moved to another state.

Short references cannot support 100 clusters / 10 states: k is capped at n_frames // min_frames_per_cluster
and the state count at n_active // min_clusters_per_state; each reduction is recorded in `notes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from deeptime.clustering import KMeans
from deeptime.decomposition import TICA
from deeptime.markov import TransitionCountEstimator, pcca
from deeptime.markov.msm import MaximumLikelihoodMSM

from mdgen.analysis.features import TorsionDefinitions, cos_sin, torsion_angles, torsion_definitions
from mdgen.analysis.loading import EvaluationInputError, TrajectoryGroup
from mdgen.timesteps import frames_per_interval

UNASSIGNED = -1


@dataclass(frozen=True)
class StateModelSettings:
    tica_lag_ps: float = 100.0
    msm_lag_ps: float = 100.0
    var_cutoff: float = 0.95
    n_clusters: int = 100
    n_metastable: int = 10
    kmeans_max_iter: int = 100
    seed: int = 137
    min_frames_per_cluster: int = 20  # caps k on short references
    min_clusters_per_state: int = 3  # caps the PCCA+ state count on small active sets


@dataclass(frozen=True)
class DiscreteMSM:
    """Maximum-likelihood reversible MSM on the largest connected set of a label sequence."""

    transition_matrix: np.ndarray  # (n_active, n_active) row-stochastic, active-index space
    stationary: np.ndarray  # (n_active,)
    active_labels: np.ndarray  # (n_active,) label of each active index
    n_labels: int  # size of the label space the MSM was estimated on
    lag_frames: int

    def to_active(self, labels: np.ndarray) -> np.ndarray:
        """Labels -> active indices; labels outside the active set (or UNASSIGNED) -> -1."""
        lookup = np.full(self.n_labels + 1, -1, dtype=np.int64)  # last slot catches UNASSIGNED
        lookup[self.active_labels] = np.arange(len(self.active_labels))
        labels = np.asarray(labels, dtype=np.int64)
        return lookup[np.where(labels < 0, self.n_labels, labels)]

    def flux(self) -> np.ndarray:
        """Equilibrium flux F_ij = pi_i T_ij (n_active, n_active): probability of the transition i -> j per lag."""
        return self.stationary[:, None] * self.transition_matrix

    def flux_in_label_space(self) -> np.ndarray:
        """Flux embedded in the full label space (n_labels, n_labels); zero for inactive labels."""
        full = np.zeros((self.n_labels, self.n_labels))
        full[np.ix_(self.active_labels, self.active_labels)] = self.flux()
        return full


def split_at_unassigned(labels: np.ndarray) -> list[np.ndarray]:
    """Cut a label sequence at UNASSIGNED frames so no transition count spans them."""
    labels = np.asarray(labels, dtype=np.int64)
    cuts = np.flatnonzero(labels == UNASSIGNED)
    pieces = np.split(labels, cuts)
    return [piece[piece != UNASSIGNED] for piece in pieces if np.any(piece != UNASSIGNED)]


def estimate_msm(label_trajectories: Sequence[np.ndarray], lag_frames: int, n_labels: int) -> DiscreteMSM:
    """Reversible ML MSM at `lag_frames` (sliding counts, largest connected set); UNASSIGNED frames split runs."""
    pieces = [piece for labels in label_trajectories for piece in split_at_unassigned(labels)]
    pieces = [piece for piece in pieces if len(piece) > lag_frames]
    if not pieces:
        raise EvaluationInputError(
            f"no run of assigned frames is longer than the MSM lag of {lag_frames} frames"
        )
    counts = TransitionCountEstimator(lagtime=lag_frames, count_mode="sliding", n_states=n_labels).fit(pieces)
    active_counts = counts.fetch_model().submodel_largest(directed=True)
    msm = MaximumLikelihoodMSM(reversible=True).fit(active_counts).fetch_model()
    return DiscreteMSM(
        transition_matrix=np.asarray(msm.transition_matrix, dtype=np.float64),
        stationary=np.asarray(msm.stationary_distribution, dtype=np.float64),
        active_labels=np.asarray(active_counts.state_symbols, dtype=np.int64),
        n_labels=n_labels,
        lag_frames=lag_frames,
    )


@dataclass(frozen=True)
class ReferenceStateModel:
    """TICA + k-means + MSM + PCCA+ fitted on one reference; `states()` discretises any trajectory."""

    tica_mean: np.ndarray  # (2F,) feature mean
    tica_projection: np.ndarray  # (2F, D) all components, kinetic-map scaled
    n_kept_components: int  # components within var_cutoff, used for clustering
    cluster_centers: np.ndarray  # (k, n_kept_components)
    cluster_msm: DiscreteMSM  # on cluster labels
    cluster_to_state: np.ndarray  # (k,) state label, UNASSIGNED outside the active set
    n_states: int
    state_msm: DiscreteMSM  # coarse MSM on reference state labels (for paths)
    timestep_ps: float
    notes: tuple[str, ...]  # every deviation from the requested settings, for the report

    def project(self, features: np.ndarray) -> np.ndarray:
        """cos/sin features (T, 2F) -> all TICA components (T, D)."""
        return (features - self.tica_mean) @ self.tica_projection

    def clusters(self, features: np.ndarray) -> np.ndarray:
        """Nearest k-means centre (T,) in the kept TICA space."""
        projected = self.project(features)[:, : self.n_kept_components]
        distances = ((projected[:, None, :] - self.cluster_centers[None]) ** 2).sum(-1)
        return np.argmin(distances, axis=1)

    def states(self, features: np.ndarray) -> np.ndarray:
        """Metastable state label (T,), UNASSIGNED for clusters outside the reference MSM's active set."""
        return self.cluster_to_state[self.clusters(features)]

    def populations(self, states: np.ndarray) -> np.ndarray:
        """Occupancy counts (n_states + 1,): states 0..n-1, then the UNASSIGNED bin."""
        states = np.asarray(states)
        return np.bincount(np.where(states == UNASSIGNED, self.n_states, states), minlength=self.n_states + 1)


def _fit_tica(features: np.ndarray, lag_frames: int, var_cutoff: float) -> tuple[np.ndarray, np.ndarray, int]:
    model = TICA(lagtime=lag_frames, scaling="kinetic_map").fit(features).fetch_model()
    n_all = model.output_dimension
    probe = np.eye(features.shape[1])
    mean = features.mean(axis=0)
    # TICA is affine: recover (mean, matrix) so projection does not depend on deeptime objects later
    offset = model.transform(mean[None])[0]
    matrix = model.transform(probe + mean[None]) - offset[None]
    n_kept = int(np.searchsorted(model.cumulative_kinetic_variance, var_cutoff) + 1)
    return mean, matrix[:, :n_all], min(n_kept, n_all)


def fit_reference_state_model(
    features: np.ndarray, timestep_ps: float, settings: StateModelSettings, source: str
) -> ReferenceStateModel:
    """Fit on reference cos/sin features (T, 2F) sampled every `timestep_ps` (`source` names it in errors)."""
    tica_lag_frames = frames_per_interval(settings.tica_lag_ps, timestep_ps, source, "tica_lag_ps")
    msm_lag_frames = frames_per_interval(settings.msm_lag_ps, timestep_ps, source, "msm_lag_ps")
    notes = []
    n_frames = len(features)
    longest_lag = max(tica_lag_frames, msm_lag_frames)
    if n_frames <= longest_lag * 4:
        raise EvaluationInputError(
            f"{source}: {n_frames} frames are too short for lags of {longest_lag} frames (TICA lag "
            f"{tica_lag_frames}, MSM lag {msm_lag_frames}; more than 4 x the longer one needed)"
        )
    mean, matrix, n_kept = _fit_tica(features, tica_lag_frames, settings.var_cutoff)
    projected = ((features - mean) @ matrix)[:, :n_kept]

    n_clusters = min(settings.n_clusters, max(2, n_frames // settings.min_frames_per_cluster))
    if n_clusters < settings.n_clusters:
        notes.append(
            f"k-means: {n_clusters} clusters instead of {settings.n_clusters} "
            f"({n_frames} reference frames, at least {settings.min_frames_per_cluster} per cluster)"
        )
    kmeans = (
        KMeans(
            n_clusters=n_clusters,
            max_iter=settings.kmeans_max_iter,
            init_strategy="kmeans++",
            fixed_seed=settings.seed,
            n_jobs=1,
        )
        .fit(projected.astype(np.float64))
        .fetch_model()
    )
    centers = np.asarray(kmeans.cluster_centers, dtype=np.float64)
    cluster_labels = kmeans.transform(projected.astype(np.float64)).astype(np.int64)

    cluster_msm = estimate_msm([cluster_labels], msm_lag_frames, n_clusters)
    n_active = len(cluster_msm.active_labels)
    if n_active < n_clusters:
        inactive_frames = np.isin(cluster_labels, cluster_msm.active_labels, invert=True).mean()
        notes.append(
            f"MSM active set: {n_active} of {n_clusters} clusters; {inactive_frames:.1%} of reference frames "
            "fall outside it and are counted as 'unassigned'"
        )
    n_states = min(settings.n_metastable, max(2, n_active // settings.min_clusters_per_state))
    if n_active < 2:
        raise EvaluationInputError(
            f"{source}: the reference MSM has fewer than 2 connected clusters; cannot define metastable states"
        )
    if n_states < settings.n_metastable:
        notes.append(
            f"PCCA+: {n_states} metastable states instead of {settings.n_metastable} ({n_active} active clusters)"
        )
    pcca = _pcca(cluster_msm, n_states)
    cluster_to_state = np.full(n_clusters, UNASSIGNED, dtype=np.int64)
    cluster_to_state[cluster_msm.active_labels] = pcca
    empty = n_states - len(np.unique(pcca))
    if empty:
        notes.append(f"PCCA+: {empty} of {n_states} metastable states received no cluster (crisp assignment)")

    reference_states = cluster_to_state[cluster_labels]
    state_msm = estimate_msm([reference_states], msm_lag_frames, n_states)
    return ReferenceStateModel(
        tica_mean=mean,
        tica_projection=matrix,
        n_kept_components=n_kept,
        cluster_centers=centers,
        cluster_msm=cluster_msm,
        cluster_to_state=cluster_to_state,
        n_states=n_states,
        state_msm=state_msm,
        timestep_ps=timestep_ps,
        notes=tuple(notes),
    )


def _pcca(msm: DiscreteMSM, n_states: int) -> np.ndarray:
    """Crisp PCCA+ assignment (n_active,) of the active clusters."""
    model = pcca(msm.transition_matrix, n_states, stationary_distribution=msm.stationary)
    return np.asarray(model.assignments, dtype=np.int64)


def reference_state_model(
    reference: TrajectoryGroup, settings: StateModelSettings
) -> tuple[TorsionDefinitions, ReferenceStateModel]:
    """Torsion definitions of the reference topology and the state model fitted on all its trajectories."""
    definitions = torsion_definitions(reference.trajectories[0].topology)
    features = cos_sin(np.concatenate([torsion_angles(traj, definitions) for traj in reference.trajectories]))
    return definitions, fit_reference_state_model(features, reference.timestep_ps, settings, reference.source)
