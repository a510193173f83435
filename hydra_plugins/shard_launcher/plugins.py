"""Thin shims: Hydra instantiates plugins only from classes defined in ``hydra_plugins``.

The logic lives in :mod:`launcher.launchers`. Nothing here touches Hydra's
ConfigStore: the options are YAML files that :class:`ShardLauncherSearchPath`
makes selectable from any Hydra app; our own app's config nodes are registered
when it starts (:func:`launcher.config.register_configs`).
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from launcher.launchers import auto, local, slurm, sweeper

CONF = "pkg://hydra_plugins.shard_launcher.conf"


class ShardLauncherSearchPath(SearchPathPlugin):
    """Adds ``hydra/launcher=auto|local|slurm`` and ``hydra/sweeper=shard``, and nothing else."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="shard-launcher", path=CONF)


class AutoLauncher(auto.AutoLauncher):
    """``hydra/launcher=auto``: SLURM when a controller answers, else local processes."""


class LocalLauncher(local.LocalLauncher):
    """``hydra/launcher=local``: each job or shard in its own process, a few at once."""


class SlurmLauncher(slurm.SlurmLauncher):
    """``hydra/launcher=slurm``: one SLURM array per batch of jobs or per shard array."""


class ShardSweeper(sweeper.ShardSweeper):
    """``hydra/sweeper=shard``: a shard sweep handed over whole, as arrays."""
