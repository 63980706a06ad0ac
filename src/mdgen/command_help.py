"""The `--help` text of every Hydra command, made from the command's own root config when asked.

Each root config (`conf/<command>.yaml`) selects `hydra/help: mdgen` (conf/hydra/help/mdgen.yaml), whose
parts are these OmegaConf resolvers. So the help of `mdgen.sample` shows what `mdgen.sample` composes
(its header comment, the options it requires, its config groups, every option and default), never the
other commands' groups, and nothing in it is written twice: a new option, group or group file shows
up without editing any help text.

Hydra fills the template with `string.Template`, so every `$` of the generated text is doubled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

HELP_TEMPLATE = "mdgen"  # conf/hydra/help/mdgen.yaml


def register_help_resolvers() -> None:
    """Register the `mdgen_help_*` resolvers of conf/hydra/help/mdgen.yaml (once per process)."""
    resolvers = {
        "mdgen_help_header": help_header,
        "mdgen_help_required": help_required,
        "mdgen_help_groups": help_groups,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def _escaped(text: str) -> str:
    return text.replace("$", "$$")


def root_comment(config_name: str) -> list[str]:
    """The comment block at the top of `conf/<config_name>.yaml`, without the `# ` marks."""
    lines = []
    for line in _config_file(config_name).read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" "))
    return lines


def help_header(config_name: str) -> str:
    """Usage line (module and console script), the root config's header comment and where it is."""
    usage = f"python -m mdgen.{config_name} [key=value ...]   (or: mdgen-{config_name} [key=value ...])"
    where = f"Every option is explained in {_config_file(config_name)}."
    return _escaped("\n".join([usage, "", *root_comment(config_name), where]))


def help_required(*, _root_: DictConfig) -> str:
    """The options without a default (`???`), one a line; they must be given on the command line."""
    options = OmegaConf.masked_copy(_root_, [key for key in _root_ if key != "hydra"])  # not this template
    missing = sorted(OmegaConf.missing_keys(options))
    return _escaped("\n".join(f"  {key}" for key in missing) or "  (none)")


def help_groups(choices: DictConfig | dict[str, Any]) -> str:
    """This command's config groups (its composed defaults tree), each with its options, the chosen one `*`."""
    lines = []
    for group, choice in sorted(dict(choices).items()):
        if group == "hydra" or group.startswith("hydra/"):
            continue
        options = group_options(group) or ([choice] if choice else [])
        shown = ", ".join(f"{option}*" if option == choice else option for option in options)
        if choice is None:
            shown += "   (none chosen)"
        elif choice not in options:  # `optional` in the defaults list, e.g. local: default
            shown += f"   (default {choice}: optional, no such file)"
        lines.append(f"  {group}: {shown}")
    return _escaped("\n".join(lines) or "  (none)")


def group_options(group: str) -> list[str]:
    """Option names of a config group of conf/ (its `*.yaml` files); [] for a group not in conf/."""
    from mdgen.config import config_dir

    return sorted(path.stem for path in (config_dir() / group).glob("*.yaml"))


def _config_file(config_name: str) -> Path:
    from mdgen.config import config_dir

    return config_dir() / f"{config_name}.yaml"
