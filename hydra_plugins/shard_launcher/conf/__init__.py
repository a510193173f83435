"""``hydra/launcher/{auto,local,slurm}.yaml`` and ``hydra/sweeper/shard.yaml``, nothing else.

Each file mirrors its dataclass in :mod:`launcher.launchers.config` (a test pins
that); the launchers validate what they get against that dataclass.
"""
