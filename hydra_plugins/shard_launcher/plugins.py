"""Thin shims: Hydra instantiates plugins only from classes defined in ``hydra_plugins``.

Hydra's plugin scan imports this module in every Hydra app of the environment,
so it imports nothing of ours: each shim imports its implementation in
:mod:`launcher.launchers` when Hydra instantiates it, and hands every call on.
Nothing here touches Hydra's ConfigStore either: the options are YAML files that
:class:`ShardLauncherSearchPath` makes selectable from any Hydra app; our own
app's config nodes are registered when it starts (:func:`launcher.config.register_configs`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.launcher import Launcher
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.plugins.sweeper import Sweeper

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

CONF = "pkg://hydra_plugins.shard_launcher.conf"


class ShardLauncherSearchPath(SearchPathPlugin):
    """Adds ``hydra/launcher=auto|local|slurm`` and ``hydra/sweeper=shard``, and nothing else."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="shard-launcher", path=CONF)


class _Shim(Launcher):
    """A launcher whose implementation is imported when Hydra instantiates it."""

    def __init__(self, **params: Any) -> None:
        self.impl = self.implementation()(**params)

    @staticmethod
    @abstractmethod
    def implementation() -> type[Launcher]: ...

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        return self.impl.launch(job_overrides, initial_job_idx)


class AutoLauncher(_Shim):
    """``hydra/launcher=auto``: SLURM when a controller answers, else local processes."""

    @staticmethod
    def implementation() -> type[Launcher]:
        from launcher.launchers.auto import AutoLauncher

        return AutoLauncher


class LocalLauncher(_Shim):
    """``hydra/launcher=local``: each job or shard in its own process, a few at once."""

    @staticmethod
    def implementation() -> type[Launcher]:
        from launcher.launchers.local import LocalLauncher

        return LocalLauncher


class SlurmLauncher(_Shim):
    """``hydra/launcher=slurm``: one SLURM array per batch of jobs or per shard array."""

    @staticmethod
    def implementation() -> type[Launcher]:
        from launcher.launchers.slurm import SlurmLauncher

        return SlurmLauncher


class ShardSweeper(Sweeper):
    """``hydra/sweeper=shard``: a shard sweep handed over whole, as arrays."""

    def __init__(self, **params: Any) -> None:
        from launcher.launchers.sweeper import ShardSweeper

        self.impl = ShardSweeper(**params)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.impl.sweep(arguments)
