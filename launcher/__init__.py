"""shard-launcher: dynamic, sharded, resumable data processing configured by Hydra.

The public API. Importing it stays light (no Hydra, no torch) because every
worker process imports it; :func:`run` imports Hydra when called.
"""

from launcher.api import run
from launcher.errors import ConfigError, InputError, UserError
from launcher.io import atomic_write, write_json_atomic
from launcher.modes import (
    AppendExtension,
    ByExtensions,
    ByGlob,
    BySubdir,
    FromJsonl,
    InputMode,
    OutputMode,
    PerInputFolder,
)
from launcher.task import Item, Task, TorchTask

__version__ = "0.1.0"

__all__ = [
    "AppendExtension",
    "ByExtensions",
    "ByGlob",
    "BySubdir",
    "ConfigError",
    "FromJsonl",
    "InputError",
    "InputMode",
    "Item",
    "OutputMode",
    "PerInputFolder",
    "Task",
    "TorchTask",
    "UserError",
    "atomic_write",
    "run",
    "write_json_atomic",
]
