"""``hydra.launcher.*``: the typed options of the shard launchers, their single source.

Hydra selects them through YAML files (``hydra_plugins/shard_launcher/conf/``,
which mirror these classes, as a test pins), so that importing the plugins
registers nothing; each launcher validates the values it gets against its
class (:func:`launcher.launchers.base.to_options`). The ``_target_`` paths point
into the ``hydra_plugins`` namespace package because Hydra only instantiates
launchers defined there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PLUGINS = "hydra_plugins.shard_launcher.plugins"


@dataclass
class LaunchConfig:
    """Options every shard launcher shares."""

    # Block until every shard has ended, print per-shard results, exit non-zero if one failed.
    # None: slurm submits our shard sweeps and returns; local waits; any other app waits.
    wait: bool | None = None
    # Print what would be launched (arrays, shards, sbatch script) and launch nothing.
    dry_run: bool = False
    # Launch only shards with no completion marker for the same task config (only-missing
    # relaunch); false launches every shard (items already done are still skipped).
    skip_done: bool = True
    # Shards running at once: SLURM's --array=...%P; local: processes at once
    # (None: slurm 256, local: the CPUs here divided by backbone.num_workers).
    array_parallelism: int | None = None


@dataclass
class LocalConfig(LaunchConfig):
    """``hydra/launcher=local``: each shard in its own process on this machine."""

    _target_: str = f"{PLUGINS}.LocalLauncher"


@dataclass
class SlurmConfig(LaunchConfig):
    """``hydra/launcher=slurm``: one SLURM array per job config, through submitit."""

    _target_: str = f"{PLUGINS}.SlurmLauncher"
    partition: str | None = None  # None: the cluster's default partition
    account: str | None = None
    qos: str | None = None
    timeout_min: int = 60  # time limit of each array element
    nodes: int = 1
    cpus_per_task: int | None = None  # None: backbone.num_workers when set, else SLURM's default
    gpus_per_task: int | None = None
    gres: str | None = None  # e.g. gpu:a100:1
    mem: str | None = None  # SLURM syntax, e.g. 16G
    constraint: str | None = None
    exclude: str | None = None
    job_name: str | None = None  # None: the task's class name
    signal_delay_s: int = 90  # USR2 this long before the time limit: stop, requeue, resume
    max_num_timeout: int = 3  # requeues after reaching the time limit (preemptions are free)
    setup: list[str] = field(default_factory=list)  # shell lines before the job (module load ...)
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # more #SBATCH --k=v
    python: str | None = None  # command that starts python in the job (default: this interpreter)


@dataclass
class AutoConfig(SlurmConfig):
    """``hydra/launcher=auto``, the default for ``-m``: slurm if a controller answers, else local"""

    _target_: str = f"{PLUGINS}.AutoLauncher"


@dataclass
class ShardSweeperConfig:
    """``hydra/sweeper=shard``: Hydra's cartesian sweep, with the ``shard.idx`` axis kept whole."""

    _target_: str = f"{PLUGINS}.ShardSweeper"
    max_batch_size: int | None = None  # only for launchers that run job by job
    params: dict[str, str] | None = None
