"""`python -m mdgen.sample ckpt_path=CKPT out_dir=DIR [options]`: generate trajectories from a checkpoint.

The checkpoint decides the task; see conf/sample.yaml for every option and README "Sampling".
User errors (a bad option, file, checkpoint or out_dir) print one line and exit with status 2.

Examples:
    python -m mdgen.sample ckpt_path=CKPT out_dir=DIR sequences=[MKWE] num_rollouts=4 num_chunks=3 base_seed=0
    python -m mdgen.sample ckpt_path=CKPT out_dir=DIR input_pdb=A.pdb input_xtc=A.xtc transition=lowest_flux num_samples=8
    python -m mdgen.sample ckpt_path=CKPT out_dir=DIR input_pdb=A.pdb input_xtc=A.xtc        # upsample
    python -m mdgen.sample ckpt_path=CKPT out_dir=DIR input_pdb=A.pdb input_xtc=A.xtc design_residues=[1,2] num_samples=8
"""

from __future__ import annotations

import time

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mdgen.config import check_override_types, checkpoint_task, hydra_main, load_module
from mdgen.errors import user_errors
from mdgen.options import checked_fields
from mdgen.sampling.engine import resolve_device
from mdgen.sampling.inputs import SamplingInputError
from mdgen.sampling.record import OutputDirectory
from mdgen.sampling.report import RunReport
from mdgen.sampling.request import SamplingRequest, request_fields
from mdgen.sampling.run import run_sampling
from mdgen.sampling.sampler_options import SolverOptions
from mdgen.tasks import TaskSpec


def sample(cfg: DictConfig) -> RunReport:
    """Run the configured sampling (composed `conf/sample.yaml`), print and return its report."""
    started = time.perf_counter()
    check_override_types(cfg)
    try:
        missing = sorted(key for key in OmegaConf.missing_keys(cfg) if not key.startswith("hydra."))
        if missing:
            raise SamplingInputError(f"{', '.join(missing)}: required (e.g. {missing[0]}=...), not given")
        values = OmegaConf.to_container(OmegaConf.masked_copy(cfg, request_fields()), resolve=True)
    except OmegaConfBaseException as error:  # an interpolation on the command line that does not resolve
        raise SamplingInputError(" ".join(str(error).split())) from error
    request = SamplingRequest.from_options(values)
    request.check()  # fails on bad values and missing files before the checkpoint is loaded
    solver = _solver(cfg, checkpoint_task(request.ckpt_path))
    overwrite = cfg.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise SamplingInputError(f"overwrite={overwrite}: expected true or false")
    OutputDirectory.inspect(request, solver.as_kwargs(), overwrite)  # before the checkpoint is loaded
    module = load_module(
        request.ckpt_path, map_location=resolve_device(request.device), use_ema=request.use_ema
    )
    report = run_sampling(request, module, solver, started, overwrite=overwrite)
    for line in report.lines():
        print(line)
    return report


def _solver(cfg: DictConfig, task: TaskSpec) -> SolverOptions:
    """The `sampler` group's fields over the task's default sampler (`sampler=task`, the default, gives
    none); a value of the wrong type or range is named, in one line."""
    given = {key: value for key, value in OmegaConf.to_container(cfg.sampler).items() if value is not None}
    try:
        return SolverOptions.of_task(task, checked_fields(SolverOptions, given, prefix="sampler."))
    except ValueError as error:  # SolverOptions' own checks (method, steps, tolerances)
        raise SamplingInputError(str(error)) from error


@hydra_main("sample")
@user_errors("mdgen.sample")
def main(cfg: DictConfig) -> float | None:
    """Returns generated ns per wall-clock second (None when every output was already finished)."""
    return sample(cfg).ns_per_wall_s()


if __name__ == "__main__":
    main()
