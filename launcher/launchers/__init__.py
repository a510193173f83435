"""Launchers for ``-m`` sweeps: a shard sweep runs as arrays, one per job config.

- :mod:`~launcher.launchers.sweeper`: keeps the ``shard.idx`` axis whole;
- :mod:`~launcher.launchers.arrays`: composes each array once, skips shards already done;
- :mod:`~launcher.launchers.local` / :mod:`~launcher.launchers.slurm` / ``auto``: backends;
- :mod:`~launcher.launchers.element`: what runs in each array element;
- :mod:`~launcher.launchers.config`: their ``hydra.launcher.*`` options.

Hydra finds them through the shims in ``hydra_plugins/shard_launcher``.
"""
