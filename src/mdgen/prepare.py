"""Entry point: ``python -m mdgen.prepare sim_dir=DIR out_dir=CACHE [interval_ps=X] ...``.

Thin Hydra wrapper around ``mdgen.data.prepare.prepare_simulations``; options are documented in
conf/prepare.yaml. Prints the summary and exits with status 1 if any entry failed; a problem with the
run itself (an option, a missing sim_dir, an out_dir that is not a cache) is one line and status 2.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from mdgen.config import check_override_types, hydra_main
from mdgen.data.prepare import prepare_simulations
from mdgen.data.splits import read_split, split_names
from mdgen.errors import user_errors
from mdgen.options import checked_value


def _requested_names(cfg: DictConfig) -> list[str] | None:
    """`names` and/or the names of the `split` CSV; None (every entry) when neither is set."""
    if cfg.names is None and cfg.split is None:
        return None
    names = [cfg.names] if isinstance(cfg.names, str) else list(cfg.names or [])
    if cfg.split is not None:
        names += [name for name in split_names(read_split(cfg.split)) if name not in names]
    return names


@hydra_main("prepare")
@user_errors("mdgen.prepare")
def main(cfg: DictConfig) -> int:
    check_override_types(cfg)  # `num_workers=abc`: one line naming the option
    for option in ("interval_ps", "timestep_ps"):  # null by default: no default type to compare with
        checked_value(option, cfg[option], float | None)
    summary = prepare_simulations(
        cfg.sim_dir,
        cfg.out_dir,
        interval_ps=cfg.interval_ps,
        names=_requested_names(cfg),
        layout=cfg.layout,
        trajectory_suffix=cfg.trajectory_suffix,
        num_workers=cfg.num_workers,
        min_frames=cfg.min_frames,
        timestep_ps=cfg.timestep_ps,
        replicas=tuple(cfg.replicas),
        chunk_frames=cfg.chunk_frames,
        progress=cfg.progress,
    )
    print(summary.report())
    if not summary.ok:
        sys.exit(1)
    return len(summary.prepared)


if __name__ == "__main__":
    main()
