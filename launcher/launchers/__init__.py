"""Launchers for ``-m`` sweeps: a shard sweep runs as arrays, one per job config.

- :mod:`~launcher.launchers.sweeper`: keeps the ``shard.idx`` axis whole;
- :mod:`~launcher.launchers.arrays`: composes each array once, skips shards already done;
- :mod:`~launcher.launchers.local` / :mod:`~launcher.launchers.slurm` / ``auto``: backends;
- :mod:`~launcher.launchers.element`: what runs in each array element;
- :mod:`~launcher.launchers.general`: any other Hydra app's jobs, one process each;
- :mod:`~launcher.launchers.probe`: whether a SLURM controller answers;
- :mod:`~launcher.launchers.config`: their ``hydra.launcher.*`` options.

Hydra finds them through the shims in ``hydra_plugins/shard_launcher``, and their
options through its YAML files (a search path plugin).
"""
