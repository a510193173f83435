"""Adapters that run task files written for other frameworks on this launcher.

Each adapter is a :class:`launcher.Task` (or :class:`launcher.TorchTask`), so
planning, sharding, records, backbones and SLURM apply to it unchanged.
"""
