"""One function per task: evaluate one peptide from files on disk and draw its figures.

Each `evaluate_<task>(config, name)` reads the files `layout` names, checks atoms against the
reference, computes the task's result and writes its PNGs to `config.plot_dir`; it raises (with the
offending file in the message) instead of returning partial results. `runner` calls them per peptide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mdgen.evaluation import plots
from mdgen.evaluation.design import DesignPeptideResult, evaluate_design, read_design_spec
from mdgen.evaluation.forward import (
    GENERATED,
    TRIVIAL_BASELINE,
    ForwardPeptideResult,
    ForwardSettings,
    evaluate_forward,
)
from mdgen.evaluation.layout import reference_files, sample_files
from mdgen.evaluation.loading import TrajectoryGroup, load_group, load_trajectory, match_atoms, match_groups
from mdgen.evaluation.msm import StateModelSettings
from mdgen.evaluation.paths import PathPeptideResult, PathSettings, evaluate_paths
from mdgen.evaluation.proteins import ProteinPeptideResult, ProteinSettings, replica_rows, score_protein
from mdgen.evaluation.upsampling import UpsamplingPeptideResult, UpsamplingSettings, evaluate_upsampling

TASKS = ("forward", "interp", "upsample", "design", "protein")


@dataclass(frozen=True)
class EvaluationConfig:
    """Everything an evaluation run needs, as plain values (built from Hydra's config by `mdgen.evaluate`)."""

    task: str
    samples_dir: Path
    reference_dir: Path
    out_dir: Path
    replica_dir: Path | None = None
    names: tuple[str, ...] | None = None
    n_jobs: int = 1
    make_plots: bool = True
    forward: ForwardSettings = field(default_factory=ForwardSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    upsampling: UpsamplingSettings = field(default_factory=UpsamplingSettings)
    protein: ProteinSettings = field(default_factory=ProteinSettings)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    @property
    def state_model(self) -> StateModelSettings:
        return self.forward.state_model

    @property
    def plot_dir(self) -> Path:
        return self.out_dir / "plots"


def _reference(config: EvaluationConfig, name: str, fine: bool = False) -> TrajectoryGroup:
    topology, trajectories = reference_files(config.reference_dir, name, fine=fine)
    return load_group(topology, trajectories, str(trajectories[0]))


def _samples(config: EvaluationConfig, name: str) -> TrajectoryGroup:
    topology, trajectories = sample_files(config.samples_dir, name)
    source = str(trajectories[0]) if len(trajectories) == 1 else f"{config.samples_dir}/{name}_*.xtc"
    return load_group(topology, trajectories, source)


def _replica(config: EvaluationConfig, name: str, reference: TrajectoryGroup) -> TrajectoryGroup | None:
    if config.replica_dir is None:
        return None
    topology, trajectories = reference_files(config.replica_dir, name)
    _, replica = match_groups(reference, load_group(topology, trajectories, str(trajectories[0])))
    return replica


def evaluate_forward_files(config: EvaluationConfig, name: str) -> ForwardPeptideResult:
    reference, samples = match_groups(_reference(config, name), _samples(config, name))
    analysis = evaluate_forward(name, samples, reference, _replica(config, name, reference), config.forward)
    if config.make_plots:
        ref, gen = analysis.reference, analysis.candidates[GENERATED]
        labels = ref.definitions.labels
        plots.torsion_histograms(
            name, labels, np.concatenate(ref.angles), gen.angles, config.plot_dir / f"{name}_torsions.png"
        )
        plots.tica_free_energy(name, ref.tica, gen.tica, config.plot_dir / f"{name}_tica.png")
        plots.decorrelation_curves(
            name,
            labels,
            ref.decorrelation,
            {row: c.decorrelation for row, c in analysis.candidates.items() if row != TRIVIAL_BASELINE},
            config.plot_dir / f"{name}_decorrelation.png",
        )
        plots.state_populations(
            name,
            analysis.result.reference_populations,
            {row: s.state_populations for row, s in analysis.result.rows.items()},
            config.plot_dir / f"{name}_states.png",
        )
    return analysis.result


def evaluate_interp_files(config: EvaluationConfig, name: str) -> PathPeptideResult:
    reference = _reference(config, name)
    manifest = config.samples_dir / f"{name}_paths.json"
    analysis = evaluate_paths(
        name, manifest, reference, _replica(config, name, reference), config.state_model, config.paths
    )
    if config.make_plots:
        plots.flux_matrices(
            name, analysis.reference_flux, analysis.generated_flux, config.plot_dir / f"{name}_flux.png"
        )
    return analysis.result


def evaluate_upsample_files(config: EvaluationConfig, name: str) -> UpsamplingPeptideResult:
    reference, samples = match_groups(_reference(config, name, fine=True), _samples(config, name))
    analysis = evaluate_upsampling(name, samples, reference, config.upsampling)
    if config.make_plots:
        plots.upsampling_curves(
            name,
            analysis.labels,
            analysis.reference,
            analysis.coarse_input,
            analysis.candidates,
            config.plot_dir / f"{name}_autocorrelation.png",
        )
    return analysis.result


def evaluate_design_files(config: EvaluationConfig, name: str) -> DesignPeptideResult:
    spec = read_design_spec(config.samples_dir / f"{name}_design.json")
    needs_reference = spec.start_state is not None and any(s.trajectory for s in spec.samples)
    reference = _reference(config, name) if needs_reference else None
    scores = evaluate_design(spec, reference, config.state_model)
    return DesignPeptideResult(name, spec.true_sequence, spec.designed_positions, {"samples": scores})


def evaluate_protein_files(config: EvaluationConfig, name: str) -> ProteinPeptideResult:
    reference, samples = match_groups(_reference(config, name), _samples(config, name))
    topology, _ = reference_files(config.reference_dir, name)
    structure, _ = match_atoms(load_trajectory(topology), samples.trajectories[0], samples.source)
    rows = {"generated": score_protein(reference, samples, structure, config.protein)}
    rows |= replica_rows(reference, structure, config.protein)
    notes = () if len(rows) > 1 else ("one MD trajectory: no replica-vs-replica reference rows",)
    if config.make_plots:
        plots.protein_rmsf(name, rows, config.plot_dir / f"{name}_rmsf.png")
    return ProteinPeptideResult(name, rows, notes)


EVALUATORS = {
    "forward": evaluate_forward_files,
    "interp": evaluate_interp_files,
    "upsample": evaluate_upsample_files,
    "design": evaluate_design_files,
    "protein": evaluate_protein_files,
}
