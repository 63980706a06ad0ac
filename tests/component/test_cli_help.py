"""The commands as a user meets them: `--help` per command, console scripts, configs found as package data.

Every `--help` runs through the command's real Hydra entry point (`main()` with `sys.argv` set) in this
process. The expected required options and config groups are read from the root YAML files with PyYAML
and from the conf/ directory listing, not from mdgen's help code.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
import tomllib
import torch
import yaml

from cli_runner import run_main
from mdgen.config import config_dir
from tiny_checkpoint import untrained_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF = REPO_ROOT / "conf"
HYDRA_COMMANDS = ("train", "sample", "evaluate", "prepare", "simulate", "convert", "export", "download")
TRAINING_GROUPS = ("task", "data", "model", "interpolant", "optimizer", "trainer", "callbacks", "logger")


def section(help_text: str, title: str) -> list[str]:
    """The lines of the `== title ... ==` section of a help text, up to the next section."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"== {title}"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("== ")), len(lines))
    return [line.strip() for line in lines[start + 1 : end] if line.strip()]


def required_in_yaml(node, prefix: str = "") -> set[str]:
    """Dotted keys whose value is `???` in a YAML mapping (PyYAML reads `???` as that string)."""
    found = set()
    for key, value in node.items():
        if isinstance(value, dict):
            found |= required_in_yaml(value, f"{prefix}{key}.")
        elif value == "???":
            found.add(f"{prefix}{key}")
    return found


def root_groups(command: str) -> dict[str, str | None]:
    """The config groups a root YAML's defaults list composes (not Hydra's own), with their default."""
    root = yaml.safe_load((CONF / f"{command}.yaml").read_text())
    groups = {}
    for entry in root.get("defaults", []):
        if isinstance(entry, dict):
            ((key, value),) = entry.items()
            if not key.startswith("override ") and key != "hydra":
                groups[key.removeprefix("optional ")] = value
    return groups


# sample, train and evaluate (the ConfigStore root) in the fast suite; the other five in `make test-full`.
@pytest.mark.parametrize(
    "command",
    [*HYDRA_COMMANDS[:3], *(pytest.param(c, marks=pytest.mark.slow) for c in HYDRA_COMMANDS[3:])],
)
def test_help_lists_required_options_and_only_its_own_groups(capsys, command):
    """Catches: a root config that loses `override hydra/help: mdgen` (Hydra's default help lists every
    group of conf/, e.g. trainer/ in `mdgen.sample --help`), a required option missing from the list,
    a group or group file missing."""
    code, out, err = run_main(capsys, command, "--help")
    assert code == 0, err

    root = yaml.safe_load((CONF / f"{command}.yaml").read_text())
    required = section(out, "Required options")
    assert set(required) >= required_in_yaml(root), out
    if not root_groups(command):  # nothing composed in: the root's ??? keys are all there is
        assert set(required) == (required_in_yaml(root) or {"(none)"})

    group_lines = section(out, "Config groups")
    listed = {line.split(":")[0]: line for line in group_lines if line != "(none)"}
    expected = root_groups(command)
    assert set(listed) == set(expected), group_lines
    for group, default in expected.items():
        options = sorted(path.stem for path in (CONF / group).glob("*.yaml"))
        shown = [name.removesuffix("*") for name in listed[group].split(":", 1)[1].split("(")[0].split(", ")]
        assert [name.strip() for name in shown] == options, listed[group]
        if default in options:
            assert f" {default}*" in listed[group], listed[group]
        elif default is not None:  # an `optional` group whose default file is absent (conf/local)
            assert f"(default {default}: optional, no such file)" in listed[group], listed[group]

    if command != "train":
        assert not set(TRAINING_GROUPS) & set(listed), group_lines
        options = section(out, "Options and their defaults")
        composed = [line for line in options if re.fullmatch(rf"({'|'.join(TRAINING_GROUPS)}):", line)]
        assert not composed, composed  # a training group's section (evaluate's `task: forward` is a value)
    assert f"python -m mdgen.{command}" in out and f"mdgen-{command}" in out


