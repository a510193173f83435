"""Thin shims: Hydra instantiates plugins only from classes defined in ``hydra_plugins``.

The logic lives in :mod:`launcher.launchers`; the configs (``hydra/launcher=
auto|local|slurm``, ``hydra/sweeper=shard``) are registered in :mod:`launcher.config`.
"""

from launcher.config import register_configs
from launcher.launchers import auto, local, slurm, sweeper


class AutoLauncher(auto.AutoLauncher):
    """``hydra/launcher=auto``: SLURM when sbatch is on PATH, else local processes."""


class LocalLauncher(local.LocalLauncher):
    """``hydra/launcher=local``: each shard in its own process, a few at once."""


class SlurmLauncher(slurm.SlurmLauncher):
    """``hydra/launcher=slurm``: one SLURM array per job config, through submitit."""


class ShardSweeper(sweeper.ShardSweeper):
    """``hydra/sweeper=shard``: a shard sweep handed over whole, as arrays."""


register_configs()
