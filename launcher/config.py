"""The one place where config schemas are registered with Hydra's ConfigStore.

Each schema lives beside what it configures; registering them makes a typo
such as ``backbone.num_worker=4`` fail with Hydra's message naming the key.
"""

from __future__ import annotations

from launcher.app import Config
from launcher.backbones import AutoConfig
from launcher.backbones.mp import MpConfig
from launcher.backbones.torch import TorchConfig
from launcher.shard import ShardConfig, Strategy

# (group, option) -> schema; group None is the root config
SCHEMAS: dict[tuple[str | None, str], object] = {
    (None, "base_config"): Config,
    ("backbone", "auto"): AutoConfig,
    ("backbone", "mp"): MpConfig,
    ("backbone", "torch"): TorchConfig,
    ("shard", "soft"): ShardConfig,
    ("shard", "hard"): ShardConfig(strategy=Strategy.hard),
}


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for (group, name), node in SCHEMAS.items():
        cs.store(group=group, name=name, node=node)
