"""The Python API: run one job in this process, for notebooks and scripts.

``launcher.run(task, shard=..., backbone=..., run=..., job_dir=...)`` composes
the same config as the command line (schemas, defaults, ``./conf``), runs the
job through Hydra's own job runner (so the job directory holds the same
``report.json``, ``failures.jsonl``, ``progress.json``, ``job.log`` and
``.hydra/``), and returns the report. Sweeps stay on the command line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from launcher.errors import ConfigError
from launcher.layout import JobDir

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from launcher.task import Task

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job.log format


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Our config with command-line overrides applied, the ``hydra`` node included."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from launcher.config import check_override_keys, register_configs
    from launcher.resolvers import register_resolvers
    from launcher.searchpath import CONFIG_DIR

    check_override_keys(overrides)
    register_resolvers()
    register_configs()
    outer = GlobalHydra.instance().hydra  # a Hydra app calling us keeps its own
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None, job_name="job"):
            return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(str(e)) from None
    finally:
        GlobalHydra.instance().hydra = outer


def run(
    task: str | Mapping[str, Any] | Task,
    *,
    shard: Mapping[str, Any] | None = None,
    backbone: str | Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
    job_dir: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Run one job in this process and return its report (what ``report.json`` holds).

    ``task``: a task config's name (``"thumbnail"``, or one in ``./conf/task/``),
    a task config (a mapping with ``_target_``), or a :class:`launcher.Task`.
    ``shard``, ``run``: keys of those groups (``{"num": 4, "idx": 1}``).
    ``backbone``: an option (``"mp"``, ``"torch"``) or keys of the default, ``auto``.
    ``job_dir``: default ``outputs/runs/<date>/<time>``, as on the command line.
    ``overrides``: any other command-line override (``"shard=hard"``).
    Bad config or input raises :class:`launcher.ConfigError` / ``InputError``
    before any work; failed items are in the report, not raised.
    """
    import threading

    from omegaconf import OmegaConf, open_dict

    from launcher.task import Task

    if threading.current_thread() is not threading.main_thread():
        raise ConfigError(
            "launcher.run was called from a thread other than the main thread: a job turns "
            "SIGTERM and Ctrl-C into a graceful stop, and Python lets only the main thread "
            "handle signals. Call it from the main thread, or run it in a process of its own "
            "(multiprocessing, concurrent.futures.ProcessPoolExecutor)."
        )
    _refuse_one_shard_of_many(shard, overrides)
    choices = [f"task={task}"] if isinstance(task, str) else []
    if isinstance(backbone, str):
        choices.append(f"backbone={backbone}")
    cfg = compose([*choices, *overrides])
    given = task if isinstance(task, Task) else None
    try:
        with open_dict(cfg.hydra):
            if job_dir is not None:
                cfg.hydra.run.dir = str(job_dir)
        if given is not None:
            cfg.task = {"_target_": f"{type(given).__module__}.{type(given).__qualname__}"}
        elif isinstance(task, Mapping):
            cfg.task = OmegaConf.create(dict(task))
        for group, keys in (("shard", shard), ("backbone", backbone), ("run", run)):
            if isinstance(keys, Mapping):
                cfg[group] = OmegaConf.merge(cfg[group], keys)
    except Exception as e:  # omegaconf's errors name the key and the schema
        raise ConfigError(f"launcher.run: {e}") from None
    return _run_job(cfg, given)


def lone_shard_num(overrides: Sequence[str]) -> int | None:
    """N of ``shard.num=N`` (N > 1) given without ``shard.idx``: a job that would run
    shard 0 of N alone and succeed, which is almost never what was meant."""
    values = {}
    for arg in overrides:
        key, sep, value = arg.lstrip("+~").partition("=")
        if sep:
            values[key] = value
    try:
        num = int(values.get("shard.num", "1"))
    except ValueError:
        return None  # an interpolation or a sweep list: Hydra and the shard check decide
    return None if num <= 1 or "shard.idx" in values else num


def _refuse_one_shard_of_many(shard: Mapping[str, Any] | None, overrides: Sequence[str]) -> None:
    """``shard={"num": 4}`` without ``idx`` would run shard 0 of 4 alone: refused, as the
    command line refuses ``shard.num=4`` without ``shard.idx`` or ``-m``."""
    given = [f"shard.{k}={v}" for k, v in (shard or {}).items()]
    num = lone_shard_num([*overrides, *given])
    if num is not None:
        raise ConfigError(
            f"launcher.run: shard.num={num} without shard.idx would run only shard 0 of {num}. "
            f"Name the shard this job runs (shard={{'num': {num}, 'idx': I}}, I in "
            f"0..{num - 1}), or run all {num} from the command line with -m."
        )


def _run_job(cfg: DictConfig, task: Task | None) -> dict[str, Any]:
    from hydra.core.utils import JobStatus

    from launcher import app
    from launcher.composed import build_task
    from launcher.internals import job_exception, run_job_here

    def job(c: DictConfig) -> dict[str, Any]:
        return app.job_report(c, build_task(c, task).task, raising=True)  # bad input: raises

    job_dir = os.path.abspath(str(cfg.hydra.run.dir))
    os.makedirs(job_dir, exist_ok=True)
    log = logging.getLogger("launcher")
    handler = logging.FileHandler(JobDir(job_dir).log(cfg.hydra.job.name))
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    level = log.level
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        # configure_logging=False: the caller's logging stays as it is
        ret = run_job_here(cfg, job, "hydra.run.dir", None, configure_logging=False)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()
    if ret.status is JobStatus.FAILED:
        raise job_exception(ret)
    return ret.return_value
