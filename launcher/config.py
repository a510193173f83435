"""The one place where our app's config schemas are registered with Hydra's ConfigStore.

Each schema lives beside what it configures; a typo such as
``backbone.num_worker=4`` is refused by name with the nearest key before Hydra
composes (:func:`check_override_keys`; Hydra's own message would advise
``+backbone.num_worker=4``, which the job then refuses), and after composing
when added with ``+`` (:mod:`launcher.composed`).
They are registered when our app starts (:mod:`launcher.cli`), never on import:
the ConfigStore is global, and another Hydra app in the same environment must
not see our ``backbone``/``shard`` options or a root schema in place of its own.
The names that are not group options carry a ``shard_launcher_`` prefix so they
cannot take the place of a user's ``config`` or ``base_config``. Hydra's
``hydra/launcher`` and ``hydra/sweeper`` options are YAML files of the plugin
(``hydra_plugins/shard_launcher/conf``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from launcher.backbones import AutoConfig
from launcher.backbones.mp import MpConfig
from launcher.backbones.torch import TorchConfig
from launcher.composed import Config, RunConfig
from launcher.errors import unknown_key
from launcher.shard import ShardConfig, Strategy

if TYPE_CHECKING:
    from omegaconf import DictConfig

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
    cs.store(name=KAGURAZAKA, node=kagurazaka_node())


def kagurazaka_node() -> DictConfig:
    """The node ``launcher/conf/task/kagurazaka.yaml`` extends: ``task.mixin`` open to new keys.

    Hydra closes every dict once the config is composed (struct mode), so
    ``task.mixin.hard_shard_mode.input_path=...`` would need a ``+``; a node
    whose flag is set explicitly keeps it. It is built here, not in
    :mod:`launcher.compat.kagurazaka`, so that a job of another task does not
    import the adapter (~10 ms at every start).
    """
    from omegaconf import OmegaConf

    node = OmegaConf.create({"mixin": {}})
    OmegaConf.set_struct(node.mixin, False)
    return node


def group_keys(group: str) -> set[str] | None:
    """Every key some option of our ``group`` takes (None: not one of our schema groups)."""
    import dataclasses

    if group == "run":
        return {f.name for f in dataclasses.fields(RunConfig)}
    schemas = [node for (g, _), node in SCHEMAS.items() if g == group]
    keys = {f.name for schema in schemas for f in dataclasses.fields(schema)}
    return keys or None


def check_override_keys(overrides: Iterable[str]) -> None:
    """Refuse ``backbone.num_worker=4``, with or without ``+``, naming the nearest key,
    before Hydra does with advice to add it with ``+`` (which the job would then refuse).
    Keys some option of the group has go on to Hydra, which checks them against the
    chosen option."""
    for arg in overrides:
        key, sep, _ = arg.partition("=")
        group, dot, name = key.lstrip("+").partition(".")
        if not sep or not dot or group.startswith("~"):
            continue
        known = group_keys(group)
        first = name.split(".")[0]
        if known is not None and first not in known:
            raise unknown_key(f"{group}.{first}", known)
