"""Entry point: ``python -m mdgen.simulate sequences=[FLRH,AAAA] out_dir=DIR length_ns=X``.

Thin Hydra wrapper around ``mdgen.data.simulate``; options are documented in conf/simulate.yaml.
A user error (an option, a sequence, a corrupt finished peptide, a peptide another run holds) is one
line on stderr and exit status 2.
"""

import hydra
from omegaconf import DictConfig

from mdgen.config import check_override_types
from mdgen.data.simulate import SimulationProtocol, simulate_peptides
from mdgen.errors import user_errors
from mdgen.options import checked_value


@hydra.main(version_base="1.3", config_path="../../conf", config_name="simulate")
@user_errors("mdgen.simulate")
def main(cfg: DictConfig) -> float:
    check_override_types(cfg)  # `length_ns=abc`: one line naming the option
    checked_value("hydrogen_mass_amu", cfg.hydrogen_mass_amu, float | None)  # null by default
    protocol = SimulationProtocol(
        solvent=cfg.protocol,
        production_ns=cfg.length_ns,
        temperature_K=cfg.temperature_K,
        friction_per_ps=cfg.friction_per_ps,
        timestep_fs=cfg.timestep_fs,
        constraints=cfg.constraints,
        hydrogen_mass_amu=cfg.hydrogen_mass_amu,
        minimization_max_iterations=cfg.minimization_max_iterations,
        equilibration_ps=cfg.equilibration_ps,
        save_interval_ps=cfg.save_interval_ps,
        fine_interval_fs=cfg.fine_interval_fs,
        fine_length_ps=cfg.fine_length_ps,
        checkpoint_interval_ps=cfg.checkpoint_interval_ps,
        platform=cfg.platform,
        threads=cfg.threads,
        note=cfg.note,
    )
    sequences = [cfg.sequences] if isinstance(cfg.sequences, str) else list(cfg.sequences or [])
    records = simulate_peptides(
        sequences,
        cfg.out_dir,
        protocol,
        base_seed=cfg.base_seed,
        n_jobs=cfg.n_jobs,
        show_progress=cfg.progress,
    )
    for record in records:
        print(
            f"{record.sequence}: {record.num_frames} frames, {record.production_ns_per_day:.0f} ns/day "
            f"({record.platform}), wall {record.wall_s:.0f} s"
        )
    return min(record.production_ns_per_day for record in records)


if __name__ == "__main__":
    main()
