"""One sampling run: check the request, resolve its inputs, dispatch to the task driver, report.

Checks happen in two stages, both before any sampling work:
  `SamplingRequest.check()`      values and files, before the checkpoint is even loaded;
  `run_sampling` (first part)    the request against the checkpoint's task (mode, options, residues,
                                 frame spacing), and reading every input trajectory.
Only then are start structures built (sequence inputs: minimisation) and trajectories generated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from mdgen.sampling import modes
from mdgen.sampling.design import DesignWindow, retarget_design, run_design
from mdgen.sampling.engine import WindowSampler, check_precision, resolve_device
from mdgen.sampling.forward import ForwardSettings, run_forward
from mdgen.sampling.inputs import (
    SamplingInputError,
    StartStructure,
    check_file,
    check_frame_index,
    check_sequence_matches,
    check_sequences,
    read_input_trajectory,
    stride_to_interval,
    structure_from_frame,
    structure_from_sequence,
    structures_from_split,
)
from mdgen.sampling.modes import DESIGN, FORWARD, INTERP, UPSAMPLE, IncompatibleTaskError
from mdgen.sampling.paths import (
    TRANSITIONS,
    choose_transition,
    endpoints_from_frames,
    endpoints_from_states,
    run_paths,
)
from mdgen.sampling.report import RunReport, write_summary
from mdgen.sampling.solver import SolverOptions
from mdgen.sampling.upsample import UpsamplingLayout, run_upsampling

# Options that only make sense for some modes; setting one for another mode is an error, not ignored.
OPTION_MODES = {
    "sequences": {FORWARD},
    "split": {FORWARD},
    "cache_dir": {FORWARD},
    "num_rollouts": {FORWARD},
    "num_chunks": {FORWARD},
    "per_rollout_files": {FORWARD},
    "input_frame": {FORWARD, DESIGN},
    "num_samples": {INTERP, DESIGN},
    "start_frame": {INTERP},
    "end_frame": {INTERP},
    "transition": {INTERP},
    "allow_extrapolation": {UPSAMPLE},
    "design_residues": {DESIGN},
}


@dataclass(frozen=True)
class SamplingRequest:
    """Everything a sampling run is asked to do, as plain values (conf/sample.yaml documents each)."""

    ckpt_path: str
    out_dir: str
    mode: str | None = None
    base_seed: int = 0
    batch_size: int = 1
    device: str = "auto"
    precision: str = "32"
    use_ema: bool = True
    name: str | None = None
    input_pdb: str | None = None
    input_xtc: str | None = None
    # forward
    sequences: tuple[str, ...] | None = None
    split: str | None = None
    cache_dir: str | None = None
    num_rollouts: int | None = None
    num_chunks: int | None = None
    per_rollout_files: bool | None = None
    input_frame: int | None = None
    # interp / design
    num_samples: int | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    transition: str | None = None
    tica_lag_ps: float = 100.0
    msm_lag_ps: float = 100.0
    n_clusters: int = 100
    n_metastable: int = 10
    # upsample
    allow_extrapolation: bool | None = None
    # design
    design_residues: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.sequences is not None:
            object.__setattr__(self, "sequences", tuple(self.sequences))
        if self.design_residues is not None:
            object.__setattr__(self, "design_residues", tuple(int(r) for r in self.design_residues))
        object.__setattr__(self, "precision", str(self.precision))

    def given_options(self) -> list[str]:
        return [name for name in OPTION_MODES if getattr(self, name) is not None]

    def check(self) -> None:
        """Checks that need no checkpoint: values, sequences, files. Raises ValueError naming the option."""
        check_file(self.ckpt_path, "ckpt_path")
        if not self.out_dir:
            raise SamplingInputError("out_dir is required")
        resolve_device(self.device)
        check_precision(self.precision)
        for option in ("batch_size", "num_rollouts", "num_chunks", "num_samples"):
            value = getattr(self, option)
            if value is not None and value < 1:
                raise SamplingInputError(f"{option} must be >= 1, got {value}")
        if self.mode is not None and self.mode not in modes.SAMPLING_MODES:
            raise SamplingInputError(f"mode={self.mode!r} is not one of {modes.SAMPLING_MODES}")
        if self.sequences is not None:
            check_sequences(self.sequences)
        if self.input_pdb is not None:
            check_file(self.input_pdb, "input_pdb")
        if self.name is not None and self.input_pdb is None:
            raise SamplingInputError(
                "name= names the output of input_pdb; sequence and split outputs keep their names"
            )
        if self.input_xtc is not None:
            if self.input_pdb is None:
                raise SamplingInputError("input_xtc needs input_pdb (its topology)")
            check_file(self.input_xtc, "input_xtc")
        if (self.split is None) != (self.cache_dir is None):
            raise SamplingInputError("split (a split CSV) and cache_dir (a prepared cache) go together")
        if self.split is not None:
            check_file(self.split, "split")
        if self.transition is not None and self.transition not in TRANSITIONS:
            raise SamplingInputError(f"transition={self.transition!r} is not one of {TRANSITIONS}")

    def output_name(self) -> str:
        return self.name or Path(self.input_pdb).stem


def check_options_for_mode(request: SamplingRequest, mode: str, task_description: str) -> None:
    wrong = [option for option in request.given_options() if mode not in OPTION_MODES[option]]
    if wrong:
        details = "; ".join(f"{option} is for {'/'.join(sorted(OPTION_MODES[option]))}" for option in wrong)
        raise IncompatibleTaskError(
            f"checkpoint {request.ckpt_path} does {mode} ({task_description}), but {details}. "
            "Remove these options or use a checkpoint trained for that task"
        )


def run_sampling(
    request: SamplingRequest, module, solver: SolverOptions, started: float | None = None
) -> RunReport:
    """Check the request against `module.task`, then generate and write every output."""
    started = time.perf_counter() if started is None else started
    request.check()
    task = module.task
    mode = modes.check_mode(task, request.mode, request.ckpt_path)
    check_options_for_mode(request, mode, modes.describe_task(task))
    out_dir = Path(request.out_dir)
    prepare = {
        FORWARD: _prepare_forward,
        INTERP: _prepare_paths,
        UPSAMPLE: _prepare_upsampling,
        DESIGN: _prepare_design,
    }
    job = prepare[mode](request, task)  # reads and checks inputs; nothing generated yet
    sampler = WindowSampler(module, solver, resolve_device(request.device), request.precision)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = job(sampler, out_dir)
    report = RunReport(
        mode=mode,
        checkpoint=str(request.ckpt_path),
        task=asdict(sampler.task),
        device=str(sampler.device),
        precision=request.precision,
        solver=solver.as_kwargs(),
        batch_size=request.batch_size,
        outputs=tuple(outputs),
        total_wall_s=time.perf_counter() - started,
    )
    write_summary(out_dir, report)
    return report


# ---- per-mode preparation: check and read inputs, return the job to run --------------------------------


def _prepare_forward(request: SamplingRequest, task):
    sources = [request.sequences is not None and request.input_pdb is None, request.input_pdb is not None]
    sources.append(request.split is not None)
    if sum(sources) != 1:
        raise SamplingInputError(
            "forward sampling needs exactly one start: sequences=[...], input_pdb (+ input_xtc, input_frame), "
            "or split + cache_dir"
        )
    settings = ForwardSettings(
        num_rollouts=request.num_rollouts or 1,
        num_chunks=request.num_chunks or 1,
        base_seed=request.base_seed,
        batch_size=request.batch_size,
        per_rollout_files=bool(request.per_rollout_files),
    )
    starts: list[StartStructure] = []
    to_build: Sequence[str] = ()
    if request.input_pdb is not None:
        trajectory = read_input_trajectory(request.input_pdb, request.input_xtc)
        if request.sequences is not None:
            if len(request.sequences) != 1:
                raise SamplingInputError("with input_pdb, sequences may hold only that structure's sequence")
            check_sequence_matches(trajectory, check_sequences(request.sequences)[0])
        starts.append(structure_from_frame(trajectory, request.input_frame or 0, request.output_name()))
    elif request.split is not None:
        starts = structures_from_split(request.cache_dir, request.split)
    else:
        to_build = check_sequences(request.sequences)

    def job(sampler: WindowSampler, out_dir: Path):
        built = [structure_from_sequence(sequence) for sequence in to_build]
        return run_forward(sampler, [*starts, *built], settings, out_dir)

    return job


def _prepare_paths(request: SamplingRequest, task):
    if request.input_pdb is None or request.input_xtc is None:
        raise SamplingInputError("interpolation needs input_pdb and input_xtc (the reference trajectory)")
    frames_given = request.start_frame is not None or request.end_frame is not None
    if frames_given == (request.transition is not None):
        raise SamplingInputError(
            "interpolation needs either start_frame and end_frame, or transition=lowest_flux|highest_flux"
        )
    reference = read_input_trajectory(request.input_pdb, request.input_xtc)
    num_samples = request.num_samples or 1
    if frames_given:
        if request.start_frame is None or request.end_frame is None:
            raise SamplingInputError("give both start_frame and end_frame")
        start = check_frame_index(request.start_frame, reference.num_frames, "start_frame", reference.source)
        end = check_frame_index(request.end_frame, reference.num_frames, "end_frame", reference.source)
        endpoints, transition = endpoints_from_frames(num_samples, start, end), None
    else:
        from mdgen.evaluation.msm import StateModelSettings

        settings = StateModelSettings(
            tica_lag_ps=request.tica_lag_ps,
            msm_lag_ps=request.msm_lag_ps,
            n_clusters=request.n_clusters,
            n_metastable=request.n_metastable,
        )
        transition, states = choose_transition(
            Path(request.input_pdb), Path(request.input_xtc), request.transition, settings
        )
        endpoints = endpoints_from_states(
            states, transition.start_state, transition.end_state, num_samples, request.base_seed
        )

    def job(sampler: WindowSampler, out_dir: Path):
        report = run_paths(
            sampler,
            reference,
            request.output_name(),
            endpoints,
            out_dir,
            request.base_seed,
            request.batch_size,
            transition,
        )
        return [report]

    return job


def _prepare_upsampling(request: SamplingRequest, task):
    layout = UpsamplingLayout.from_task(task, allow_extrapolation=bool(request.allow_extrapolation))
    if request.input_pdb is None or request.input_xtc is None:
        raise SamplingInputError("upsampling needs input_pdb and input_xtc (the coarse trajectory)")
    coarse_interval_ps = task.cond_interval * task.frame_interval_ps
    probe = read_input_trajectory(request.input_pdb, request.input_xtc)
    stride = stride_to_interval(
        probe.timestep_ps, coarse_interval_ps, probe.source, "coarse interval of the model"
    )
    coarse = (
        probe if stride == 1 else read_input_trajectory(request.input_pdb, request.input_xtc, stride=stride)
    )
    if coarse.num_frames < 2:
        raise SamplingInputError(f"{coarse.source}: needs at least 2 frames {coarse_interval_ps:g} ps apart")

    def job(sampler: WindowSampler, out_dir: Path):
        report = run_upsampling(
            sampler, coarse, request.output_name(), layout, out_dir, request.base_seed, request.batch_size
        )
        return [report]

    return job


def _prepare_design(request: SamplingRequest, task):
    if request.input_pdb is None or request.input_xtc is None:
        raise SamplingInputError("design needs input_pdb and input_xtc (the trajectory window to design on)")
    probe = read_input_trajectory(request.input_pdb, request.input_xtc)
    stride = stride_to_interval(
        probe.timestep_ps, task.frame_interval_ps, probe.source, "frame interval of the model"
    )
    design_task = retarget_design(task, request.design_residues, probe.num_residues)
    design_task.residue_cond_mask(probe.num_residues)  # raises for residue indices outside the chain
    start = check_frame_index(request.input_frame or 0, probe.num_frames, "input_frame", probe.source)
    last = start + (task.num_frames - 1) * stride
    if last >= probe.num_frames:
        raise SamplingInputError(
            f"{probe.source}: a design window of {task.num_frames} frames every {task.frame_interval_ps:g} ps "
            f"from frame {start} needs frame {last}, but the trajectory has {probe.num_frames} frames"
        )
    window = DesignWindow(
        name=request.output_name(),
        atom14=probe.atom14[start : last + 1 : stride],
        aatype=probe.aatype,
        source=probe.source,
        start_frame=start,
        stride=stride,
    )

    def job(sampler: WindowSampler, out_dir: Path):
        if design_task != task:
            sampler.use_task(design_task)
        report = run_design(
            sampler, window, request.num_samples or 1, request.base_seed, request.batch_size, out_dir
        )
        return [report]

    return job


def request_fields() -> list[str]:
    """Names of `SamplingRequest` fields (the entry point copies exactly these from its config)."""
    return [field.name for field in fields(SamplingRequest)]
