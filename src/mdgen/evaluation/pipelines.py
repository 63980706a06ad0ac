"""The evaluation run's configuration and one `TaskEvaluator` per task, registered once in `EVALUATORS`.

Each evaluator reads the files `layout` names, checks atoms against the reference, computes the task's
result, writes its PNGs to `config.plot_dir` and builds the report sections (`sections`); it raises
(with the offending file in the message) instead of returning partial results. `runner` drives them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mdtraj as md
import numpy as np

from mdgen.analysis.loading import TrajectoryGroup, load_group, load_trajectory, match_atoms, match_groups
from mdgen.analysis.msm import StateModelSettings
from mdgen.errors import warn_deprecated
from mdgen.evaluation import plots, sections
from mdgen.evaluation.evaluator import TaskEvaluator
from mdgen.evaluation.forward import (
    GENERATED,
    TRIVIAL_BASELINE,
    ForwardAnalysis,
    ForwardSettings,
    evaluate_forward,
)
from mdgen.evaluation.inpaint import InpaintPeptideResult, InpaintSpec, evaluate_inpaint, read_inpaint_spec
from mdgen.evaluation.input_files import discover_names, reference_files, sample_files
from mdgen.evaluation.proteins import (
    ProteinAnalysis,
    ProteinPeptideResult,
    ProteinSettings,
    analyse_protein,
    write_figures,
)
from mdgen.evaluation.transition_paths import PathAnalysis, TransitionPathSettings, evaluate_paths
from mdgen.evaluation.upsampling import UpsamplingAnalysis, UpsamplingSettings, evaluate_upsampling
from mdgen.sample_files import INPAINT_SUFFIX, LEGACY_INPAINT_SUFFIX, PATHS_SUFFIX


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
    transition_paths: TransitionPathSettings = field(default_factory=TransitionPathSettings)
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


class ForwardEvaluator(TaskEvaluator):
    """Forward simulation: generated trajectories against the reference MD (and a replica, if given)."""

    task, main_row = "forward", "generated"

    def load(self, config, name) -> tuple[TrajectoryGroup, TrajectoryGroup, TrajectoryGroup | None]:
        reference, samples = match_groups(_reference(config, name), _samples(config, name))
        return reference, samples, _replica(config, name, reference)

    def compute(self, name, inputs, config) -> ForwardAnalysis:
        reference, samples, replica = inputs
        return evaluate_forward(name, samples, reference, replica, config.forward)

    def plot(self, name, analysis: ForwardAnalysis, config) -> None:
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

    def sections(self, results, config):
        return sections.forward_sections(results, config)


class InterpEvaluator(TaskEvaluator):
    """Transition paths (NAME_paths.json) against the reference MSM."""

    task, main_row, manifest_suffix = "interp", "generated", PATHS_SUFFIX

    def load(self, config, name) -> tuple[Path, TrajectoryGroup, TrajectoryGroup | None]:
        reference = _reference(config, name)
        return config.samples_dir / f"{name}{PATHS_SUFFIX}", reference, _replica(config, name, reference)

    def compute(self, name, inputs, config) -> PathAnalysis:
        manifest, reference, replica = inputs
        return evaluate_paths(name, manifest, reference, replica, config.state_model, config.transition_paths)

    def plot(self, name, analysis: PathAnalysis, config) -> None:
        plots.flux_matrices(
            name, analysis.reference_flux, analysis.generated_flux, config.plot_dir / f"{name}_flux.png"
        )

    def sections(self, results, config):
        return sections.interp_sections(results, config)


class UpsampleEvaluator(TaskEvaluator):
    """Upsampled trajectories against the fine reference MD (NAME_fine.xtc)."""

    task, main_row = "upsample", "upsampled"

    def load(self, config, name) -> tuple[TrajectoryGroup, TrajectoryGroup]:
        return match_groups(_reference(config, name, fine=True), _samples(config, name))

    def compute(self, name, inputs, config) -> UpsamplingAnalysis:
        reference, samples = inputs
        return evaluate_upsampling(name, samples, reference, config.upsampling)

    def plot(self, name, analysis: UpsamplingAnalysis, config) -> None:
        plots.upsampling_curves(
            name,
            analysis.labels,
            analysis.reference,
            analysis.coarse_input,
            analysis.candidates,
            config.plot_dir / f"{name}_autocorrelation.png",
        )

    def sections(self, results, config):
        return sections.upsample_sections(results, config)


class InpaintEvaluator(TaskEvaluator):
    """Sequence recovery of inpainted residues (NAME_inpaint.json, or an older mdgen's NAME_design.json);
    the reference only for target-state checks."""

    task, main_row, manifest_suffix = "inpaint", "samples", INPAINT_SUFFIX

    def peptide_names(self, samples_dir: Path) -> list[str]:
        names = set(discover_names(samples_dir, INPAINT_SUFFIX))
        legacy = set(discover_names(samples_dir, LEGACY_INPAINT_SUFFIX)) - names
        if legacy:  # one line for the whole directory
            warn_deprecated(
                "mdgen.evaluate",
                f"{len(legacy)} NAME{LEGACY_INPAINT_SUFFIX} manifest(s) in {samples_dir}",
                f"NAME{INPAINT_SUFFIX}",
            )
        return sorted(names | legacy)

    def load(self, config, name) -> tuple[InpaintSpec, TrajectoryGroup | None]:
        path = config.samples_dir / f"{name}{INPAINT_SUFFIX}"
        if not path.exists() and (config.samples_dir / f"{name}{LEGACY_INPAINT_SUFFIX}").exists():
            path = config.samples_dir / f"{name}{LEGACY_INPAINT_SUFFIX}"
        spec = read_inpaint_spec(path)
        needs_reference = spec.start_state is not None and any(s.trajectory for s in spec.samples)
        return spec, _reference(config, name) if needs_reference else None

    def compute(self, name, inputs, config) -> InpaintPeptideResult:
        spec, reference = inputs
        scores = evaluate_inpaint(spec, reference, config.state_model)
        return InpaintPeptideResult(name, spec.true_sequence, spec.designed_positions, {"samples": scores})

    def plot(self, name, analysis: InpaintPeptideResult, config) -> None:
        """No per-peptide figures: inpainting is scored on sequences."""

    def result(self, analysis: InpaintPeptideResult) -> InpaintPeptideResult:
        return analysis

    def sections(self, results, config):
        return sections.inpaint_sections(results, config)


class ProteinEvaluator(TaskEvaluator):
    """Protein ensembles against all MD replicas (AlphaFlow's ATLAS metrics)."""

    task, main_row = "protein", "generated"

    def load(self, config, name) -> tuple[TrajectoryGroup, TrajectoryGroup, md.Trajectory]:
        reference, samples = match_groups(_reference(config, name), _samples(config, name))
        topology, _ = reference_files(config.reference_dir, name)
        structure, _ = match_atoms(load_trajectory(topology), samples.trajectories[0], samples.source)
        return reference, samples, structure

    def compute(self, name, inputs, config) -> ProteinAnalysis:
        return analyse_protein(name, *inputs, config.protein)

    def plot(self, name, analysis: ProteinAnalysis, config) -> None:
        write_figures(analysis, config.plot_dir)  # NAME_rmsf.png, NAME_pca.png

    def result(self, analysis: ProteinAnalysis) -> ProteinPeptideResult:
        return analysis.result

    def sections(self, results, config):
        return sections.protein_sections(results, config)


EVALUATORS: dict[str, TaskEvaluator] = {
    evaluator.task: evaluator
    for evaluator in (
        ForwardEvaluator(),
        InterpEvaluator(),
        UpsampleEvaluator(),
        InpaintEvaluator(),
        ProteinEvaluator(),
    )
}
TASKS = tuple(EVALUATORS)
# Old task names still accepted (one warning line): the inpaint task was called "design" here.
DEPRECATED_TASKS = {"design": "inpaint"}
