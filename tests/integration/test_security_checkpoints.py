"""A checkpoint is data, never code: pickle payloads and foreign `_target_`s are refused before they run.

Checkpoints here are built in-process (an untrained `model=tiny` module and the config mdgen.train
stores), so the tests take seconds; the refusals are checked through `load_module`, the real
`python -m mdgen.sample` entry point (in-process, via its Hydra main) and train's resume.
"""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cli_runner import run_main
from mdgen.config import (
    IncompatibleCheckpointError,
    UnsafeCheckpointError,
    allowed_targets,
    config_dir,
    load_module,
)
from mdgen.module import CHECKPOINT_KEY
from tiny_checkpoint import untrained_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
GWEK = REPO_ROOT / "data" / "demo" / "md" / "GWEK"


class FileCreatingPayload:
    """Unpickling this runs `exec`, which creates `marker`: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('payload ran')",)


@pytest.fixture(scope="module")
def plain_checkpoint(tmp_path_factory) -> dict:
    """The dict mdgen.train saves (config, task, weights) for an untrained tiny forward model."""
    return untrained_checkpoint(tmp_path_factory.mktemp("run"), num_frames=6)


def save(checkpoint: dict, path: Path) -> Path:
    torch.save(checkpoint, path)
    return path


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# ---- pickle payloads --------------------------------------------------------------------------------------


def test_the_payload_is_live_when_unpickled_without_restriction(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(FileCreatingPayload(marker)))  # what weights_only=False would let happen
    assert marker.read_text() == "payload ran"


def test_a_plain_checkpoint_loads_with_weights_only(plain_checkpoint, tmp_path):
    path = save(plain_checkpoint, tmp_path / "plain.ckpt")
    torch.load(path, weights_only=True)
    module = load_module(path)
    assert module.task.name == "forward" and not module.training


def test_a_pickle_payload_is_refused_by_load_module_and_never_runs(plain_checkpoint, tmp_path):
    marker = tmp_path / "ran"
    path = save({**plain_checkpoint, "extra": FileCreatingPayload(marker)}, tmp_path / "payload.ckpt")
    with pytest.raises(UnsafeCheckpointError, match=r"refused: .*pickled object \(exec\)"):
        load_module(path)
    assert not marker.exists()


def test_sample_refuses_a_pickle_payload_in_one_line(plain_checkpoint, tmp_path, capsys):
    marker = tmp_path / "ran"
    path = save({**plain_checkpoint, "extra": FileCreatingPayload(marker)}, tmp_path / "payload.ckpt")
    out_dir = tmp_path / "out"
    code, _, stderr = run_main(
        capsys, "sample", f"ckpt_path={path}", f"out_dir={out_dir}", f"input_pdb={GWEK / 'GWEK.pdb'}"
    )
    assert code == 2 and not marker.exists() and not out_dir.exists()
    lines = error_lines(stderr)
    assert (
        len(lines) == 1
        and lines[0].startswith("mdgen.sample: error: ")
        and "pickled object (exec)" in lines[0]
    )


def test_train_resume_refuses_a_pickle_payload(plain_checkpoint, tmp_path, capsys):
    from mdgen.train import main

    marker = tmp_path / "ran"
    path = save({**plain_checkpoint, "extra": FileCreatingPayload(marker)}, tmp_path / "payload.ckpt")
    saved = sys.argv
    sys.argv = [
        "mdgen/train.py",
        "experiment=demo_forward",
        "model=tiny",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"ckpt_path={path}",
    ]
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        sys.argv = saved
    assert exit_.value.code != 0 and not marker.exists()
    assert "pickled object (exec)" in capsys.readouterr().err


def test_lightning_resume_is_told_to_load_weights_only(plain_checkpoint, tmp_path):
    """train's `trainer.fit(..., weights_only=True)`: Lightning's own loader refuses the payload as well."""
    from lightning.fabric.utilities.cloud_io import _load as lightning_load

    import mdgen.train

    marker = tmp_path / "ran"
    path = save({**plain_checkpoint, "extra": FileCreatingPayload(marker)}, tmp_path / "payload.ckpt")
    with pytest.raises(pickle.UnpicklingError):
        lightning_load(path, weights_only=True)
    assert not marker.exists()
    source = Path(mdgen.train.__file__).read_text()
    assert "ckpt_path=ckpt_path, weights_only=True)" in source


# ---- files that are no checkpoint -------------------------------------------------------------------------


def test_a_text_file_is_not_a_pytorch_checkpoint(tmp_path, capsys):
    text = tmp_path / "notes.ckpt"
    text.write_text("hello\n")
    with pytest.raises(IncompatibleCheckpointError, match="is not a PyTorch checkpoint"):
        load_module(text)
    code, _, stderr = run_main(
        capsys, "sample", f"ckpt_path={text}", f"out_dir={tmp_path / 'out'}", f"input_pdb={GWEK / 'GWEK.pdb'}"
    )
    lines = error_lines(stderr)
    assert code == 2 and len(lines) == 1
    assert (
        lines[0]
        == f"mdgen.sample: error: {text} is not a PyTorch checkpoint (not a torch.save archive: another kind of file, or truncated)"
    )


@pytest.mark.parametrize("keep", [0, 0.5, 0.999])
def test_truncated_or_empty_checkpoints_are_refused_in_one_line(plain_checkpoint, tmp_path, keep):
    whole = save(plain_checkpoint, tmp_path / "whole.ckpt").read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(IncompatibleCheckpointError) as error:
        load_module(cut)
    assert "\n" not in str(error.value) and str(cut) in str(error.value)


def test_a_checkpoint_that_is_a_tensor_is_not_an_mdgen_checkpoint(tmp_path):
    path = save(torch.zeros(3), tmp_path / "tensor.ckpt")
    with pytest.raises(IncompatibleCheckpointError, match="no mdgen config"):
        load_module(path)


# ---- _target_ allow-list ------------------------------------------------------------------------------------


def conf_targets() -> set[str]:
    """Every `_target_` of conf/ that can reach a run's stored config. Hydra's own settings (files under
    conf/hydra/ and `hydra:` nodes, e.g. the Optuna sweeper of conf/hparams_search/) configure the
    launcher and sweeper: Hydra keeps them out of the composed config that a checkpoint stores."""
    targets = set()

    def walk(node, top_level=False):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_target_":
                    targets.add(value)
                elif not (top_level and key == "hydra"):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in config_dir().rglob("*.yaml"):
        if "hydra" not in path.relative_to(config_dir()).parts:
            walk(yaml.safe_load(path.read_text()), top_level=True)
    return targets


def test_every_target_that_conf_uses_is_allowed():
    targets = conf_targets()
    assert {"mdgen.module.MDGenModule", "torch.optim.AdamW", "mdgen.tasks.TaskSpec"} <= targets
    assert targets <= allowed_targets(), sorted(targets - allowed_targets())
    assert "shutil.copyfile" not in allowed_targets() and "os.system" not in allowed_targets()


def _copyfile_node(source: Path, destination: Path) -> dict:
    return {"_target_": "shutil.copyfile", "src": str(source), "dst": str(destination)}


def _tamper(config: dict, how: str, source: Path, destination: Path) -> dict:
    config = copy.deepcopy(config)
    node = _copyfile_node(source, destination)
    if how == "top-level target":
        config["model"] = node
    elif how == "nested":
        config["model"]["extra"] = node
    elif how == "partial":
        config["scheduler"] = {**node, "_partial_": True}
    elif how == "in a list":
        config["model"]["layers"] = [1, node]
    elif how == "by interpolation":
        config["innocent"] = "shutil.copyfile"
        config["model"] = {**node, "_target_": "${innocent}"}
    elif how == "unused section":
        config["data"] = node  # never instantiated by load_module, still refused
    return config


@pytest.mark.parametrize(
    "how", ["top-level target", "nested", "partial", "in a list", "by interpolation", "unused section"]
)
def test_a_foreign_target_in_the_stored_config_is_refused_before_anything_is_built(
    plain_checkpoint, tmp_path, how
):
    source, destination = tmp_path / "source.txt", tmp_path / "copied.txt"
    source.write_text("secret")
    entry = plain_checkpoint[CHECKPOINT_KEY]
    tampered = _tamper(entry["config"], how, source, destination)
    path = save({**plain_checkpoint, CHECKPOINT_KEY: {**entry, "config": tampered}}, tmp_path / "t.ckpt")
    with pytest.raises(UnsafeCheckpointError, match=r"_target_ 'shutil\.copyfile'") as error:
        load_module(path)
    assert "\n" not in str(error.value)
    assert not destination.exists()


def test_an_escaped_interpolation_cannot_smuggle_a_target_past_the_check(plain_checkpoint, tmp_path):
    source, destination = tmp_path / "source.txt", tmp_path / "copied.txt"
    source.write_text("secret")
    entry = plain_checkpoint[CHECKPOINT_KEY]
    config = copy.deepcopy(entry["config"])
    config["innocent"] = "shutil.copyfile"
    config["model"] = {**_copyfile_node(source, destination), "_target_": "\\${innocent}"}
    path = save({**plain_checkpoint, CHECKPOINT_KEY: {**entry, "config": config}}, tmp_path / "t.ckpt")
    with pytest.raises(UnsafeCheckpointError):
        load_module(path)
    assert not destination.exists()


def test_sample_refuses_a_foreign_target_in_one_line_naming_it(plain_checkpoint, tmp_path, capsys):
    source, destination = tmp_path / "source.txt", tmp_path / "copied.txt"
    source.write_text("secret")
    entry = plain_checkpoint[CHECKPOINT_KEY]
    tampered = _tamper(entry["config"], "top-level target", source, destination)
    path = save({**plain_checkpoint, CHECKPOINT_KEY: {**entry, "config": tampered}}, tmp_path / "t.ckpt")
    out_dir = tmp_path / "out"
    code, _, stderr = run_main(
        capsys, "sample", f"ckpt_path={path}", f"out_dir={out_dir}", f"input_pdb={GWEK / 'GWEK.pdb'}"
    )
    lines = error_lines(stderr)
    assert code == 2 and len(lines) == 1 and "'shutil.copyfile' (at model._target_)" in lines[0]
    assert not destination.exists() and not out_dir.exists()


def test_a_logger_class_of_an_older_conf_in_an_unbuilt_section_is_accepted(plain_checkpoint, tmp_path):
    """Logger/callback nodes are a record, never built from a checkpoint: a lightning class that conf/
    no longer names there (CSVLogger before mdgen's appending logger) must not make the checkpoint unusable."""
    entry = plain_checkpoint[CHECKPOINT_KEY]
    config = copy.deepcopy(entry["config"])
    config["logger"] = {"csv": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "x"}}
    assert "lightning.pytorch.loggers.CSVLogger" not in allowed_targets()
    path = save({**plain_checkpoint, CHECKPOINT_KEY: {**entry, "config": config}}, tmp_path / "old.ckpt")
    assert load_module(path).task.name == entry["config"]["task"]["name"]
    config["model"] = {**config["model"], "_target_": "lightning.pytorch.loggers.CSVLogger"}
    path = save({**plain_checkpoint, CHECKPOINT_KEY: {**entry, "config": config}}, tmp_path / "built.ckpt")
    with pytest.raises(UnsafeCheckpointError, match="CSVLogger"):
        load_module(path)
