"""The published splits ship in data/splits and the paper experiments compose against them."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cli_runner import run_main
from mdgen.config import compose_config

REPO_ROOT = Path(__file__).resolve().parents[2]
SPLITS = REPO_ROOT / "data" / "splits"
PAPER_EXPERIMENTS = ["4aa_forward", "4aa_interp", "4aa_upsample", "4aa_inpaint", "atlas_forward"]


@pytest.mark.parametrize(
    ("dataset", "sizes"),
    [("4AA", (3109, 100, 100)), ("4AA_implicit", (2646, 100, 100)), ("atlas", (1266, 39, 82))],
)
def test_published_splits_are_shipped_whole_and_disjoint(dataset, sizes):
    parts = [pd.read_csv(SPLITS / f"{dataset}_{part}.csv") for part in ("train", "val", "test")]
    assert tuple(len(part) for part in parts) == sizes
    names = [set(part["name"]) for part in parts]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert all({"name", "seqres"} <= set(part.columns) for part in parts)
    assert set(pd.read_csv(SPLITS / f"{dataset}.csv")["name"]) >= names[0] | names[1] | names[2]


@pytest.mark.parametrize("experiment", PAPER_EXPERIMENTS)
def test_paper_experiments_resolve_existing_split_files(experiment):
    data = compose_config([f"experiment={experiment}", f"paths.root_dir={REPO_ROOT}"]).data
    for key in ("train_split", "val_split", "test_split"):
        assert Path(data[key]).is_file(), f"{experiment}: data.{key}={data[key]} does not exist"


def test_train_cfg_job_of_4aa_forward_names_the_shipped_splits(capsys):
    """`python -m mdgen.train experiment=4aa_forward --cfg job --resolve`, run in this process."""
    code, stdout, stderr = run_main(capsys, "train", "experiment=4aa_forward", "--cfg", "job", "--resolve")
    assert code == 0, stderr[-2000:]
    data = yaml.safe_load(stdout)["data"]
    for key in ("train_split", "val_split", "test_split"):
        assert Path(data[key]).is_file() and Path(data[key]).parent == SPLITS
