"""Entry point: ``python -m mdgen.evaluate samples_dir=DIR reference_dir=REF task=forward ...``.

Thin Hydra wrapper around `mdgen.evaluation.runner.run_evaluation`; options are documented in
conf/evaluate.yaml. That file is registered in Hydra's ConfigStore instead of being found through
conf/ because conf/task/ is the training task group there, which would turn `task=design` into a
config-group selection. Exits with status 1 only when no peptide could be evaluated.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mdgen.evaluation.forward import ForwardSettings
from mdgen.evaluation.msm import StateModelSettings
from mdgen.evaluation.paths import PathSettings
from mdgen.evaluation.pipelines import EvaluationConfig
from mdgen.evaluation.proteins import ProteinSettings
from mdgen.evaluation.runner import run_evaluation
from mdgen.evaluation.upsampling import UpsamplingSettings

CONFIG_FILE = Path(__file__).resolve().parents[2] / "conf" / "evaluate.yaml"
ConfigStore.instance().store(name="evaluate", node=OmegaConf.load(CONFIG_FILE))


def _plain(node: DictConfig) -> dict:
    """Config section -> constructor kwargs (lists become tuples: the settings are frozen dataclasses)."""
    values = OmegaConf.to_container(node, resolve=True)
    return {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}


def build_config(cfg: DictConfig, out_dir: Path) -> EvaluationConfig:
    names = cfg.names
    return EvaluationConfig(
        task=cfg.task,
        samples_dir=Path(cfg.samples_dir),
        reference_dir=Path(cfg.reference_dir),
        out_dir=out_dir,
        replica_dir=Path(cfg.replica_dir) if cfg.replica_dir else None,
        names=None if names is None else tuple([names] if isinstance(names, str) else names),
        n_jobs=int(cfg.n_jobs),
        make_plots=bool(cfg.plots),
        forward=ForwardSettings(
            **_plain(cfg.forward), state_model=StateModelSettings(**_plain(cfg.state_model))
        ),
        paths=PathSettings(**_plain(cfg.paths)),
        upsampling=UpsamplingSettings(**_plain(cfg.upsampling)),
        protein=ProteinSettings(**_plain(cfg.protein)),
    )


@hydra.main(version_base="1.3", config_path=None, config_name="evaluate")
def main(cfg: DictConfig) -> int:
    # the run directory *is* out_dir (hydra.run.dir: ${out_dir}), resolved once by Hydra
    summary = run_evaluation(build_config(cfg, Path(HydraConfig.get().runtime.output_dir)))
    print(f"metrics: {summary.metrics_path}\nreport: {summary.report_path}")
    for name, message in summary.failures.items():
        print(f"not evaluated: {name}: {message}", file=sys.stderr)
    if summary.all_failed:
        sys.exit(1)
    return len(summary.results)


if __name__ == "__main__":
    main()
