"""Kills of run-3 survivors in analysis.validity and interpolant.ode_solvers (see
experiments/tests/run3_survivors_validity_solvers.md). Each test names the bug it catches."""

import math

import mdtraj as md
import numpy as np
import pytest
import torch

from eval_peptide import peptide_frame
from mdgen.analysis.loading import EvaluationInputError
from mdgen.analysis.validity import frame_failures, measure_covalent_geometry, validity_scores
from mdgen.interpolant.ode_solvers import solve_ode, time_grid
from mdgen.interpolant.probability_paths import masked_mse
from mdgen.sampling.modes import IncompatibleTaskError
from mdgen.sampling.upsampling import UpsamplingLayout
from mdgen.tasks import TaskSpec


def _traj(topology: md.Topology, positions_A) -> md.Trajectory:
    return md.Trajectory(
        (np.asarray(positions_A, dtype=np.float64)[None] / 10.0).astype(np.float32), topology
    )


def _topology(residues: list[list[str]], bonds: list[tuple[int, int]], names=None) -> md.Topology:
    """One chain; residues given as lists of atom names whose first letter is the element."""
    topology = md.Topology()
    chain = topology.add_chain()
    atoms = []
    for k, atom_names in enumerate(residues):
        residue = topology.add_residue((names or ["ALA"] * len(residues))[k], chain)
        atoms += [topology.add_atom(a, md.element.get_by_symbol(a[0]), residue) for a in atom_names]
    for a, b in bonds:
        topology.add_bond(atoms[a], atoms[b])
    return topology


def test_dummy_unit_cell_does_not_change_validity(tmp_path):
    """A PDB's dummy CRYST1 box (1 Å) must not wrap distances. Catches `periodic=True` / the periodic
    argument dropped (mdtraj's default is True) in any compute_distances/compute_angles call."""
    frame = peptide_frame(tmp_path)
    boxed = md.Trajectory(frame.xyz.copy(), frame.topology)
    boxed.unitcell_vectors = np.eye(3, dtype=np.float32)[None] * 0.1
    reference = measure_covalent_geometry(frame)
    from_boxed = measure_covalent_geometry(boxed)
    np.testing.assert_allclose(from_boxed.ideal_lengths_A, reference.ideal_lengths_A, rtol=1e-5)
    np.testing.assert_allclose(from_boxed.ideal_angles_deg, reference.ideal_angles_deg, atol=1e-3)
    assert not any(flags[0] for flags in frame_failures(boxed).values())
    scores = validity_scores(boxed, reference)
    assert scores.valid_fraction == 1.0
    assert scores.bond_length_deviation_A == pytest.approx(0.0, abs=1e-5)
    assert scores.bond_angle_deviation_deg == pytest.approx(0.0, abs=1e-3)


