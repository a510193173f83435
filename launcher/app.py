"""The Hydra task function: compose -> plan -> execute -> report, for one job."""

from __future__ import annotations

import enum
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher.errors import ConfigError, UserError
from launcher.records import (
    Records,
    config_key,
    failed_keys,
    job_identity,
    mark_shard_done,
    now_iso,
    versions,
)
from launcher.shard import Shard, Strategy
from launcher.stats import Stats

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("launcher")

OnError = enum.Enum("OnError", ["continue", "raise"])
ProgressMode = enum.Enum("ProgressMode", ["auto", "bar", "log", "off"])


@dataclass
class RunConfig:
    """``run.*``: how one job treats failures, time limits, retries and progress."""

    on_error: OnError = OnError["continue"]  # continue: record and go on; raise: stop at the first
    max_failures: int | None = None  # stop once this many items failed
    item_timeout_s: float | None = None  # kill an item's worker after this long
    retry_failed: bool = False  # process only the items that failed last time
    dry_run: bool = False  # plan and report, process nothing
    limit: int | None = None  # process at most this many pending items
    state_dir: str | None = None  # default: <task.output_dir>/.launcher
    grace_s: float = 30.0  # on SIGTERM/SIGINT, wait this long for items in flight
    heartbeat_s: float = 5.0  # progress.json rewrite interval
    log_interval_s: float = 30.0  # progress log line interval when not on a terminal
    progress: ProgressMode = ProgressMode.auto


@dataclass
class Config:
    """The root schema: unknown top-level or ``run.*`` keys are refused by name."""

    task: Any = None
    backbone: Any = None
    shard: Any = None
    run: RunConfig = field(default_factory=RunConfig)


class _State:
    """What the entry point needs to know after Hydra returns."""

    started = False
    exit_code = 0


state = _State()


def _check_missing(cfg: DictConfig) -> None:
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        keys = ", ".join(missing)
        example = " ".join(f"{k}=..." for k in missing)
        raise ConfigError(
            f"Missing required value(s): {keys}. These are '???' in the config; "
            f"set them on the command line, e.g. `python launch.py {example}`."
        )


