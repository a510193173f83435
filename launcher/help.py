"""A fast ``--help``: the same page Hydra prints, without composing any config.

Hydra's own help composes the config once per option of every group, Hydra's
included (about a second here); listing the files and schemas directly takes
a fraction of that. Any other argument beside ``--help`` goes through Hydra.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import yaml


def config_groups(conf_dir: Path) -> dict[str, list[str]]:
    from launcher.config import SCHEMAS

    groups: dict[str, set[str]] = defaultdict(set)
    for group, name in SCHEMAS:
        if group is not None and not group.startswith("hydra/"):  # Hydra's own: --hydra-help
            groups[group].add(name)
    for path in conf_dir.glob("*/*.yaml"):
        groups[path.parent.name].add(path.stem)
    return {g: sorted(groups[g]) for g in sorted(groups)}


def help_text(conf_dir: Path) -> str:
    help_cfg = yaml.safe_load((conf_dir / "config.yaml").read_text())["hydra"]["help"]
    groups = "\n".join(f"{g}: {', '.join(opts)}" for g, opts in config_groups(conf_dir).items())
    return (
        help_cfg["template"]
        .replace("${hydra.help.header}", help_cfg["header"])
        .replace("${hydra.help.footer}", help_cfg["footer"] + "\n")
        .replace("$APP_CONFIG_GROUPS", groups + "\n")
    )