def test_every_bond_angle_once_and_clean_frame_has_zero_angle_deviation(tmp_path):
    """Angles = sum over atoms of C(degree, 2), each unordered neighbour pair once; a frame scored
    against itself deviates by 0 degrees. Catches `i - 1`/`i + 2` in the neighbour-pair loop, `+` for
    `-` in the angle deviation, the deviation or n_frames replaced by None."""
    frame = peptide_frame(tmp_path)
    degree = np.zeros(frame.n_atoms, dtype=int)
    for a, b in frame.topology.bonds:
        degree[a.index] += 1
        degree[b.index] += 1
    geometry = measure_covalent_geometry(frame)
    assert len(geometry.angles) == int((degree * (degree - 1) // 2).sum())
    assert len({(min(a, b), c, max(a, b)) for a, c, b in geometry.angles}) == len(geometry.angles)
    scores = validity_scores(md.join([frame, frame]), geometry)
    assert scores.n_frames == 2
    assert scores.bond_angle_deviation_deg == pytest.approx(0.0, abs=1e-3)


def test_a_chain_break_alone_makes_a_frame_invalid():
    """Backbone dipeptide with CA-CA 3.0 Å (before ALA: break), C-N 1.33 Å, no clash: invalid.
    Catches `ca_break & cn_break | clash` (a frame invalid only when both links break)."""
    topology = _topology([["N", "CA", "C"], ["N", "CA", "C"]], [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)])
    c1 = np.array([1.0, 0.5, 0.0])
    positions = [(-1.0, 1.0, 0.0), (0, 0, 0), c1, c1 + (0, 0, 1.33), (3.0, 0, 0), (4.5, -0.5, 0)]
    traj = _traj(topology, positions)
    scores = validity_scores(traj, measure_covalent_geometry(traj))
    assert (scores.ca_break_rate, scores.cn_break_rate, scores.clash_rate) == (1.0, 0.0, 0.0)
    assert scores.valid_fraction == 0.0


def test_one_bond_topology_has_no_angles_and_is_valid():
    """C-N plus a lone O 10 Å away, one residue, one bond (3 atoms: scipy's csgraph refuses a 2x2 COO
    graph, a quirk irrelevant to proteins): accepted, no angles (deviation NaN), no chain link to break.
    Catches `len(bonds) == 1` refusal, the no-angle fallback `np.zeros(None)`/`(1, 1)`, NaN replaced by
    None or an unparsable string, and a phantom (T, 1) zero C-N distance when there is no C-N link."""
    traj = _traj(_topology([["C", "N", "O"]], [(0, 1)]), [(0, 0, 0), (1.33, 0, 0), (10.0, 0, 0)])
    geometry = measure_covalent_geometry(traj)
    assert geometry.angles.shape == (0, 3) and geometry.ideal_angles_deg.shape == (0,)
    scores = validity_scores(traj, geometry)
    assert scores.n_frames == 1 and scores.valid_fraction == 1.0
    assert scores.ca_break_rate == scores.cn_break_rate == 0.0
    assert math.isnan(scores.bond_angle_deviation_deg)


def test_topology_without_bonds_is_refused_with_the_reason():
    """Catches the no-bond refusal skipped (`len(bonds) == 1`) or its text replaced by None."""
    traj = _traj(_topology([["C", "N"]], []), [(0, 0, 0), (1.33, 0, 0)])
    with pytest.raises(EvaluationInputError, match="no bonds"):
        measure_covalent_geometry(traj)


def test_missing_backbone_atoms_are_named_not_a_key_error():
    """Two residues of a lone N each: one-line input error naming the missing atoms. Catches
    `missing = None` (then a bare KeyError) and the message replaced by None."""
    traj = _traj(_topology([["N"], ["N"]], [(0, 1)]), [(0, 0, 0), (1.4, 0, 0)])
    with pytest.raises(EvaluationInputError, match=r"lack backbone atoms \['CA', 'C', 'CA'\]"):
        frame_failures(traj)


def test_unknown_element_is_named():
    """Catches the 'no Bondi radius' message replaced by None."""
    traj = _traj(_topology([["C", "C", "H"]], [(0, 1), (1, 2)]), [(0, 0, 0), (1.5, 0, 0), (1.5, 1.1, 0)])
    with pytest.raises(EvaluationInputError, match="no Bondi radius for element 'H'"):
        frame_failures(traj)


def test_clash_between_atoms_with_consecutive_indices():
    """Chain bonded in index order 0-2-3-4-1: atoms 0 and 1 are four bonds apart, 2.5 Å < 3.0 Å: a
    clash. Catches `np.triu_indices(n, k=2)` (pairs of neighbouring indices never checked)."""
    topology = _topology([["C0", "C1", "C2", "C3", "C4"]], [(0, 2), (2, 3), (3, 4), (4, 1)])
    positions = [(0, 0, 0), (0, 0, 2.5), (1.5, 0, 0), (3.0, 0, 0), (3.0, 0, 1.5)]
    assert frame_failures(_traj(topology, positions))["clash"][0]


def test_smallest_fixed_grid_is_one_step_and_smaller_is_refused():
    """Euler with 2 grid points and v = 1 from 0 to t1 = 2: one step, x1 = 2 (grid reaches t1).
    Catches `num_steps <= 2` / `< 3`, time_grid called without t1 (stops at 1), the refusal's text None."""
    x0 = torch.zeros(3, 1, dtype=torch.float64)
    solution = solve_ode(lambda t, x: torch.ones_like(x), x0, method="euler", num_steps=2, t1=2.0)
    assert solution.nfe == 1 and torch.allclose(solution.x1, torch.full_like(x0, 2.0))
    with pytest.raises(ValueError, match="num_steps must be >= 2"):
        solve_ode(lambda t, x: torch.ones_like(x), x0, method="euler", num_steps=1)


def test_fixed_grid_follows_the_state_dtype_and_default_is_50_points():
    """Euler, default grid, v = t: x1 = sum_k (1/49)(k/49) = 24/49 in float32 and 49 evaluations.
    Catches the grid's `.to(dtype=...)` dropped (float64 result from float32 state), default 51 points."""
    x0 = torch.zeros(2, dtype=torch.float32)
    solution = solve_ode(lambda t, x: t.to(x.dtype), x0, method="euler")
    assert solution.x1.dtype == torch.float32 and solution.nfe == 49
    assert torch.allclose(solution.x1, torch.full_like(x0, 24 / 49), atol=1e-6)


def test_adaptive_defaults_method_and_tolerances_are_used():
    """v = -x from 1: the default call is dopri5 with atol 1e-6, rtol 1e-3 (same work as spelled out),
    bosh3 does different work, a tighter atol costs more evaluations. Catches a broken default method
    name, default atol/rtol near 1, the method or atol not passed to torchdiffeq."""
    x0 = torch.ones(2, dtype=torch.float64)
    decay = lambda t, x: -x  # noqa: E731
    default = solve_ode(decay, x0)
    assert default.nfe == solve_ode(decay, x0, method="dopri5", atol=1e-6, rtol=1e-3).nfe
    assert torch.allclose(default.x1, torch.full_like(x0, math.exp(-1.0)), rtol=1e-3)
    assert solve_ode(decay, x0, method="bosh3").nfe != default.nfe
    loose = solve_ode(decay, x0, atol=1e-2, rtol=1e-12).nfe
    assert solve_ode(decay, x0, atol=1e-8, rtol=1e-12).nfe > loose


def test_time_grid_default_is_uniform_and_starts_at_t0():
    """Catches the default grid_power 2 and `t1 + t0` for `t1 - t0` (any grid not starting at 0)."""
    assert time_grid(3).tolist() == [0.0, 0.5, 1.0]
    assert time_grid(3, 1.0, 1.0, 2.0).tolist() == [1.0, 1.5, 2.0]


def test_masked_mse_divides_by_fractional_weights():
    """Weights (documented) summing to 0.5: error 2^2 * 0.5 / 0.5 = 4, and an empty mask gives 0.
    Catches the denominator floor 1e-8 raised to ~1 (which would give 2.0)."""
    pred = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    mask = torch.tensor([[0.5, 0.0], [0.0, 0.0]])
    assert masked_mse(pred, torch.zeros_like(pred), mask).tolist() == [4.0, 0.0]


def test_upsampling_refusals_name_the_problem():
    """Catches the texts of 'not an upsampling task' and 'at least 2 coarse frames' replaced by None."""
    forward = TaskSpec(name="fwd", num_frames=11, frame_interval_ps=1.0, cond_frames=(0,))
    with pytest.raises(
        IncompatibleTaskError, match="task 'fwd' has no cond_interval; it is not an upsampling"
    ):
        UpsamplingLayout.from_task(forward)
    layout = UpsamplingLayout(cond_interval=5, window_frames=11, intervals_per_window=2)
    with pytest.raises(ValueError, match="at least 2 coarse frames, got 1"):
        layout.windows(num_coarse_frames=1)
