"""The one place where config schemas are registered with Hydra's ConfigStore.

Each schema lives beside what it configures; registering them makes a typo
such as ``backbone.num_worker=4`` fail with Hydra's message naming the key.
"""

from __future__ import annotations

from launcher.app import Config
from launcher.backbones import AutoConfig
from launcher.backbones.mp import MpConfig
from launcher.backbones.torch import TorchConfig
from launcher.launchers import config as launchers
from launcher.shard import ShardConfig, Strategy

# (group, option) -> schema; group None is the root config
SCHEMAS: dict[tuple[str | None, str], object] = {
    (None, "base_config"): Config,
    ("backbone", "auto"): AutoConfig,
    ("backbone", "mp"): MpConfig,
    ("backbone", "torch"): TorchConfig,
    ("shard", "soft"): ShardConfig,
    ("shard", "hard"): ShardConfig(strategy=Strategy.hard),
    ("hydra/launcher", "auto"): launchers.AutoConfig,
    ("hydra/launcher", "local"): launchers.LocalConfig,
    ("hydra/launcher", "slurm"): launchers.SlurmConfig,
    ("hydra/sweeper", "shard"): launchers.ShardSweeperConfig,
}


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for (group, name), node in SCHEMAS.items():
        cs.store(group=group, name=name, node=node)
    # not a group option (so not in SCHEMAS, which --help lists): the base of task=kagurazaka
    from launcher.compat.kagurazaka import config_node

    cs.store(name="kagurazaka_task", node=config_node())
