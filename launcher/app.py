"""The Hydra task function: compose -> plan -> execute -> report, for one job."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from launcher import location, transient_errors
from launcher.composed import RunConfig, build_task
from launcher.driving import Driven
from launcher.errors import ConfigError, InputError, UserError
from launcher.identity import Identity
from launcher.io import sweep_stale, sweep_uploads
from launcher.layout import PARAMS, REPORT, JobDir, StateDir, inflight
from launcher.modes import url_kind
from launcher.records import (
    MAX_RECORD_CHARS,
    JobDirGone,
    LockedError,
    Records,
    ShardLock,
    clip,
    failed_keys,
    job_identity,
    mark_shard_done,
    now_iso,
    versions,
)
from launcher.run_state import RunState, StopPlanning
from launcher.shard import Shard
from launcher.stats import Stats

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from launcher.plan import Plan

log = logging.getLogger("launcher")


def run(cfg: DictConfig, task: Any = None) -> int:
    """Run one job; return its exit code (0 ok, 1 items failed, 2 bad config or input,
    128+N stopped by signal N)."""
    return job_report(cfg, task)["exit_code"]


def job_report(cfg: DictConfig, task: Any = None, raising: bool = False) -> dict[str, Any]:
    """Run one job; return its report.

    Whatever happens once the job has started, its ``report.json`` is written
    and holds this report: the state and exit code included. With ``raising``
    (``launcher.run``), a bad config or input found on the way is raised once the
    records are written, instead of returned as exit code 2.
    """
    from hydra.core.hydra_config import HydraConfig

    job = _JobRun(cfg, HydraConfig.get().runtime.output_dir, task)
    report = job.run()
    if raising and job.user_error is not None:
        raise job.user_error
    return report


def _warn_outputs_in_inputs(task: Any) -> None:
    inputs, outputs = task.input_dir, task.output_dir
    if task.input is None or not inputs or not outputs:
        return
    if location.is_url(inputs) or location.is_url(outputs):  # prefixes: nothing to resolve
        inputs, outputs = location.normalize(inputs), location.normalize(outputs)
    elif os.path.isdir(inputs):
        inputs, outputs = os.path.realpath(inputs), os.path.realpath(outputs)
    else:
        return
    if outputs == inputs or outputs.startswith(inputs.rstrip("/") + "/"):
        log.warning(
            "task.output_dir=%s is inside task.input_dir=%s: the listing leaves the output "
            "folder out%s, but keeping outputs apart from inputs is safer.",
            task.output_dir,
            task.input_dir,
            "" if outputs != inputs else " only where it can (it is the input folder itself)",
        )


class _JobRun:
    """One job from config to report; every path out of :meth:`run` leaves the records."""

    def __init__(self, cfg: DictConfig, job_dir: str, task: Any = None) -> None:
        self.cfg = cfg
        self.given_task = task  # launcher.run(task_object): built by the caller
        self.job_dir = job_dir
        self.t0 = time.monotonic()
        self.transient_base = transient_errors.total()  # another job may have run in this process
        self.stats = Stats()
        self.records = Records(job_dir)
        self.header: dict[str, Any] = {
            "task": cfg.task.get("_target_") if cfg.get("task") else None,
            "shard": None,
            "backbone": None,
            "output_dir": None,  # where the results are
            "output_params": None,  # <hash-named output folder>/params.json: what named it
            "job_dir": os.path.abspath(job_dir),  # where these records are
            "state_dir": None,
            "started_at": now_iso(),
            **job_identity(),
        }
        self.shard: Shard | None = None
        self.identity: Identity | None = None
        self.driven: Driven | None = None  # the task as this job drives it (bound to its shard)
        self.opts: RunConfig | None = None
        self.backbone: Any = None
        self.run_state: RunState | None = None
        self.progress: Any = None
        self.lock: ShardLock | None = None
        self.held_state_dir: str | None = None  # the state dir whose shard lock this job holds
        self.listing_errors: list[Exception] = []  # what ended the plan's listing early
        self.set_up = False
        self.error: str | None = None
        self.error_code = 0
        self.user_error: UserError | None = None  # a bad config or input, as raised
        # counted when run.limit stopped the job, or run.retry_failed left items not done
        self.items_left: int | None = None

    def run(self) -> dict[str, Any]:
        try:
            self.body()
        except UserError as e:
            log.error("%s", e)
            self.user_error = e
            self.fail(e, e.exit_code)
        except StopPlanning:
            pass  # a stop signal during the user's setup or listing: the job is interrupted
        except KeyboardInterrupt as e:
            if self.run_state is None or self.run_state.signal is None:
                self.fail(e, 128 + signal.SIGINT)
        except BaseException as e:  # noqa: BLE001 - the user's code: setup, listing, a backbone
            log.exception("the job stopped on an error")
            self.fail(e, 1)
        return self.finish()

    def fail(self, exc: BaseException, code: int) -> None:
        if self.error is None:
            self.error = clip(f"{type(exc).__name__}: {exc}", MAX_RECORD_CHARS)
        self.error_code = max(self.error_code, code)

    def body(self) -> None:
        self.execute(self.build())

    def build(self) -> Plan:
        """The task, its shard, backbone, state dir and lock, the job and its plan."""
        from omegaconf import OmegaConf

        from launcher.backbones import make_backbone
        from launcher.plan import Plan
        from launcher.progress import Progress

        cfg = self.cfg
        shard, task, backbone = build_task(cfg, self.given_task)
        self.shard = shard
        self.header["shard"] = shard.describe()
        self.opts = opts = OmegaConf.to_object(cfg.run)
        self.driven = driven = Driven.of(task, shard)
        task = driven.task
        self.backbone = make_backbone(*backbone)
        self.header["backbone"] = self.backbone.describe()
        if task.output_dir:
            self.header["output_dir"] = location.absolute(task.output_dir)
        driven.check_inputs()
        for key, where in (("task.output_dir", task.output_dir), ("run.state_dir", opts.state_dir)):
            if location.is_url(where):
                url_kind(where, key)  # no such bucket, refused credentials: said before any work
        self.identity = Identity.of(cfg, shard, task.output_dir)
        state_dir = self.identity.state_dir
        self.header["state_dir"] = state_dir and location.absolute(state_dir)
        self.only_keys = only_keys = self._retry_keys(state_dir)
        if state_dir and not opts.dry_run:
            self._hold_shard(state_dir, self.identity)
            self._record_hash_params()
        self.records.start()  # from here on, this job's records are the job dir's
        _warn_outputs_in_inputs(task)

        self.progress = Progress(
            self.stats,
            "off" if opts.dry_run else opts.progress.name,
            opts.log_interval_s,
            shard.tag(),
        )
        self.run_state = state = RunState(
            self.stats,
            self.records,
            self.progress,
            on_error=opts.on_error.name,
            max_failures=opts.max_failures,
            systematic_failures=opts.systematic_failures,
            item_timeout_s=opts.item_timeout_s,
            grace_s=opts.grace_s,
            heartbeat_s=opts.heartbeat_s,
            count_log_s=opts.log_interval_s,
            item_key=task.item_key,
            inflight_record=inflight(self.held_state_dir, self.job_dir, shard.tag()),
        )
        plan = Plan(
            driven,
            shard,
            self.stats,
            only_keys=only_keys,
            limit=opts.limit,
            on_skip=state.failed,
            interruptible=state.interruptible,
            on_done=state.found_done if state.watching else None,
            on_pending=state.planned,
            unlisted=self._unlisted(),
            on_error=self.listing_errors.append,
        )
        log.info("%s on %s, %s", self.header["task"], shard.tag(), self.backbone.describe())
        return plan

    def execute(self, plan: Plan) -> None:
        """The user's setup, then the plan's items through the backbone (or only planned)."""
        state, opts, driven = self.run_state, self.opts, self.driven
        assert state is not None and opts is not None and driven is not None
        with state:
            state.tick(force=True)
            self.set_up = True
            if not opts.dry_run:
                self.backbone.prepare(driven)
            if driven.can.setup:
                state.stage("setting up the task")
            with state.interruptible():
                driven.task.setup()
            if state.stopping:
                return
            state.stage("listing items and checking which are done")
            if opts.dry_run:
                while plan.take(4096):
                    pass
            else:
                self.backbone.run(driven, plan, state)
            if self.listing_errors:
                raise self.listing_errors[0]
            if plan.limit == 0 and not opts.dry_run and not state.stopping:
                self.items_left = self._count_left(self.only_keys)
            elif plan.left and plan.stats.planned:
                self.items_left = plan.left  # run.retry_failed: not done, and not retried

    def _count_left(self, only_keys: frozenset[str] | None) -> int | None:
        """Pending items after ``run.limit`` was reached: one more listing and done check."""
        from launcher.plan import Plan

        stats = Stats()
        errors: list[Exception] = []
        plan = Plan(
            self.driven,
            self.shard,
            stats,
            only_keys=only_keys,
            unlisted=self._unlisted(),
            on_error=errors.append,
        )
        while plan.take(4096):
            pass
        return None if errors else stats.pending

    def _unlisted(self) -> tuple[str, ...]:
        """Folders the plan never lists: the launcher's own state dir."""
        state_dir = self.identity.state_dir if self.identity else None
        return (state_dir,) if state_dir else ()

    def _record_hash_params(self) -> None:
        """Keep, beside the outputs, the parameters that named a hash-named output folder."""
        from omegaconf import OmegaConf

        from launcher.resolvers import hash_values, write_hash_params

        task_cfg = self.cfg.get("task")
        output_dir = self.driven.task.output_dir
        if not task_cfg or not output_dir:
            return
        values = hash_values(self.cfg, "task", "output_dir")
        if values is None:
            return
        expression = OmegaConf.to_container(task_cfg, resolve=False).get("output_dir")
        try:
            path = write_hash_params(output_dir, expression, values)
        except OSError as e:
            log.warning("could not write the output folder's %s: %s", PARAMS, e)
            return
        self.header["output_params"] = path and location.absolute(path)

    def _retry_keys(self, state_dir: str | None) -> frozenset[str] | None:
        if not self.opts.retry_failed:
            return None
        if state_dir is None:
            raise ConfigError(
                "run.retry_failed=true needs to know where the last failures were kept: "
                "set run.state_dir (the task has no output_dir)."
            )
        keys = failed_keys(state_dir, self.identity.task_key)
        log.info("retrying %d previously failed item(s) from %s", len(keys), state_dir)
        return keys

    def _hold_shard(self, state_dir: str, identity: Identity) -> None:
        """Make the state dir and take the shard's lock; from here on, this job owns the
        shard's records beside the outputs."""
        key = "run.state_dir" if self.opts.state_dir else "task.output_dir"
        try:
            location.makedirs(state_dir)
            stale_s = max(120.0, 10 * self.opts.heartbeat_s)
            self.lock = ShardLock(
                state_dir, identity.tag, stale_s, identity.task_key, identity.split_key
            )
            self.lock.acquire()
        except LockedError as e:
            self.lock = None
            raise InputError(f"{identity.tag}: {e}") from None
        except OSError as e:
            raise ConfigError(
                f"{key}: cannot write the launcher's state folder {state_dir!r} "
                f"({e.strerror or e}); the outputs folder must be a writable directory."
            ) from None
        self.held_state_dir = state_dir
        kept = StateDir(state_dir).shard_failures(
            identity.task_key, identity.split_key, identity.tag
        )
        self.records.keep_failures(kept, self.lock)
        out = self.driven.task.output_dir
        if out and os.path.isdir(out):  # what killed writers left at the top level
            with contextlib.suppress(OSError):
                sweep_stale(out, os.listdir(out))
        if location.is_url(out) or location.is_url(state_dir):
            sweep_uploads()  # what killed writers left on their way to the store

    # -- the end -------------------------------------------------------------------------------

    def state_and_code(self) -> tuple[str, int]:
        state, stats = self.run_state, self.stats
        nothing_left = stats.planned and stats.pending == 0
        if state is not None and state.signal is not None and not (nothing_left and not self.error):
            return "interrupted", 128 + state.signal
        if self.error is not None:
            return "failed", self.error_code or 1
        failed = 1 if stats.failed or (state is not None and state.abort_reason) else 0
        if state is not None and state.abort_reason:
            return "aborted", failed
        return ("dry_run" if self.opts is not None and self.opts.dry_run else "completed"), failed

    def report(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.t0
        stats, rs = self.stats, self.run_state
        state_name, code = self.state_and_code()
        signum = rs.signal if rs is not None else None
        return {
            **stats.as_dict(),
            "pending": stats.pending if stats.planned else None,
            "items_left": self.items_left,
            "elapsed_s": round(elapsed, 3),
            "items_per_s": round((stats.processed + stats.failed) / elapsed, 3) if elapsed else 0.0,
            "state": state_name,
            "exit_code": code,
            "stop_reason": (rs and rs.abort_reason) or (signum and f"signal {signum}"),
            "error": self.error,
            "storage_transient_errors": transient_errors.total() - self.transient_base,
            **self.header,
            "backbone": self._backbone_report(),
            "ended_at": now_iso(),
            "versions": versions(),
        }

    def _backbone_report(self) -> dict[str, Any] | None:
        """The backbone as configured, with what it learned while running."""
        if self.backbone is None:
            return None
        learned = self.run_state.backbone_facts if self.run_state is not None else {}
        return {**self.backbone.describe(), **learned}

    def write_report(self) -> dict[str, Any]:
        report = self.report()
        try:
            if not self.records.report(report):
                log.warning(
                    "%s not written: another job still runs in %s, and this job "
                    "was refused before it began",
                    REPORT,
                    self.job_dir,
                )
        except OSError as e:
            log.error("could not write %s in %s: %s", REPORT, self.job_dir, e)
        if self.run_state is not None:
            self.run_state.ended = report["state"]
            with contextlib.suppress(OSError):
                self.run_state.tick(force=True)
        return report

    def finish(self) -> dict[str, Any]:
        """Records first (failures kept for retries, the report), then the user's teardown."""
        if self.progress is not None:
            self.progress.close()
        try:
            self.records.close()
        except OSError as e:
            log.error("could not keep the failures for run.retry_failed: %s", e)
            self.fail(e, 1)
        if self.records.gone:  # its records are lost: never a success, never a marker
            self.fail(JobDirGone(self.records.job_dir), 1)
        report = self.write_report()
        if self.set_up:
            try:
                self.driven.task.teardown()
            except Exception as e:  # noqa: BLE001 - the user's code
                log.exception("task.teardown() failed")
                self.fail(e, 1)
                report = self.write_report()
        if self.lock is not None:
            self.lock.release()
        self._mark_done(report)
        self._summary(report)
        return report

    def _mark_done(self, report: dict[str, Any]) -> None:
        opts, state_dir = self.opts, self.held_state_dir
        if not state_dir or report["state"] != "completed" or report["exit_code"] != 0:
            return
        if opts.limit is not None or self.items_left:  # items left: the shard is not done
            return
        # the shard's completion marker, for only-missing relaunches of a sweep
        keys = ("total", "skipped", "processed", "failed", "elapsed_s", "items_per_s")
        done = {k: report[k] for k in keys}
        done.update(job_dir=report["job_dir"], ended_at=report["ended_at"], **job_identity())
        try:
            mark_shard_done(state_dir, self.identity.config_key, self.identity.tag, done)
        except OSError as e:
            log.error("could not write the shard's completion marker: %s", e)

    def _summary(self, report: dict[str, Any]) -> None:
        stats = self.stats
        tag = self.shard.tag() if self.shard else "job"
        where = f"records in {report['job_dir']}"
        if report["output_dir"]:
            where = f"outputs in {report['output_dir']}, {where}"
        if report["state"] == "dry_run":
            counts = f"dry run: {stats.pending} pending, {stats.skipped} done of {stats.total}"
        else:
            state = self.run_state
            kinds = f" ({state.failure_counts()})" if stats.failed and state else ""
            counts = (
                f"processed {stats.processed}, skipped {stats.skipped}, "
                f"failed {stats.failed}{kinds} of {stats.total}"
            )
        counts += f" in {report['elapsed_s']:.1f}s"
        if self.items_left is not None and self.opts.retry_failed and self.opts.limit is None:
            counts += (
                f"; {self.items_left} item(s) neither done nor failed last time are left "
                "(run.retry_failed retries only failed items; run without it to process them)"
            )
        elif self.items_left is not None:
            counts += f"; run.limit={self.opts.limit} reached, {self.items_left} item(s) left"
        summary = f"{tag}: {counts}; {where}"
        if report["state"] == "interrupted":
            log.error("interrupted by signal %d; %s", self.run_state.signal, summary)
        elif report["state"] == "failed":
            log.error("%s: failed (exit %d)", summary, report["exit_code"])
        elif stats.failed:
            log.error("%s (see %s)", summary, JobDir(self.job_dir).failures)
        else:
            log.info(summary)
