"""The one place where our app's config schemas are registered with Hydra's ConfigStore.

Each schema lives beside what it configures; registering them makes a typo
such as ``backbone.num_worker=4`` fail with Hydra's message naming the key.
They are registered when our app starts (:mod:`launcher.cli`), never on import:
the ConfigStore is global, and another Hydra app in the same environment must
not see our ``backbone``/``shard`` options or a root schema in place of its own.
The names that are not group options carry a ``shard_launcher_`` prefix so they
cannot take the place of a user's ``config`` or ``base_config``. Hydra's
``hydra/launcher`` and ``hydra/sweeper`` options are YAML files of the plugin
(``hydra_plugins/shard_launcher/conf``).
"""

from __future__ import annotations

from launcher.app import Config
from launcher.backbones import AutoConfig
from launcher.backbones.mp import MpConfig
from launcher.backbones.torch import TorchConfig
from launcher.shard import ShardConfig, Strategy

ROOT = "shard_launcher_base"  # conf/config.yaml's first default
KAGURAZAKA = "shard_launcher_kagurazaka_task"  # conf/task/kagurazaka.yaml's first default

# (group, option) -> schema; group None is the root config
SCHEMAS: dict[tuple[str | None, str], object] = {
    (None, ROOT): Config,
    ("backbone", "auto"): AutoConfig,
    ("backbone", "mp"): MpConfig,
    ("backbone", "torch"): TorchConfig,
    ("shard", "soft"): ShardConfig,
    ("shard", "hard"): ShardConfig(strategy=Strategy.hard),
}


def register_configs() -> None:
    """Register our app's schemas; called by our entry point before Hydra composes."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for (group, name), node in SCHEMAS.items():
        cs.store(group=group, name=name, node=node)
    # not a group option (so not in SCHEMAS, which --help lists): the base of task=kagurazaka
    from launcher.compat.kagurazaka import config_node

    cs.store(name=KAGURAZAKA, node=config_node())
