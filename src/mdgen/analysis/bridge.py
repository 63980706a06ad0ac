"""Markov-bridge paths: an MSM's trajectories conditioned to start in `start` and end in `end`.

For a transition matrix T (active-index space), a path x_0..x_{N-1} of N states has bridge probability

    P(x | x_0 = start, x_{N-1} = end) = prod_k T[x_k, x_{k+1}] / (T^{N-1})[start, end]

and zero when it starts or ends elsewhere or uses a forbidden transition; summed over all paths it is 1.
Sampling draws x_{k+1} given x_k = i with P(j | i) = T_ij (T^{r-1})_{j,end} / (T^r)_{i,end}, r = transitions left.
Both endpoints are explicit arguments (the original took the end state from the first path of a batch).
Index -1 (a label outside the active set) makes a path impossible.
"""

from __future__ import annotations

import numpy as np


def _hitting_columns(transition_matrix: np.ndarray, end: int, n_transitions: int) -> np.ndarray:
    """(T^m)[:, end] for m = 0..n_transitions, shape (n_transitions + 1, n)."""
    columns = np.zeros((n_transitions + 1, transition_matrix.shape[0]))
    columns[0, end] = 1.0
    for m in range(1, n_transitions + 1):
        columns[m] = transition_matrix @ columns[m - 1]
    return columns


def _check_endpoints(transition_matrix: np.ndarray, start: int, end: int, length: int) -> np.ndarray:
    n = transition_matrix.shape[0]
    if not (0 <= start < n and 0 <= end < n):
        raise ValueError(f"start {start} / end {end} are not active indices of a {n}-state MSM")
    if length < 2:
        raise ValueError(f"a path needs at least 2 states, got {length}")
    columns = _hitting_columns(transition_matrix, end, length - 1)
    if columns[length - 1, start] <= 0:
        raise ValueError(f"the MSM cannot go from {start} to {end} in {length - 1} steps")
    return columns


def sample_bridge_paths(
    transition_matrix: np.ndarray, start: int, end: int, length: int, n_paths: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_paths, length) active indices, each path starting at `start` and ending at `end`."""
    columns = _check_endpoints(transition_matrix, start, end, length)
    paths = np.empty((n_paths, length), dtype=np.int64)
    paths[:, 0] = start
    for k in range(length - 1):
        remaining = length - 1 - k
        current = paths[:, k]
        weights = transition_matrix[current] * columns[remaining - 1][None, :]  # (P, n)
        probabilities = weights / weights.sum(axis=1, keepdims=True)
        cumulative = np.cumsum(probabilities, axis=1)
        draws = rng.random((n_paths, 1)) * cumulative[:, -1:]
        paths[:, k + 1] = np.minimum((cumulative < draws).sum(axis=1), transition_matrix.shape[0] - 1)
    return paths


def bridge_likelihood(transition_matrix: np.ndarray, paths: np.ndarray, start: int, end: int) -> np.ndarray:
    """Bridge probability (P,) of each path (P, N) of active indices; 0 for impossible paths."""
    paths = np.asarray(paths, dtype=np.int64)
    length = paths.shape[1]
    columns = _check_endpoints(transition_matrix, start, end, length)
    feasible = np.all(paths >= 0, axis=1) & (paths[:, 0] == start) & (paths[:, -1] == end)
    safe = np.where(paths >= 0, paths, 0)
    steps = transition_matrix[safe[:, :-1], safe[:, 1:]]  # (P, N-1)
    return np.where(feasible, steps.prod(axis=1) / columns[length - 1, start], 0.0)


def select_transition(flux: np.ndarray, rarest: bool, min_flux: float = 1e-7) -> tuple[int, int]:
    """Off-diagonal (i, j) with the smallest flux above `min_flux` (rarest) or the largest flux.

    `flux` is pi_i T_ij (see `DiscreteMSM.flux`), so indices are active indices of that MSM.
    """
    off_diagonal = flux.copy()
    np.fill_diagonal(off_diagonal, 0.0)
    candidates = np.argwhere(off_diagonal > min_flux)
    if len(candidates) == 0:
        raise ValueError(f"no transition with flux above {min_flux}")
    values = off_diagonal[candidates[:, 0], candidates[:, 1]]
    i, j = candidates[np.argmin(values) if rarest else np.argmax(values)]
    return int(i), int(j)
