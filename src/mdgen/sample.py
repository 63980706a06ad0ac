"""`python -m mdgen.sample ckpt_path=CKPT out_dir=DIR [options]`: generate trajectories from a checkpoint.

The checkpoint decides the task; see conf/sample.yaml for every option and README "Sampling".

Examples:
    python -m mdgen.sample ckpt_path=CKPT out_dir=DIR sequences=[MKWE] num_rollouts=4 num_chunks=3 base_seed=0
    python -m mdgen.sample ckpt_path=CKPT out_dir=DIR input_pdb=A.pdb input_xtc=A.xtc transition=lowest_flux num_samples=8
    python -m mdgen.sample ckpt_path=CKPT out_dir=DIR input_pdb=A.pdb input_xtc=A.xtc        # upsample
    python -m mdgen.sample ckpt_path=CKPT out_dir=DIR input_pdb=A.pdb input_xtc=A.xtc design_residues=[1,2] num_samples=8
"""

from __future__ import annotations

import time

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mdgen.config import config_dir, load_module
from mdgen.sampling.engine import resolve_device
from mdgen.sampling.report import RunReport
from mdgen.sampling.request import SamplingRequest, request_fields
from mdgen.sampling.run import run_sampling


def sample(cfg: DictConfig) -> RunReport:
    """Run the configured sampling (composed `conf/sample.yaml`), print and return its report."""
    started = time.perf_counter()
    values = OmegaConf.to_container(
        OmegaConf.masked_copy(cfg, request_fields()), resolve=True
    )  # no hydra node
    request = SamplingRequest(**values)
    request.check()  # fails on bad values and missing files before the checkpoint is loaded
    solver = instantiate(cfg.sampler)
    module = load_module(
        request.ckpt_path, map_location=resolve_device(request.device), use_ema=request.use_ema
    )
    report = run_sampling(request, module, solver, started)
    for line in report.lines():
        print(line)
    return report


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="sample")
def main(cfg: DictConfig) -> float | None:
    """Returns generated ns per wall-clock second (None when every output was already finished)."""
    return sample(cfg).ns_per_wall_s()


if __name__ == "__main__":
    main()
