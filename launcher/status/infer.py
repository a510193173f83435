"""The state of one shard from what is known about it: a pure function, :func:`infer`.

What is known (:class:`Facts`) comes from the job's own records (``report.json``,
the ``progress.json`` heartbeat, whether its process still lives on this host),
the launcher (a local exit code, a completion marker) and SLURM (``squeue``,
``sacct``). The rules, in order:

1. SLURM's live queue wins while it lists the element: it may have been
   requeued, held, or be ending (``COMPLETING`` after ``scancel``).
2. SLURM's accounting lags (a few seconds, or for as long as slurmdbd is
   down): where ``sacct`` still says PENDING or RUNNING for an element that
   left the queue, the element's own records win.
3. An element SLURM says has ended is done only if its report says completed.
4. Without SLURM: the report decides; without one, a local exit code, then
   the heartbeat (running, stale after a few of its own intervals, or failed
   at once when its process on this host is gone).
5. A shard that failed or went stale here but completed in a later relaunch
   counts as done.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from launcher.layout import REPORT
from launcher.status.jobfiles import OK_STATES, JobRecord
from launcher.status.slurm import SlurmView

STALE_BEATS = 4  # a heartbeat older than this many of its intervals is stale
MIN_STALE_S = 10.0
LOST_S = 15.0  # out of squeue, unknown to sacct and no report for this long: ended
ENDING = {"COMPLETING", "SIGNALING", "STAGE_OUT"}
HELD = {"REQUEUE_HOLD", "RESV_DEL_HOLD", "SPECIAL_EXIT", "SUSPENDED", "STOPPED"}
SIGNAL_WHY = {signal.SIGUSR2: "time limit or preemption", signal.SIGTERM: "asked to stop"}


@dataclass(frozen=True)
class Facts:
    """Everything :func:`infer` may use about one launched shard (all optional)."""

    report: JobRecord | None = None
    report_problem: str | None = None  # report.json exists but cannot be used
    progress: JobRecord | None = None
    progress_problem: str | None = None
    heartbeat_age_s: float | None = None
    heartbeat_s: float = 5.0  # the job's own heartbeat interval
    process_alive: bool | None = None  # None: unknown (another host, or no heartbeat)
    exit_code: int | None = None  # from the local launcher, once the element ended
    started: bool = True  # False: a stop signal to the local sweep kept it from starting
    slurm: SlurmView | None = None
    slurm_backend: bool = False
    queue_answered: bool = False  # squeue answered: an element it does not list has left it
    quiet_s: float | None = None  # seconds since the element's last sign of life on disk
    scheduler_gone: bool = False  # a local sweep's detached scheduler died
    done_later: JobRecord | None = None  # a completion marker written after this sweep began


@dataclass(frozen=True)
class Verdict:
    state: str  # pending, held, running, done, failed or stale
    final: bool  # nothing more will happen to this shard in this sweep
    note: str = ""
    live: bool = False  # its numbers come from the heartbeat rather than the report


def infer(f: Facts) -> Verdict:
    """The state, finality and a one-line reason for one launched shard."""
    s = f.slurm
    if s is not None and s.active and (s.source == "squeue" or not f.queue_answered):
        verdict = _queued(f, s)
    elif s is not None and not s.active:
        verdict = _ended(f, s)
    else:
        verdict = _from_files(f)
        if not verdict.final and _lost(f):
            verdict = Verdict("failed", True, f"left the SLURM queue without writing {REPORT}")
        elif s is not None and verdict.state == "pending":
            verdict = Verdict("pending", False, f"sacct says {s.state}, squeue no longer lists it")
    if verdict.state in ("failed", "stale") and f.done_later is not None:
        m = f.done_later
        why = verdict.note or verdict.state
        return Verdict("done", True, f"failed here ({why}), done later in {m.job_dir}")
    return verdict


def stale(f: Facts) -> bool:
    age = f.heartbeat_age_s
    return age is not None and age > max(STALE_BEATS * f.heartbeat_s, MIN_STALE_S)


def _queued(f: Facts, s: SlurmView) -> Verdict:
    if s.state == "RUNNING":
        if f.report is None and f.progress is not None and stale(f):
            age = f.heartbeat_age_s or 0.0
            return Verdict("stale", False, f"SLURM says RUNNING, no heartbeat for {age:.0f}s", True)
        return Verdict("running", False, "", live=True)
    if s.state in ENDING:
        return Verdict("running", False, f"ending (SLURM: {s.state})", live=True)
    before = _last_run(f)
    if s.state in HELD or "Held" in s.reason:
        held = f"held by SLURM: {s.reason or s.state}"
        return Verdict("held", False, "; ".join(x for x in (held, before) if x))
    waiting = f"waiting ({s.reason})" if s.reason else ""
    return Verdict("pending", False, "; ".join(x for x in (before, waiting) if x))


def _last_run(f: Facts) -> str:
    """What happened to an element that ran before it was requeued."""
    r = f.report
    if r is not None:
        how = signal_reason(r.stop_reason) or r.stop_reason or r.error or r.state
        return f"requeued: its last run stopped ({how}) with {_count(r)} done"
    if f.progress is not None:
        return f"requeued: its last run stopped with {_count(f.progress)} done, no report"
    return ""


def signal_reason(stop_reason: str | None) -> str | None:
    """``signal 12`` -> ``SIGUSR2: time limit or preemption``."""
    if not stop_reason or not stop_reason.startswith("signal "):
        return None
    try:
        sig = signal.Signals(int(stop_reason.split()[1]))
    except (ValueError, IndexError):
        return None
    why = SIGNAL_WHY.get(sig)
    return f"{sig.name}: {why}" if why else sig.name


def _count(r: JobRecord) -> str:
    return f"{r.done}/{'?' if r.total is None else r.total}"


def _ended(f: Facts, s: SlurmView) -> Verdict:
    r = f.report
    if s.state == "COMPLETED":
        if r is not None:
            return _from_report(r)
        if f.report_problem:
            return _damaged(f)
        return Verdict("failed", True, f"SLURM: COMPLETED, but the job left no {REPORT}")
    why = f"SLURM: {s.state}" + (f" (exit {s.exit})" if s.exit else "")
    if s.state == "PREEMPTED":
        why += ", not requeued"
    if r is not None and r.ok:
        why += f"; its report says completed at {r.ended_at}"
    elif r is not None:
        why += f"; report: {_why(r)}"
    elif f.report_problem:
        why += f"; {f.report_problem}"
    return Verdict("failed", True, why)


def _from_report(r: JobRecord) -> Verdict:
    if r.ok:
        return Verdict("done", True, f"done at {r.ended_at}" if r.ended_at else "done")
    return Verdict("failed", True, _why(r))


def _why(r: JobRecord) -> str:
    how = signal_reason(r.stop_reason) or r.stop_reason or r.error
    if how is None:
        how = f"{r.failed} item(s) failed" if r.failed else (r.state or "no state")
    return f"exit {r.exit_code}: {how}"


def _damaged(f: Facts) -> Verdict:
    p = f.progress
    last = f"; its last heartbeat says {p.state}, {_count(p)} done" if p is not None else ""
    return Verdict("failed", True, f"{f.report_problem}: cannot tell how the job ended{last}")


def _from_files(f: Facts) -> Verdict:
    if f.report is not None:
        return _from_report(f.report)
    if f.report_problem:
        return _damaged(f)
    if f.exit_code is not None and not f.started:
        how = signal_reason(f"signal {f.exit_code - 128}") or f"exit {f.exit_code}"
        return Verdict("failed", True, f"not started: the sweep was stopped ({how})")
    if f.exit_code is not None:
        return Verdict("failed", True, f"exit {f.exit_code} without writing {REPORT}")
    p = f.progress
    if p is not None:
        if p.state in OK_STATES:
            return Verdict("failed", True, f"{REPORT} is missing; the heartbeat says {p.state}")
        if f.process_alive is False:
            who = f"process {p.pid} on {p.host}"
            return Verdict("failed", True, f"{who} is gone and left no {REPORT} (killed?)")
        if stale(f):
            age = f.heartbeat_age_s or 0.0
            note = f"no heartbeat for {age:.0f}s (one every {f.heartbeat_s:g}s): likely killed"
            return Verdict("stale", False, note, live=True)
        return Verdict("running", False, "", live=True)
    if f.progress_problem:
        return Verdict("stale", False, f"{f.progress_problem}; no {REPORT} yet")
    if f.scheduler_gone:
        return Verdict("failed", True, "never started: the local scheduler is gone")
    return Verdict("pending", False)


def _lost(f: Facts) -> bool:
    return (
        f.slurm_backend
        and f.queue_answered
        and (f.slurm is None or f.slurm.active)
        and f.quiet_s is not None
        and f.quiet_s > LOST_S
    )
