"""``hydra/sweeper=shard``: Hydra's cartesian sweep, with the ``shard.idx`` axis kept whole.

BasicSweeper expands ``shard.num=1000 -m`` into 1000 override lists and
composes each one to validate it before launching anything. This sweeper
expands every other parameter the same way (same order, same job numbers), but
hands each combination to the launcher with its list of shard indices, so a
shard launcher composes it once and submits it as one array. With a launcher
that only knows Hydra's job-by-job contract, or a ``shard.idx`` value that is
not a plain integer (``shard.idx=[0,1]``), or any app but ours, it hands the sweep
to BasicSweeper.

BasicSweeper is held, not subclassed: Hydra re-executes plugin modules when it
scans them again in one process (tests, notebooks), which replaces the class
that a subclass would be bound to. It is found through Hydra's public
``hydra/sweeper=basic`` config, so nothing here imports ``hydra._internal``.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from launcher.launchers.arrays import SHARD_KEY, ArraySpec
from launcher.launchers.base import ShardLauncher

if TYPE_CHECKING:
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


def axes(overrides: list[Any]) -> dict[str, list[str]]:
    """Key -> its values as override lines, in first-seen key order (later ones win)."""
    out: dict[str, list[str]] = {}
    for o in overrides:
        key = o.get_key_element()
        if o.is_sweep_override():
            out[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            out[key] = [f"{key}={o.get_value_element_as_str()}"]
    return out


def _int(line: str) -> int | None:
    value = line.split("=", 1)[1].strip()
    try:
        return int(value)
    except ValueError:
        return None


def array_specs(lists: dict[str, list[str]]) -> list[ArraySpec] | None:
    """One :class:`ArraySpec` per combination of the non-shard axes; None if not collapsible.

    Job numbers are BasicSweeper's: the position in the cartesian product of
    all axes, the last axis varying fastest.
    """
    keys = list(lists)
    values = lists.get(SHARD_KEY)
    shards = [_int(x) for x in values] if values else None
    if not shards or any(s is None for s in shards):
        return None
    shards = list(dict.fromkeys(shards))  # duplicates would run a shard twice at once
    pos = keys.index(SHARD_KEY)
    sizes = [len(dict.fromkeys(lists[k])) if k == SHARD_KEY else len(lists[k]) for k in keys]
    sizes[pos] = len(shards)
    strides = [1] * len(keys)
    for i in range(len(keys) - 2, -1, -1):
        strides[i] = strides[i + 1] * sizes[i + 1]
    others = [k for k in keys if k != SHARD_KEY]
    specs = []
    for combo in itertools.product(*(list(enumerate(lists[k])) for k in others)):
        base = sum(j * strides[keys.index(k)] for k, (j, _) in zip(others, combo, strict=True))
        lines = [line for _, line in combo]
        lines.insert(pos, f"{SHARD_KEY}={shards[0]}")
        nums = [base + p * strides[pos] for p in range(len(shards))]
        specs.append(ArraySpec(lines, list(shards), nums, shard_pos=pos))
    return specs


def basic_sweeper(max_batch_size: int | None, params: Any) -> Sweeper:
    """A new BasicSweeper, of the class Hydra's ``hydra/sweeper=basic`` names now."""
    from hydra.core.config_store import ConfigStore
    from hydra.utils import get_class

    target = ConfigStore.instance().load("hydra/sweeper/basic.yaml").node._target_
    return get_class(target)(max_batch_size=max_batch_size, params=params)


class ShardSweeper(Sweeper):
    """BasicSweeper's sweep, with our app's shard axis handed to a shard launcher as arrays."""

    def __init__(self, max_batch_size: int | None = None, params: Any = None) -> None:
        self.params = params or {}
        self.basic = basic_sweeper(max_batch_size, params)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.basic.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.config = config
        self.hydra_context = hydra_context
        launcher = self.basic.launcher  # the plugin's shim: what matters is what it wraps
        self.launcher = getattr(launcher, "impl", launcher)

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.hydra_context is not None
        if not isinstance(self.launcher, ShardLauncher) or not self.launcher.ours:
            return self.basic.sweep(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = [f"{k}={v}" for k, v in self.params.items()]
        overrides = parser.parse_overrides([*params, *arguments])
        if any(o.is_sweep_override() and not o.is_discrete_sweep() for o in overrides):
            return self.basic.sweep(arguments)  # BasicSweeper names the unsupported sweep
        specs = array_specs(axes(overrides))
        if specs is None:
            log.info("%s is not a list of integers: launching job by job", SHARD_KEY)
            return self.basic.sweep(arguments)
        if not self.launcher.opts.dry_run:
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        return [self.launcher.launch_arrays(specs)]
