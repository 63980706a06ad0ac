"""Interpolation / transition paths (METHOD 6.2): T-frame trajectories between a start and an end frame.

End points are either two given frames of a reference trajectory, or frames drawn from two metastable
states of a reference MSM (`mdgen.analysis.msm`): the pair with the lowest or highest equilibrium
flux F_ij = pi_i T_ij of the coarse state MSM (the original used T_ij pi_j). Flux indices are the state
MSM's *active* indices and are mapped to state *labels* (`DiscreteMSM.active_labels`) before frames are
looked up, so inactive states never shift the lookup (the original mixed the two index spaces).

Path i draws its end frames with `numpy.random.default_rng(base_seed + i)` and its noise as described
in `mdgen.sampling.engine`, so re-running regenerates exactly the missing paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mdgen.sample_files import PATHS_SUFFIX, PathRecord, PathsManifest, TransitionChoice
from mdgen.sampling.engine import WindowSampler, noise_seed, output_groups
from mdgen.sampling.report import OutputReport, window_outputs_report
from mdgen.sampling.writer import TrajectoryOutput, write_json
from mdgen.trajectory_files import Trajectory

LOWEST_FLUX, HIGHEST_FLUX = "lowest_flux", "highest_flux"
TRANSITIONS = (LOWEST_FLUX, HIGHEST_FLUX)


@dataclass(frozen=True)
class PathEndpoints:
    index: int  # path number i
    start_frame: int  # frame of the reference trajectory
    end_frame: int
    start_state: int | None  # metastable state label (None when frames were given)
    end_state: int | None


def endpoints_from_frames(num_paths: int, start_frame: int, end_frame: int) -> list[PathEndpoints]:
    return [PathEndpoints(i, start_frame, end_frame, None, None) for i in range(num_paths)]


def endpoints_from_states(
    reference_states: np.ndarray, start_state: int, end_state: int, num_paths: int, base_seed: int
) -> list[PathEndpoints]:
    """Path i: a uniformly drawn frame of each state, from `default_rng(base_seed + i)`.

    reference_states (N,) state label of every reference frame.
    """
    starts = np.flatnonzero(reference_states == start_state)
    ends = np.flatnonzero(reference_states == end_state)
    if len(starts) == 0 or len(ends) == 0:
        raise ValueError(f"no reference frame in state {start_state if len(starts) == 0 else end_state}")
    endpoints = []
    for i in range(num_paths):
        rng = np.random.default_rng(base_seed + i)
        endpoints.append(
            PathEndpoints(i, int(rng.choice(starts)), int(rng.choice(ends)), start_state, end_state)
        )
    return endpoints


def pick_state_pair(state_msm, selection: str) -> tuple[int, int, float]:
    """(start label, end label, flux) of the off-diagonal pair with the lowest/highest flux pi_i T_ij.

    state_msm: `mdgen.analysis.msm.DiscreteMSM`; its flux matrix is indexed by active indices, which
    are mapped to state labels here.
    """
    from mdgen.analysis.bridge import select_transition

    if selection not in TRANSITIONS:
        raise ValueError(f"transition={selection!r} is not one of {TRANSITIONS}")
    flux = state_msm.flux()  # (n_active, n_active)
    i, j = select_transition(flux, rarest=selection == LOWEST_FLUX)
    return int(state_msm.active_labels[i]), int(state_msm.active_labels[j]), float(flux[i, j])


def choose_transition(
    reference_pdb: Path, reference_xtc: Path, selection: str, settings
) -> tuple[TransitionChoice, np.ndarray]:
    """Fit the reference state model and pick the state pair; also returns every frame's state label (N,).

    settings: `mdgen.analysis.msm.StateModelSettings` (lags in ps).
    """
    from mdgen.analysis.features import cos_sin, torsion_angles
    from mdgen.analysis.loading import TrajectoryGroup, load_trajectory
    from mdgen.analysis.msm import reference_state_model

    trajectory = load_trajectory(reference_pdb, reference_xtc)
    reference = TrajectoryGroup.from_trajectories([trajectory], str(reference_xtc))
    definitions, model = reference_state_model(reference, settings)
    start_state, end_state, flux = pick_state_pair(model.state_msm, selection)
    states = model.states(
        cos_sin(torsion_angles(trajectory, definitions))
    )  # (N,) labels; UNASSIGNED: never drawn
    choice = TransitionChoice(
        selection=selection,
        start_state=start_state,
        end_state=end_state,
        flux=flux,
        lag_ps=settings.msm_lag_ps,
        start_candidates=int((states == start_state).sum()),
        end_candidates=int((states == end_state).sum()),
        notes=model.notes,
    )
    return choice, states


def path_window(reference: Trajectory, endpoints: PathEndpoints, num_frames: int) -> np.ndarray:
    """(T, L, 14, 3) Å: the start frame everywhere (placeholders) except the end frame at T-1."""
    window = np.repeat(reference.atom14[endpoints.start_frame][None], num_frames, axis=0)
    window[-1] = reference.atom14[endpoints.end_frame]
    return window


def run_paths(
    sampler: WindowSampler,
    reference: Trajectory,
    name: str,
    endpoints: Sequence[PathEndpoints],
    out_dir: Path,
    base_seed: int,
    batch_size: int,
    transition: TransitionChoice | None = None,
) -> OutputReport:
    """Write `NAME_{i}.pdb/.xtc` for every path not yet finished, then `NAME_paths.json`
    (`mdgen.sample_files.PathsManifest`)."""
    task = sampler.task
    outputs = [TrajectoryOutput(out_dir / f"{name}_{e.index}") for e in endpoints]
    pending = [e.index for e, output in zip(endpoints, outputs) if not output.is_finished()]
    usage_before = sampler.usage
    groups = output_groups(pending, len(endpoints), batch_size)
    for group in tqdm(groups, desc=f"paths {name}", unit="batch"):
        windows = np.stack([path_window(reference, endpoints[i], task.num_frames) for i in group])
        aatype = np.broadcast_to(reference.aatype, (len(group), reference.num_residues))
        generated = sampler.generate(windows, aatype, sampler.generator(base_seed + group[0]))
        for i, atom14 in zip(group, generated.atom14):
            if i in pending:
                outputs[i].write(atom14, reference.aatype, task.frame_interval_ps)
    manifest = PathsManifest(
        name=name,
        reference=reference.source,
        topology=outputs[0].pdb.name,  # every path has the same atoms
        frame_interval_ps=task.frame_interval_ps,
        num_frames=task.num_frames,
        transition=transition,
        paths=tuple(
            PathRecord(
                **asdict(e), xtc=output.xtc.name, noise_seed=noise_seed(base_seed, e.index, batch_size)
            )
            for e, output in zip(endpoints, outputs)
        ),
    )
    manifest_path = write_json(out_dir / f"{name}{PATHS_SUFFIX}", manifest.to_json())
    usage = sampler.usage - usage_before
    return window_outputs_report(
        name,
        [output.xtc for output in outputs],
        [e.index for e in endpoints],
        pending,
        task.num_frames,
        task.frame_interval_ps,
        usage,
        {"paths_json": str(manifest_path)},
    )
