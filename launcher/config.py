"""The one place where config schemas are registered with Hydra's ConfigStore.

Each schema lives beside what it configures; registering them makes a typo
such as ``backbone.num_worker=4`` fail with Hydra's message naming the key.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from launcher.app import Config
from launcher.backbones.mp import MpConfig
from launcher.shard import ShardConfig, Strategy


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="backbone", name="mp", node=MpConfig)
    cs.store(group="shard", name="soft", node=ShardConfig)
    cs.store(group="shard", name="hard", node=ShardConfig(strategy=Strategy.hard))