def test_sample_help_names_the_sampling_options_not_training_ones(capsys):
    """The review's example: `mdgen.sample --help` shows sampling options (and the sampler group), not
    the training groups (callbacks, trainer, data, ...) that share conf/."""
    _, out, _ = run_main(capsys, "sample", "--help")
    assert section(out, "Required options") == ["ckpt_path", "out_dir"]
    assert section(out, "Config groups") == ["sampler: ab2, dopri5, euler, heun, task*"]
    for option in ("num_rollouts: null", "num_chunks: null", "input_pdb: null", "batch_size: 1"):
        assert option in out
    assert "trainer" not in out and "callbacks" not in out


def test_configs_are_found_as_the_package_mdgen_conf_in_the_repository():
    """An editable install maps the package mdgen.conf to the repository's conf/ (edits seen at once);
    catches the mapping pointing at a copy (e.g. a build directory)."""
    import mdgen.conf

    assert config_dir().resolve() == CONF.resolve()
    assert Path(mdgen.conf.__file__).resolve().parent == CONF.resolve()


def test_every_python_m_command_has_a_console_script():
    """Catches a command (a module with a `__main__` block) without its `mdgen-X` script, or a script
    whose target does not exist. A console script exits with its function's result, so a target must
    return None (bench.main returns its measurement, hence bench.cli)."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    commands = sorted(
        path.stem
        for path in (REPO_ROOT / "src" / "mdgen").glob("*.py")
        if 'if __name__ == "__main__":' in path.read_text()
    )
    assert sorted(name.removeprefix("mdgen-") for name in scripts) == commands
    for name, target in scripts.items():
        module_name, function_name = target.split(":")
        assert module_name == f"mdgen.{name.removeprefix('mdgen-')}"
        assert callable(getattr(importlib.import_module(module_name), function_name))
    assert scripts["mdgen-bench"] == "mdgen.bench:cli"


@pytest.fixture()
def without_openmm(monkeypatch):
    """OpenMM and PDBFixer not installed (`import openmm` raises ModuleNotFoundError), as without [md]."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("openmm", "pdbfixer") or name in (
            "mdgen.md.simulation",
            "mdgen.md.peptide_builder",
            "mdgen.sampling.relax",
        ):
            monkeypatch.delitem(sys.modules, name)
    for name in ("openmm", "openmm.app", "openmm.unit", "pdbfixer"):
        monkeypatch.setitem(sys.modules, name, None)


def test_simulate_without_openmm_says_which_extra_to_install(capsys, tmp_path, without_openmm):
    """Catches a top-level OpenMM import in the simulate entry point (a traceback at import) and a
    missing-extra error that is not the one-line user error naming `[md]`."""
    code, _, err = run_main(capsys, "simulate", "sequences=[AA]", f"out_dir={tmp_path}", "length_ns=0.001")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("mdgen.simulate: error: ") and "'openmm'" in line and "mdgen[md]" in line


def test_sampling_from_a_sequence_without_openmm_says_which_extra_to_install(
    capsys, tmp_path, without_openmm
):
    """Sequence-only sampling builds the peptide with OpenMM: without [md] it is one line naming the
    extra; catches a broad `except` turning it into a traceback or another message."""
    torch.save(untrained_checkpoint(tmp_path, num_frames=4), tmp_path / "tiny.ckpt")
    code, _, err = run_main(
        capsys,
        "sample",
        f"ckpt_path={tmp_path / 'tiny.ckpt'}",
        f"out_dir={tmp_path / 'out'}",
        "sequences=[AAAA]",
    )
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("mdgen.sample: error: ")]
    assert len(lines) == 1 and "mdgen[md]" in lines[0], err


def test_help_header_keeps_dollar_signs_through_hydras_template(monkeypatch, tmp_path):
    """Hydra fills the help template with `string.Template`: a `$HOME` in a root config's header comment
    must come out as written (catches the generated text not being escaped: KeyError or a lost `$`)."""
    import string

    from mdgen.command_help import help_header

    (tmp_path / "demo.yaml").write_text("# python -m mdgen.demo out_dir=$HOME/x\n# costs $5\nkey: 1\n")
    monkeypatch.setattr("mdgen.config.config_dir", lambda: tmp_path)
    text = string.Template(help_header("demo")).substitute()
    assert text.splitlines()[2:4] == ["python -m mdgen.demo out_dir=$HOME/x", "costs $5"]