def _instantiate_task(cfg: DictConfig) -> Any:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from launcher.task import Task

    try:
        task = instantiate(cfg, _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__ or e
        if isinstance(cause, ImportError):
            from launcher.searchpath import import_failure

            raise ConfigError(import_failure(str(cfg.get("_target_")), cause)) from None
        raise ConfigError(
            f"Could not build the task from `task` ({cfg.get('_target_')}): {cause}"
        ) from None
    if not isinstance(task, Task):
        raise ConfigError(f"task._target_={cfg.get('_target_')} is not a launcher.Task subclass.")
    return task


def build_task(cfg: DictConfig, task: Any = None) -> tuple[Shard, Any]:
    """Check the config and build the task (unless ``launcher.run`` was given one),
    as a job does before any work.

    Launchers call it once per sweep config too, to refuse a bad sweep before
    submitting a thousand jobs that would each fail the same way.
    """
    _check_missing(cfg)
    shard = Shard.from_config(cfg.shard)
    return shard, task if task is not None else _instantiate_task(cfg.task)


def run(cfg: DictConfig) -> int:
    """Run one job; return its exit code (0 ok, 1 items failed, 2 bad config or input)."""
    state.started = True
    try:
        code = _run(cfg)
    except UserError as e:
        log.error("%s", e)
        code = e.exit_code
    state.exit_code = max(state.exit_code, code)
    return code


def _run(cfg: DictConfig, task: Any = None) -> int:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from launcher.backbones import make_backbone
    from launcher.job import Job
    from launcher.plan import Plan
    from launcher.progress import Progress

    shard, task = build_task(cfg, task)
    opts: RunConfig = OmegaConf.to_object(cfg.run)
    if shard.strategy is Strategy.hard:
        task.bind_hard_shard(min(shard.idx), shard.num)
    backbone = make_backbone(OmegaConf.to_object(cfg.backbone), task)
    task.check_inputs()

    job_dir = HydraConfig.get().runtime.output_dir
    state_dir = opts.state_dir or task.state_dir()
    only_keys = None
    if opts.retry_failed:
        if state_dir is None:
            raise ConfigError(
                "run.retry_failed=true needs to know where the last failures were kept: "
                "set run.state_dir (the task has no output_dir)."
            )
        only_keys = failed_keys(state_dir) if os.path.isdir(state_dir) else frozenset()
        log.info("retrying %d previously failed item(s) from %s", len(only_keys), state_dir)

    stats = Stats()
    plan = Plan(task, shard, stats, only_keys=only_keys, limit=opts.limit)
    records = Records(job_dir, state_dir if not opts.dry_run else None, shard.tag())
    progress = Progress(
        stats, "off" if opts.dry_run else opts.progress.name, opts.log_interval_s, shard.tag()
    )
    job = Job(
        stats,
        records,
        progress,
        on_error=opts.on_error.name,
        max_failures=opts.max_failures,
        item_timeout_s=opts.item_timeout_s,
        grace_s=opts.grace_s,
        heartbeat_s=opts.heartbeat_s,
    )
    header = {
        "task": cfg.task.get("_target_"),
        "shard": shard.describe(),
        "backbone": backbone.describe(),
        "job_dir": os.path.abspath(job_dir),
        "state_dir": state_dir and os.path.abspath(state_dir),
        "started_at": now_iso(),
        **job_identity(),
    }
    log.info("%s on %s, %s", header["task"], shard.tag(), backbone.describe())
    t0 = time.monotonic()
    error: str | None = None
    task.setup()
    try:
        with job:
            job.tick(force=True)
            if opts.dry_run:
                while plan.take(4096):
                    pass
            else:
                backbone.run(task, plan, job)
            if plan.error is not None:
                raise plan.error
        if job.signal is not None and stats.planned and not stats.pending:
            job.signal = None  # the stop came when nothing was left: the run completed
    except UserError:
        raise
    except Exception as e:
        log.exception("the job stopped on an error")
        job.abort(f"{type(e).__name__}: {e}")
        error = f"{type(e).__name__}: {e}"
    finally:
        task.teardown()
        progress.close()
        records.close()
        elapsed = time.monotonic() - t0
        stats_d = stats.as_dict()
        report = {
            **stats_d,
            "pending": stats.pending if stats.planned else None,
            "elapsed_s": round(elapsed, 3),
            "items_per_s": round((stats.processed + stats.failed) / elapsed, 3) if elapsed else 0.0,
            "state": "dry_run"
            if opts.dry_run
            else ("completed" if not job.stopping else job.state),
            "exit_code": job.exit_code,
            "stop_reason": job.abort_reason or (job.signal and f"signal {job.signal}"),
            "error": error,
            **header,
            "backbone": backbone.describe(),
            "ended_at": now_iso(),
            "versions": versions(),
        }
        records.report(report)
        job.outcome = report["state"]
        job.tick(force=True)
    complete = report["state"] == "completed" and job.exit_code == 0
    if state_dir and complete and opts.limit is None and not opts.retry_failed:
        # the shard's completion marker, for only-missing relaunches of a sweep
        keys = ("total", "skipped", "processed", "failed", "elapsed_s", "items_per_s")
        done = {k: report[k] for k in keys}
        done.update(job_dir=header["job_dir"], ended_at=report["ended_at"], **job_identity())
        mark_shard_done(state_dir, config_key(cfg), shard.tag(), done)
    summary = (
        f"{shard.tag()}: processed {stats.processed}, skipped {stats.skipped}, "
        f"failed {stats.failed} of {stats.total} in {elapsed:.1f}s -> {os.path.abspath(job_dir)}"
    )
    if job.signal is not None:
        log.error("interrupted by signal %d; %s", job.signal, summary)
    elif stats.failed:
        log.error("%s (see %s)", summary, os.path.join(job_dir, "failures.jsonl"))
    else:
        log.info(summary)
    return job.exit_code
