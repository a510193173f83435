"""A fast ``--help``: the same page Hydra prints, without composing any config.

Hydra's own help composes the config once per option of every group, Hydra's
included (about a second here); listing the files and schemas directly takes
a fraction of that. ``task=NAME --help`` adds the task's own keys with their
defaults (composed by Hydra); any other argument beside ``--help`` goes through
Hydra.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import yaml


def config_groups(conf_dirs: list[Path]) -> dict[str, list[str]]:
    from launcher.config import SCHEMAS

    groups: dict[str, set[str]] = defaultdict(set)
    for group, name in SCHEMAS:
        if group is not None and not group.startswith("hydra/"):  # Hydra's own: --hydra-help
            groups[group].add(name)
    for conf_dir in conf_dirs:
        for path in conf_dir.rglob("*.yaml"):
            group = path.parent.relative_to(conf_dir).as_posix()  # nested: "task/sub"
            if group != "." and group.split("/")[0] != "hydra":
                groups[group].add(path.stem)
    return {g: sorted(groups[g]) for g in sorted(groups)}


def help_text(conf_dirs: list[Path]) -> str:
    """Hydra's app help page; the first folder holds the primary config."""
    help_cfg = yaml.safe_load((conf_dirs[0] / "config.yaml").read_text())["hydra"]["help"]
    groups = "\n".join(f"{g}: {', '.join(opts)}" for g, opts in config_groups(conf_dirs).items())
    return (
        help_cfg["template"]
        .replace("${hydra.help.header}", help_cfg["header"])
        .replace("${hydra.help.footer}", help_cfg["footer"] + "\n")
        .replace("$APP_CONFIG_GROUPS", groups + "\n")
    )


def task_help(overrides: list[str]) -> int:
    """Print the help page and the chosen task's keys with their defaults; the exit code."""
    from omegaconf import OmegaConf

    from launcher.api import compose
    from launcher.errors import UserError
    from launcher.searchpath import config_dirs

    try:
        cfg = compose(overrides)
    except UserError as e:
        print(e, file=sys.stderr)
        return e.exit_code
    name = next(o.split("=", 1)[1] for o in overrides if o.startswith("task="))
    keys = OmegaConf.to_yaml(cfg.task).rstrip("\n")
    print(help_text(config_dirs()), end="")
    print(f"== task={name}: its keys and their defaults (task.KEY=VALUE) ==\n{keys}")
    return 0
