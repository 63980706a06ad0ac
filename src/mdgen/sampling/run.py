"""One sampling run: check the request, resolve its inputs, dispatch to the task driver, report.

Checks happen in two stages, both before any sampling work:
  `SamplingRequest.check()`      values and files, before the checkpoint is even loaded;
  `run_sampling` (first part)    the request against the checkpoint's task (mode, options, residues,
                                 frame spacing), and reading every input trajectory.
Only then are start structures built (sequence inputs: minimisation) and trajectories generated.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from mdgen.sampling import modes
from mdgen.sampling.decoding import DecoderSettings
from mdgen.sampling.engine import WindowSampler, resolve_device
from mdgen.sampling.forward import ForwardSettings, run_forward
from mdgen.sampling.inpaint import InpaintWindow, retarget_design, run_inpaint
from mdgen.sampling.inputs import (
    SamplingInputError,
    StartStructure,
    check_frame_index,
    check_sequence_matches,
    check_sequences,
    read_input_trajectory,
    structure_from_frame,
    structure_from_sequence,
    structures_from_split,
)
from mdgen.sampling.modes import FORWARD, INPAINT, INTERP, UPSAMPLE
from mdgen.sampling.record import OutputDirectory
from mdgen.sampling.report import SUMMARY_FILE, OutputReport, RunReport, write_summary
from mdgen.sampling.request import SamplingRequest, check_options_for_mode
from mdgen.sampling.sampler_options import SolverOptions
from mdgen.sampling.transition_paths import (
    choose_transition,
    endpoints_from_frames,
    endpoints_from_states,
    run_paths,
)
from mdgen.sampling.upsampling import UpsamplingLayout, run_upsampling
from mdgen.tasks import TaskSpec
from mdgen.timesteps import frames_per_interval

if TYPE_CHECKING:
    from mdgen.module import MDGenModule


def run_sampling(
    request: SamplingRequest,
    module: MDGenModule,
    solver: SolverOptions,
    started: float | None = None,
    overwrite: bool = False,
) -> RunReport:
    """Check the request against `module.task` and out_dir, then generate and write every output.

    out_dir follows `record.OutputDirectory`: its record must match the request (else refused, or with
    `overwrite` the recorded outputs are deleted and regenerated) and it may hold no other file.
    """
    started = time.perf_counter() if started is None else started
    request.check()
    target = OutputDirectory.inspect(request, solver.as_kwargs(), overwrite)  # refuses before any work
    task = module.task
    mode = modes.check_mode(task, request.mode, request.ckpt_path)
    check_options_for_mode(request, mode, modes.describe_task(task))
    out_dir = Path(request.out_dir)
    prepare = {
        FORWARD: functools.partial(_prepare_forward, max_residues=_max_residues(module)),
        INTERP: _prepare_paths,
        UPSAMPLE: _prepare_upsampling,
        INPAINT: _prepare_inpaint,
    }
    job = prepare[mode](request, task)  # reads and checks inputs; nothing generated yet
    sampler = WindowSampler(
        module,
        solver,
        resolve_device(request.device),
        request.precision,
        decoding=DecoderSettings(request.decoder, request.declash),
        relaxer=_relaxer(request.relax),
    )
    with target.claimed(also=(SUMMARY_FILE,)):  # the record is written before the first output
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
        decoding={
            "decoder": sampler.decoding.decoder,
            "declash": sampler.decoding.declash,
            **asdict(sampler.decoding_totals),
        },
        relax=None if sampler.relaxer is None else sampler.relaxer.usage.summary(),
    )
    write_summary(out_dir, report)
    return report


def _relaxer(relax: bool):
    """A FrameRelaxer when relax=true (OpenMM is imported only then), else None."""
    if not relax:
        return None
    from mdgen.sampling.relax import FrameRelaxer

    return FrameRelaxer()


# ---- per-mode preparation: check and read inputs, return the job to run --------------------------------
# A job runs after every check has passed: Job(sampler, out_dir) -> one OutputReport per output name.
Job = Callable[[WindowSampler, Path], list[OutputReport]]


def _max_residues(module: MDGenModule) -> int | None:
    """Residues the network can place: the rows of its absolute position table (model.residue_pos_emb=table,
    the original tetrapeptide recipe), None for rotary positions (any chain length, the whole chain)."""
    table = getattr(module.network, "residue_table", None)
    return None if table is None else len(table)


def _prepare_forward(request: SamplingRequest, task: TaskSpec, max_residues: int | None = None) -> Job:
    """Start structures from input_pdb/xtc, a cache split, or sequences (built in the job); every chain
    whole, so at most `max_residues` long."""
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
    lengths = [(start.source, len(start.aatype)) for start in starts] + [(s, len(s)) for s in to_build]
    for source, length in lengths:
        if max_residues is not None and length > max_residues:
            raise SamplingInputError(
                f"{source}: {length} residues, but the checkpoint's network places residues by an absolute "
                f"position table of {max_residues} rows (model.residue_pos_emb=table); longer chains need a "
                "checkpoint with rotary positions"
            )

    def job(sampler: WindowSampler, out_dir: Path):
        built = [structure_from_sequence(sequence) for sequence in to_build]
        return run_forward(sampler, [*starts, *built], settings, out_dir)

    return job


def _prepare_paths(request: SamplingRequest, task: TaskSpec) -> Job:
    """Reference trajectory and path end points (given frames, or states of a reference MSM)."""
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
        from mdgen.analysis.msm import StateModelSettings

        settings = StateModelSettings(**request.state_model_options())
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


def _prepare_upsampling(request: SamplingRequest, task: TaskSpec) -> Job:
    """Window layout from the task and the coarse trajectory, strided to the model's coarse interval."""
    layout = UpsamplingLayout.from_task(task, allow_extrapolation=bool(request.allow_extrapolation))
    if request.input_pdb is None or request.input_xtc is None:
        raise SamplingInputError("upsampling needs input_pdb and input_xtc (the coarse trajectory)")
    coarse_interval_ps = task.cond_interval * task.frame_interval_ps
    probe = read_input_trajectory(request.input_pdb, request.input_xtc)
    stride = frames_per_interval(
        coarse_interval_ps, probe.timestep_ps, probe.source, "the model's coarse interval"
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


def _prepare_inpaint(request: SamplingRequest, task: TaskSpec) -> Job:
    """The window of task.num_frames frames at the model's interval, and the residues to design."""
    if request.input_pdb is None or request.input_xtc is None:
        raise SamplingInputError("inpaint needs input_pdb and input_xtc (the trajectory window to inpaint)")
    probe = read_input_trajectory(request.input_pdb, request.input_xtc)
    stride = frames_per_interval(
        task.frame_interval_ps, probe.timestep_ps, probe.source, "the model's frame_interval_ps"
    )
    design_task = retarget_design(task, request.design_residues, probe.num_residues)
    design_task.residue_cond_mask(probe.num_residues)  # raises for residue indices outside the chain
    start = check_frame_index(request.input_frame or 0, probe.num_frames, "input_frame", probe.source)
    last = start + (task.num_frames - 1) * stride
    if last >= probe.num_frames:
        raise SamplingInputError(
            f"{probe.source}: an inpaint window of {task.num_frames} frames every {task.frame_interval_ps:g} ps "
            f"from frame {start} needs frame {last}, but the trajectory has {probe.num_frames} frames"
        )
    window = InpaintWindow(
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
        report = run_inpaint(
            sampler, window, request.num_samples or 1, request.base_seed, request.batch_size, out_dir
        )
        return [report]

    return job
