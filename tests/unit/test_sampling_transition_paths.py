"""Transition end points: flux pi_i T_ij in active-index space, mapped to state labels; seeded draws."""

import numpy as np
import pytest

from mdgen.analysis.msm import DiscreteMSM
from mdgen.sampling.transition_paths import HIGHEST_FLUX, LOWEST_FLUX, endpoints_from_states, pick_state_pair


def three_active_of_four_labels() -> DiscreteMSM:
    # Label 1 is outside the active set: active indices 0, 1, 2 are labels 0, 2, 3.
    transition = np.array([[0.90, 0.09, 0.01], [0.10, 0.80, 0.10], [0.02, 0.18, 0.80]])
    stationary = np.array([0.5, 0.3, 0.2])
    return DiscreteMSM(transition, stationary, active_labels=np.array([0, 2, 3]), n_labels=4, lag_frames=1)


def test_state_pair_uses_pi_i_t_ij_and_returns_labels():
    msm = three_active_of_four_labels()
    # flux: (0,1) .045 (0,2) .005 (1,0) .03 (1,2) .03 (2,0) .004 (2,1) .036
    assert pick_state_pair(msm, LOWEST_FLUX)[:2] == (3, 0)  # active (2, 0) -> labels (3, 0)
    start, end, flux = pick_state_pair(msm, HIGHEST_FLUX)
    assert (start, end) == (0, 2) and flux == pytest.approx(0.5 * 0.09)
    with pytest.raises(ValueError, match="transition='rare'"):
        pick_state_pair(msm, "rare")


def test_endpoints_lie_in_their_states_and_path_i_does_not_depend_on_the_count():
    states = np.array([0, 3, 3, -1, 0, 2, 3, 0])
    few = endpoints_from_states(states, start_state=3, end_state=0, num_paths=2, base_seed=5)
    many = endpoints_from_states(states, start_state=3, end_state=0, num_paths=6, base_seed=5)
    assert few == many[:2]
    for endpoints in many:
        assert states[endpoints.start_frame] == 3 and states[endpoints.end_frame] == 0
    with pytest.raises(ValueError, match="no reference frame in state 2"):
        endpoints_from_states(np.array([0, 0]), start_state=0, end_state=2, num_paths=1, base_seed=0)
