"""A sweep as arrays: each combination of the non-shard sweep parameters is composed
once and run over all its shard indices, like one SLURM array.

Hydra's BasicSweeper composes every job's config before launching anything
(``python -m bench`` measures what that costs for 1000 shards). Here a sweep of N
shards costs one composition; each array element binds its own ``shard.idx`` (and job number)
into a copy of that config when it starts (:func:`bind`).

This module plans (compose, check, skip shards already completed) and writes
what elements and ``status`` read: one pickled config per array, under a
directory of its own per submission (``.launcher/<submission>/``), so that
a later submission never changes what a waiting element of an earlier one
reads, and the sweep record ``<sweep_dir>/.launcher/sweep.json``.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import os
import pickle
import re
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from launcher import location
from launcher.errors import ConfigError
from launcher.io import atomic_write
from launcher.launchers import markers
from launcher.launchers.cluster import live_jobs
from launcher.layout import SweepDir
from launcher.machine import pid_alive
from launcher.records import RUNNING_STATES, done_shards, now_iso, read_progress

if TYPE_CHECKING:
    from hydra.types import HydraContext
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

SHARD_KEY = "shard.idx"


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
            # resolved against the submit dir: status reads it from anywhere
            "state_dir": self.state_dir and location.absolute(self.state_dir),
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
    submission: str = ""  # names this launch's files in .launcher/

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
        return SweepDir(sweep_dir(self.config)).spec(self.submission, self.index)

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


def new_submission() -> str:
    """A name for one launch's files, unique even for launches in the same second."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"


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
    from omegaconf import OmegaConf, open_dict, read_write

    with read_write(cfg), read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.job.num = job_num
        cfg.hydra.job.id = job_id
        if shard is None:
            return
        cfg.shard.idx = shard
        # as typed, unresolved: "task.out='o-${hash:${.n}}'" is text here, not an interpolation
        lines = [str(x) for x in OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)]
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


def plan_sweep(
    hydra_context: HydraContext, master: DictConfig, specs: list[ArraySpec], skip_done: bool
) -> list[Array]:
    """Compose each array once, refuse a bad config before anything runs, skip done shards."""
    from launcher.composed import build_elements

    submission = new_submission()
    arrays = []
    for index, spec in enumerate(specs):
        cfg = compose(hydra_context, master, spec)
        shards: list[int | None] = list(spec.shards) if spec.shards is not None else [None]
        job_cfg = without_hydra(_as_element(cfg, shards[0], spec.job_nums[0]))
        _resolve(job_cfg)
        shard, array, built = build_elements(job_cfg, shards)
        key = array.config_key
        done: dict[str, set[str]] = {}
        if skip_done:
            for d in {ident.state_dir for _, ident in built if ident.state_dir}:
                done[d] = done_shards(d, key)
        pairs = list(zip(shards, spec.job_nums, strict=True))
        elements, marked = [], []
        places = zip(pairs, _job_dirs(cfg, pairs), built, strict=True)
        for (i, num), job_dir, (driven, ident) in places:
            launched = ident.tag not in done.get(ident.state_dir or "", ())
            elements.append(Element(i, num, ident.tag, job_dir, ident.state_dir, launched))
            if not launched:
                marked.append((elements[-1], driven))
        for e in markers.stale(shard, key, marked):
            e.launched = True
        arrays.append(Array(index, spec, cfg, key, shard.num, elements, submission=submission))
    return arrays


def _as_element(cfg: DictConfig, shard: int | None, job_num: int) -> DictConfig:
    """A copy of the array's config bound to one element, as the element binds it."""
    probe = copy.deepcopy(cfg)
    bind(probe, shard, job_num, str(job_num))
    return probe


def _resolve(job_cfg: DictConfig) -> None:
    """Resolve every value as the job will, so that a value no element can resolve is
    refused here, naming its key, rather than failing every element after submission."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(job_cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as e:
        where = f"{e.full_key}: " if getattr(e, "full_key", None) else ""
        msg = str(e).splitlines()[0]
        raise ConfigError(
            f"{where}the job config cannot be resolved as each job would: {msg}"
        ) from None


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
    path = SweepDir(directory).record
    record = {
        "format": 1,
        "backend": backend,
        "sweep_dir": directory,
        "submission": arrays[0].submission if arrays else None,
        "launched_by": {"host": socket.gethostname(), "pid": os.getpid()},
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


# -- one submission at a time per sweep dir --------------------------------------------------


@contextlib.contextmanager
def claim(directory: str) -> Iterator[None]:
    """Hold the sweep dir while this submission checks it, writes its files and submits.

    Two launches into one sweep dir would share its job dirs: the second is
    refused while elements of the first can still run (a relaunch after the
    first ended is fine: only missing shards are launched).
    """
    path = SweepDir(directory).claim
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(_busy(directory, "another launch is submitting into it")) from None
        live = live_elements(directory)
        if live:
            raise ConfigError(_busy(directory, f"{live} of an earlier launch can still run"))
        yield


def _busy(directory: str, why: str) -> str:
    from launcher.command import status_command

    return (
        f"hydra.sweep.dir={directory}: {why}, and would read or overwrite this launch's "
        f"job dirs. Wait until it has ended (`{status_command(directory)}`), cancel it, or "
        "launch into another hydra.sweep.dir (the default is a new one per launch)."
    )


def live_elements(directory: str) -> str | None:
    """What of the sweep dir's last launch can still run, in words; None if nothing."""
    try:
        with open(SweepDir(directory).record, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("backend") == "slurm":
        ids = [j for a in record.get("arrays", []) for j in a.get("slurm_jobs", [])]
        live = live_jobs(ids)
        return f"SLURM job(s) {', '.join(live)}" if live else None
    for who in ("launched_by", "scheduler"):
        proc = record.get(who)
        if isinstance(proc, dict) and _alive(proc.get("host"), proc.get("pid")):
            return f"local shards run by pid {proc['pid']}"
    running = [  # shards that outlived their launcher (kill -9 of it)
        f"{e.get('tag')} (pid {beat['pid']})"
        for a in record.get("arrays", [])
        for e in a.get("elements", [])
        if (beat := running_here(SweepDir(directory).at(str(e.get("job_dir")))))
    ]
    return f"local shard(s) {', '.join(running)}" if running else None


def running_here(job_dir: str) -> dict[str, Any] | None:
    """The heartbeat of a job still running on this host in ``job_dir``, if one is."""
    beat = read_progress(job_dir)
    if beat is None or beat.get("state") not in RUNNING_STATES:
        return None
    return beat if _alive(beat.get("host"), beat.get("pid")) else None


def _alive(host: Any, pid: Any) -> bool:
    return host == socket.gethostname() and pid != os.getpid() and pid_alive(pid)


# -- launcher options ----------------------------------------------------------------------------

MINIMUM = {
    "array_parallelism": 1,
    "timeout_min": 1,
    "nodes": 1,
    "cpus_per_task": 1,
    "gpus_per_task": 1,
    "signal_delay_s": 0,
    "max_num_timeout": 0,
}


def check_options(opts: Any) -> None:
    """Refuse a numeric ``hydra.launcher.*`` option out of range, naming it, before any launch."""
    for f in fields(opts):
        value = getattr(opts, f.name)
        low = MINIMUM.get(f.name)
        if low is None or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            unset = " or leave it unset" if f.default is None else ""
            raise ConfigError(
                f"hydra.launcher.{f.name}={value!r}: must be an integer >= {low}{unset}."
            )
