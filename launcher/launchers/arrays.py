"""A sweep as arrays: each combination of the non-shard sweep parameters is composed
once and run over all its shard indices, like one SLURM array.

Hydra's BasicSweeper composes every job's config before launching anything
(about 19 configs/s: ~50 s for 1000 shards). Here a sweep of N shards costs one
composition; each array element binds its own ``shard.idx`` (and job number)
into a copy of that config when it starts (:func:`bind`).

This module plans (compose, check, skip shards already completed) and writes
what elements and ``status`` read: one pickled config per array and the
sweep record ``<sweep_dir>/.launcher/sweep.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import pickle
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher.errors import ConfigError
from launcher.io import atomic_write
from launcher.records import config_key, done_shards, now_iso
from launcher.shard import Shard, Strategy

if TYPE_CHECKING:
    from hydra.types import HydraContext
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

SHARD_KEY = "shard.idx"
STATE = ".launcher"  # in the sweep dir: sweep.json, array configs, scripts
RECORD = "sweep.json"
LOGS = "logs"


@dataclass
class ArraySpec:
    """One combination of the non-shard sweep parameters, as the sweeper hands it over.

    ``overrides`` holds ``shard.idx=<first>`` at ``shard_pos``; ``shards`` is None
    for a job from another sweeper, which keeps its own shard selection.
    """

    overrides: list[str]
    shards: list[int] | None
    job_nums: list[int]
    shard_pos: int | None = None


@dataclass
class Element:
    """One array element: a shard of one array, with where its files go."""

    shard: int | None
    job_num: int
    tag: str
    job_dir: str  # relative to the sweep dir
    state_dir: str | None
    launched: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # backend ids and log paths

    def record(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "job_num": self.job_num,
            "tag": self.tag,
            "job_dir": self.job_dir,
            "state_dir": self.state_dir,
            "launched": self.launched,
            **self.extra,
        }


@dataclass
class Array:
    """An :class:`ArraySpec` composed once, checked, and split into done and to-do shards."""

    index: int
    spec: ArraySpec
    config: DictConfig
    key: str
    shard_num: int
    elements: list[Element]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def todo(self) -> list[Element]:
        return [e for e in self.elements if e.launched]

    @property
    def shown(self) -> list[str]:
        """Its overrides as a person reads them: no ``hydra.*``, no per-element ``shard.idx``."""
        pos = self.spec.shard_pos
        return shown([o for i, o in enumerate(self.spec.overrides) if i != pos])

    @property
    def spec_path(self) -> str:
        return os.path.join(sweep_dir(self.config), STATE, f"array-{self.index}.pkl")

    def record(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "overrides": self.shown,
            "key": self.key,
            "shard_num": self.shard_num,
            "heartbeat_s": float(self.config.run.heartbeat_s),
            **self.extra,
            "elements": [e.record() for e in self.elements],
        }


def shown(overrides: list[str]) -> list[str]:
    """The overrides a person cares about (not ``hydra.*``)."""
    return [o for o in overrides if not o.startswith("hydra.")]


def sweep_dir(config: DictConfig) -> str:
    return os.path.abspath(str(config.hydra.sweep.dir))


def ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (SLURM's --array syntax)."""
    out: list[str] = []
    start = prev = None
    for v in sorted(values):
        if prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = v
    if start is not None:
        out.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(out)


# -- binding one element into the array's config -----------------------------------------------


def _override_key(line: str) -> str:
    return line.lstrip("~+").split("=", 1)[0]


def bind(cfg: DictConfig, shard: int | None, job_num: int, job_id: str) -> None:
    """Make ``cfg`` (in place) the config of one element: its shard, job number and id.

    Also rewrites ``hydra.overrides.task`` and ``hydra.job.override_dirname``,
    which Hydra computed at composition time for the first shard.
    """
    from omegaconf import open_dict, read_write

    with read_write(cfg), read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.job.num = job_num
        cfg.hydra.job.id = job_id
        if shard is None:
            return
        cfg.shard.idx = shard
        lines = [str(x) for x in cfg.hydra.overrides.task]
        line = f"{SHARD_KEY}={shard}"
        keys = [_override_key(x) for x in lines]
        if SHARD_KEY in keys:
            lines[keys.index(SHARD_KEY)] = line
        else:
            lines.append(line)
        cfg.hydra.overrides.task = lines
        od = cfg.hydra.job.config.override_dirname
        kept = sorted(x for x in lines if _override_key(x) not in set(od.exclude_keys))
        cfg.hydra.job.override_dirname = re.sub("=", od.kv_sep, od.item_sep.join(kept))


