"""Entry point: ``python -m mdgen.simulate sequences=[FLRH,AAAA] out_dir=DIR length_ns=X``, or for
proteins from PDB files ``python -m mdgen.simulate pdb_files=[villin.pdb] out_dir=DIR length_ns=X``.

Thin Hydra wrapper around ``mdgen.md.simulation`` (peptides, tetrapeptide layout) and
``mdgen.md.protein_simulation`` (proteins, ATLAS layout); options are documented in conf/simulate.yaml.
A user error (an option, a sequence, a missing or unparseable PDB file, a corrupt finished run, a run
another process holds) is one line on stderr and exit status 2. OpenMM (the `[md]` extra) is imported
when the command runs, so without it `--help` works and a run says which extra to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from mdgen.config import check_override_types, hydra_main
from mdgen.errors import user_errors
from mdgen.options import checked_value

if TYPE_CHECKING:
    from mdgen.md.simulation import SimulationProtocol

PEPTIDE_TEMPERATURE_K = 350.0  # the tetrapeptide data
PROTEIN_TEMPERATURE_K = 300.0  # ATLAS


def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@hydra_main("simulate")
@user_errors("mdgen.simulate")
def main(cfg: DictConfig) -> float:
    from mdgen.md.simulation import SimulationProtocol, SimulationSetupError, simulate_peptides

    check_override_types(cfg)  # `length_ns=abc`: one line naming the option
    checked_value("hydrogen_mass_amu", cfg.hydrogen_mass_amu, float | None)  # null by default
    checked_value("temperature_K", cfg.temperature_K, float | None)
    sequences, pdb_files = _as_list(cfg.sequences), _as_list(cfg.pdb_files)
    if (cfg.sequences is None) == (cfg.pdb_files is None):  # `sequences=[]` is judged below: "is empty"
        raise SimulationSetupError(
            "give exactly one of sequences=[FLRH,...] (peptides) and pdb_files=[protein.pdb,...] (proteins)"
        )
    if cfg.temperature_K is not None:
        temperature_K = cfg.temperature_K
    else:
        temperature_K = PROTEIN_TEMPERATURE_K if cfg.pdb_files is not None else PEPTIDE_TEMPERATURE_K
    protocol = SimulationProtocol(
        solvent=cfg.protocol,
        production_ns=cfg.length_ns,
        temperature_K=temperature_K,
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
    if cfg.pdb_files is not None:
        return _simulate_proteins(cfg, pdb_files, protocol)
    if cfg.names is not None:
        raise SimulationSetupError(
            "names=[...] applies to pdb_files only (a peptide is named by its sequence)"
        )
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


def _simulate_proteins(cfg: DictConfig, pdb_files: list, protocol: SimulationProtocol) -> float:
    from mdgen.md.protein_simulation import simulate_proteins

    names = None if cfg.names is None else [str(name) for name in _as_list(cfg.names)]
    records = simulate_proteins(
        [str(path) for path in pdb_files],
        cfg.out_dir,
        protocol,
        names=names,
        replicas=checked_value("replicas", cfg.replicas, int),
        base_seed=cfg.base_seed,
        n_jobs=cfg.n_jobs,
        show_progress=cfg.progress,
    )
    for record in records:
        print(
            f"{record.name}: {record.num_residues} residues, {record.replicas} x {record.num_frames} frames, "
            f"{record.production_ns_per_day:.1f} ns/day per replica, {record.temperature_K:g} K"
        )
    return min(record.production_ns_per_day for record in records)


if __name__ == "__main__":
    main()
