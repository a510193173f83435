"""Who a job is: its shard, the keys that name its records, and its state dir.

Computed once, from a composed config, a shard selection and the task's bound
output folder, and read by the job (its lock, failures and completion marker),
the sweep planner (each element's tag, state dir and marker key) and the
marker checks, so that none of them can name a job differently from another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from launcher import location
from launcher.layout import default_state_dir
from launcher.shard import Shard


@dataclass(frozen=True)
class Identity:
    """One job's (or array element's) names: all of them follow from its config, its
    shard and its task's output folder."""

    shard: Shard  # the items this job owns
    tag: str  # the shard's name: its lock, marker and failures file
    config_key: str  # task config and shard split: the folder of its completion markers
    split_key: str  # the shard split (``shard.*`` but ``idx``): which items each shard owns
    task_key: str  # task class and output folder: the folder of its failures for retries
    state_dir: str | None  # where its lock, failures and marker live (None: nowhere)
    target: str | None  # the task's ``_target_``
    run_state_dir: str | None  # ``run.state_dir`` as configured (None: beside the outputs)

    @classmethod
    def of(cls, cfg: Any, shard: Shard, output_dir: str | None, idx: int | None = None) -> Identity:
        """The identity of the job ``cfg`` composes, on ``shard`` (narrowed to ``idx``, an
        array element's index, when given), its task's output folder as bound for it."""
        task, run = cfg.get("task"), cfg.get("run")
        configured = run.get("state_dir") if run else None
        whole = cls(
            shard=shard,
            tag=shard.tag(),
            config_key=config_key(cfg),
            split_key=split_key(cfg),
            task_key="",
            state_dir=None,
            target=task.get("_target_") if task else None,
            run_state_dir=str(configured) if configured else None,
        )
        return whole.element(idx, output_dir)

    def element(self, idx: int | None, output_dir: str | None) -> Identity:
        """The same config on one shard index (None: this selection), with the output
        folder bound for it; what only the config decides is not computed again."""
        shard = self.shard
        if idx is not None:
            shard = Shard(shard.num, frozenset({idx}), shard.strategy, shard.sub_num, shard.sub_idx)
        return replace(
            self,
            shard=shard,
            tag=shard.tag(),
            task_key=task_key(self.target, output_dir),
            state_dir=self.run_state_dir or (default_state_dir(output_dir) if output_dir else None),
        )


def _digest(what: Any) -> str:
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _node(cfg: Any, name: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg[name], resolve=True, enum_to_str=True) or {}


def _split(cfg: Any) -> dict[str, Any]:
    """The shard split: ``shard.*`` but ``idx``."""
    shard = _node(cfg, "shard")
    shard.pop("idx", None)
    return shard


def split_key(cfg: Any) -> str:
    """A hash of the shard split (``shard.*`` but ``idx``): which items each shard owns."""
    return _digest(_split(cfg))


def task_key(target: str | None, output_dir: str | None) -> str:
    """A hash of what names a task's items and their outputs: its class and output folder.

    Its other parameters are left out, so a retry with one of them changed (a longer
    timeout, a fixed flag) still finds the failures of the runs before it.
    """
    return _digest({"task": target, "output_dir": output_dir and location.absolute(output_dir)})


def config_key(cfg: Any) -> str:
    """A hash of what decides a shard's items and outputs: the task and the shard split.

    ``shard.idx`` is left out (the marker's name carries it), and so are the
    backbone and run options, which change how items are processed, not which.
    """
    task = _node(cfg, "task")
    task.pop("storage_options", None)  # how the store is reached, not what is done
    return _digest({"task": task, "shard": _split(cfg)})