def _job_dirs(cfg: DictConfig, elements: list[tuple[int | None, int]]) -> list[str]:
    """Each element's job dir relative to the sweep dir (``hydra.sweep.subdir``)."""
    from omegaconf import OmegaConf

    template = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"]
    if template == "${hydra.job.num}":  # Hydra's default: no need to resolve each
        return [str(num) for _, num in elements]
    probe = copy.deepcopy(cfg)
    out = []
    for shard, num in elements:
        bind(probe, shard, num, str(num))
        out.append(str(OmegaConf.select(probe, "hydra.sweep.subdir")))
    return out


# -- planning ------------------------------------------------------------------------------------


def compose(hydra_context: HydraContext, master: DictConfig, spec: ArraySpec) -> DictConfig:
    """The config of the array's first element, composed once for all of them."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = hydra_context.config_loader.load_sweep_config(master, list(spec.overrides))
    with open_dict(cfg):
        cfg.hydra.sweep.dir = sweep_dir(master)  # resolved now: ${now:...} must not move
        cfg.hydra.job.num = spec.job_nums[0]
        cfg.hydra.job.id = str(spec.job_nums[0])
    HydraConfig.instance().set_config(cfg)
    return cfg


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The config the task function gets: Hydra's ``run_job`` drops the ``hydra`` node."""
    from omegaconf import open_dict, read_write

    job_cfg = copy.deepcopy(cfg)
    with read_write(job_cfg), open_dict(job_cfg):
        del job_cfg["hydra"]
    return job_cfg


def _state_dirs(cfg: DictConfig, shard: Shard, task: Any, shards: list[int | None]) -> list:
    """Where each element keeps its completion marker: run.state_dir or the task's."""
    if cfg.run.state_dir:
        return [str(cfg.run.state_dir)] * len(shards)
    if shard.strategy is not Strategy.hard:
        return [task.state_dir()] * len(shards)
    out = []
    for i in shards:
        bound = copy.copy(task)
        bound.bind_hard_shard(min(shard.idx) if i is None else i, shard.num)
        out.append(bound.state_dir())
    return out


def plan(
    hydra_context: HydraContext, master: DictConfig, specs: list[ArraySpec], skip_done: bool
) -> list[Array]:
    """Compose each array once, refuse a bad config before anything runs, skip done shards."""
    from launcher.app import build_task

    arrays = []
    for index, spec in enumerate(specs):
        cfg = compose(hydra_context, master, spec)
        job_cfg = without_hydra(cfg)
        shard, task = build_task(job_cfg)
        shards: list[int | None] = list(spec.shards) if spec.shards is not None else [None]
        for i in shards:
            if i is not None and not 0 <= i < shard.num:
                raise ConfigError(
                    f"{SHARD_KEY}={i} is out of range for shard.num={shard.num} "
                    f"(valid: 0..{shard.num - 1})."
                )
        if shard.strategy is not Strategy.hard:
            task.check_inputs()
        key = config_key(job_cfg)
        state_dirs = _state_dirs(job_cfg, shard, task, shards)
        done: dict[str, set[str]] = {}
        if skip_done:
            for d in set(filter(None, state_dirs)):
                done[d] = done_shards(d, key)
        pairs = list(zip(shards, spec.job_nums, strict=True))
        elements = []
        places = zip(pairs, _job_dirs(cfg, pairs), state_dirs, strict=True)
        for (i, num), job_dir, state_dir in places:
            tag = shard.tag() if i is None else _tag(shard, i)
            launched = tag not in done.get(state_dir, ())
            elements.append(Element(i, num, tag, job_dir, state_dir, launched))
        arrays.append(Array(index, spec, cfg, key, shard.num, elements))
    return arrays


def _tag(shard: Shard, idx: int) -> str:
    return Shard(shard.num, frozenset({idx}), shard.strategy, shard.sub_num, shard.sub_idx).tag()


# -- what elements and status read ---------------------------------------------------------------


def write_specs(arrays: list[Array]) -> None:
    """One pickled config per array (pickle keeps OmegaConf's resolver cache: same ${now:})."""
    for array in arrays:
        if not array.todo:
            continue
        spec = {
            "config": array.config,
            "job_nums": {e.shard: e.job_num for e in array.elements},
            "sys_path": [os.path.abspath(sys.path[0] or ".")],
        }
        os.makedirs(os.path.dirname(array.spec_path), exist_ok=True)
        tmp = f"{array.spec_path}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(spec, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, array.spec_path)


def write_record(directory: str, backend: str, arrays: list[Array], **extra: Any) -> str:
    """``.launcher/sweep.json``: the arrays, their shards and ids; what ``status`` reads."""
    path = os.path.join(directory, STATE, RECORD)
    record = {
        "format": 1,
        "backend": backend,
        "sweep_dir": directory,
        "created_at": now_iso(),
        "argv": sys.argv,
        **extra,
        "arrays": [a.record() for a in arrays],
    }
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(record, f)  # compact: thousands of elements; `status --json` reads it nicely
    return path


def load_spec(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        return pickle.load(f)
