"""`python -m mdgen.download target=weights|4aa|4aa_implicit|atlas`: fetch the published models and data.

Thin Hydra entry point over `mdgen.downloads` (options: conf/download.yaml). `weights` also converts the
original checkpoints with `mdgen.convert`. Offline or unreachable hosts, missing remote files and checksum
mismatches end in one line `mdgen.download: error: ...` (exit status 2); what was downloaded is kept.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mdgen.config import hydra_main
from mdgen.convert import convert_checkpoint
from mdgen.data.splits import read_split, split_names
from mdgen.downloads import DownloadError, HubRepo, fetch_atlas_entries, fetch_hub_files
from mdgen.downloads.hub import list_files
from mdgen.errors import user_errors

# The published checkpoints (HuggingFace bjing-mit/mdgen) in the order of the paper's tasks.
PUBLISHED_WEIGHTS = ("forward_sim", "interpolation", "upsampling", "inpainting", "atlas")
DATASETS = {  # target -> (folder in bjing-mit/tetrapeptide-sims and under data_dir, published split list)
    "4aa": ("4AA_sims", "4AA.csv"),
    "4aa_implicit": ("4AA_sims_implicit", "4AA_implicit.csv"),
}
ATLAS_SPLIT = "atlas.csv"
TARGETS = ("weights", *DATASETS, "atlas")


def download(cfg: DictConfig) -> None:
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise DownloadError(f"target={unknown or targets}: choose from {list(TARGETS)}")
    for target in targets:
        if target == "weights":
            download_weights(cfg)
        elif target == "atlas":
            names = requested_names(cfg, Path(cfg.splits_dir) / ATLAS_SPLIT)
            fetch_atlas_entries(
                names,
                Path(cfg.data_dir) / "atlas_sims",
                url_template=cfg.atlas_url,
                timeout_s=float(cfg.timeout_s),
                keep_archives=bool(cfg.keep_archives),
            )
        else:
            download_dataset(cfg, target)


def download_weights(cfg: DictConfig) -> None:
    names = list(cfg.names) if cfg.names is not None else list(PUBLISHED_WEIGHTS)
    weights_dir = Path(cfg.weights_dir)
    repo = HubRepo(cfg.model_repo, "model", cfg.revision, cfg.hf_endpoint)
    originals = fetch_hub_files(
        repo,
        [f"{name}.ckpt" for name in names],
        weights_dir / "original",
        timeout_s=float(cfg.timeout_s),
        workers=int(cfg.workers),
    )
    if not cfg.convert:
        return
    for original in originals:
        result = convert_checkpoint(original, weights_dir / original.name)
        for line in result.lines():
            print(line)


def download_dataset(cfg: DictConfig, target: str) -> None:
    folder, split_file = DATASETS[target]
    names = requested_names(cfg, Path(cfg.splits_dir) / split_file)
    repo = HubRepo(cfg.dataset_repo, "dataset", cfg.revision, cfg.hf_endpoint)
    wanted = [f"{folder}/{name}/{name}.{ext}" for name in names for ext in ("pdb", "xtc")]
    fetch_hub_files(
        repo,
        wanted,
        Path(cfg.data_dir),
        listing=lambda: list_files(repo, folder),
        timeout_s=float(cfg.timeout_s),
        workers=int(cfg.workers),
    )
    print(f"{target}: {len(names)} entries in {Path(cfg.data_dir) / folder} (NAME/NAME.pdb + NAME.xtc)")


def requested_names(cfg: DictConfig, default_split: Path) -> list[str]:
    """`names`, else the names of `split`, else those of the target's published split list."""
    if cfg.names is not None:
        return [cfg.names] if isinstance(cfg.names, str) else [str(n) for n in cfg.names]
    return split_names(read_split(Path(cfg.split) if cfg.split is not None else default_split))


@hydra_main("download")
@user_errors("mdgen.download")
def main(cfg: DictConfig) -> None:
    download(cfg)


if __name__ == "__main__":
    main()
