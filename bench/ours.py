"""Our contender: one real job through the launcher, in this process, the way ``app.run`` builds it.

Task + Shard + Stats + Plan + Records + Progress("off") + RunState + MpBackbone, so
planning, dispatch and the records are all counted, and Python's and Hydra's
startup are not (S1 measures those with real ``launch.py`` processes).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

from launcher.backbones import Backbone
from launcher.backbones.mp import MpBackbone, MpConfig, StartMethod, preload
from launcher.driving import Driven
from launcher.layout import inflight
from launcher.plan import Plan
from launcher.progress import Progress
from launcher.records import Records
from launcher.run_state import RunState
from launcher.shard import Shard, Strategy
from launcher.stats import Stats
from launcher.task import Task

WHOLE = Shard(num=1, idx=frozenset({0}), strategy=Strategy.modulo)


def warm_forkserver(task: Task) -> None:
    """Start multiprocessing's fork server now, untimed, with what a real job's preloads
    for ``task``, and wait until it serves: a real job starts it once per job (S1-job
    counts that); here one server serves every repetition, and the first repetition
    alone would otherwise pay for its start (~0.2 s: ``ensure_running`` does not wait
    for the server's imports)."""
    import multiprocessing
    import os

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(preload(Driven.of(task)))
    probe = ctx.Process(target=os.getpid)
    probe.start()
    probe.join()


@dataclass
class JobResult:
    seconds: float
    stats: Stats


def run_job(
    task: Task,
    workers: int = 2,
    start_method: str = "forkserver",
    chunksize: int | None = None,
    backbone: Backbone | None = None,
) -> JobResult:
    """Plan and execute ``task`` (on the mp backbone unless another is given); the clock
    covers all of it."""
    with tempfile.TemporaryDirectory(prefix="bench-job-") as job_dir:
        t0 = time.perf_counter()
        stats = Stats()
        driven = Driven.of(task)
        plan = Plan(driven, WHOLE, stats)
        records = Records(job_dir)
        progress = Progress(stats, "off", 30.0, WHOLE.tag())
        state = RunState(
            stats, records, progress, inflight_record=inflight(None, job_dir, WHOLE.tag())
        )
        backbone = backbone or MpBackbone(
            MpConfig(
                num_workers=workers,
                start_method=StartMethod[start_method],
                chunksize=chunksize,
            )
        )
        backbone.prepare(driven)
        task.setup()
        try:
            with state:
                state.tick(force=True)
                backbone.run(driven, plan, state)
        finally:
            task.teardown()
            progress.close()
            records.close()
            records.report(
                {**stats.as_dict(), "backbone": {**backbone.describe(), **state.backbone_facts}}
            )
        seconds = time.perf_counter() - t0
    if state.abort_reason or stats.failed:
        raise RuntimeError(f"our job did not complete: {state.abort_reason or stats.as_dict()}")
    return JobResult(seconds, stats)
