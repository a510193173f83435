"""Gather what is known about every shard of a run or sweep directory into a :class:`Summary`.

The impure half of ``status``: it reads the records, asks SLURM, checks
whether a heartbeat's process still lives on this host, and hands the facts
to :func:`~launcher.status.infer.infer`. The merged view of a sweep is
written to ``DIR/summary.json`` when the directory is writable.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import replace

from launcher.io import atomic_write
from launcher.layout import ERR, PROGRESS, REPORT, STATE, SWEEP_RECORD, StateDir, SweepDir
from launcher.machine import pid_alive
from launcher.records import clip, done_shards, now_iso
from launcher.status import slurm
from launcher.status.infer import Facts, Verdict, infer
from launcher.status.jobfiles import (
    JobFiles,
    JobRecord,
    RecordError,
    is_job_dir,
    read_job,
    read_record,
)
from launcher.status.summary import ArrayInfo, ShardRow, Summary, Totals
from launcher.status.sweep import ArrayRecord, ElementRecord, SweepRecord, local_exits, read_sweep
from launcher.status.sweep import record_path as sweep_record_path

HOST = socket.gethostname()
DEFAULT_HEARTBEAT_S = 5.0  # heartbeats written before they carried their own interval


class NotARun(FileNotFoundError):
    """DIR is neither a run nor a sweep directory."""


def collect(directory: str, write: bool = True) -> Summary:
    """The merged view of a run or sweep directory; a sweep's is also written to summary.json.

    Raises :class:`NotARun`, or :class:`~launcher.status.jobfiles.RecordError`
    for a sweep record that cannot be used and no job dir to show instead (with job
    dirs, they are shown and ``extra["damaged"]`` names the damage, on the page as in
    the terminal).
    """
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise NotARun(f"{directory}: no such directory")
    damage = None
    try:
        record = read_sweep(directory)
    except RecordError as e:  # the shards' own records still say what happened
        record, damage = None, e
    rows = _launched_rows(record, directory) if record else _plain_rows(directory)
    if damage is not None and not rows:
        raise damage
    if not rows:
        raise NotARun(
            f"{directory} is neither a run directory ({REPORT}, {PROGRESS}) "
            f"nor a sweep directory ({STATE}/{SWEEP_RECORD} or job subdirectories)."
        )
    summary = Summary(
        dir=directory,
        backend=record.backend if record else "in-process",
        updated_at=now_iso(),
        arrays=[ArrayInfo(a.index, a.overrides, a.key) for a in (record.arrays if record else [])],
        totals=Totals.of(rows),
        shards=rows,
        argv=record.argv if record else [],
    )
    if damage is not None:
        summary.extra["damaged"] = f"{damage}; shown from the shards' own records"
    elif write and (record is not None or len(rows) > 1):
        with (
            contextlib.suppress(OSError),  # a read-only sweep dir: shown, not kept
            atomic_write(
                SweepDir(directory).summary, "w", create_dirs=False, encoding="utf-8"
            ) as f,
        ):
            json.dump(summary.as_dict(), f)  # compact: thousands of rows
    return summary


# -- one job -------------------------------------------------------------------------------------


def _mtime(path: str | None) -> float:
    try:
        return os.path.getmtime(path) if path else 0.0
    except OSError:
        return 0.0


def job_facts(
    job_dir: str, heartbeat_s: float, now: float, **known: object
) -> tuple[Facts, JobFiles]:
    """The facts of one job directory, plus what launchers and SLURM know (``known``)."""
    view = known.get("slurm")
    files = read_job(job_dir, heartbeat_if_done=isinstance(view, slurm.SlurmView) and view.active)
    p = files.progress.record
    alive = None
    if p is not None and p.pid and p.host == HOST and not files.report.exists:
        alive = pid_alive(p.pid)
        if not alive:  # it may have written its report just before it exited
            files = read_job(job_dir)
    age = None if p is None or p.updated_unix is None else max(0.0, now - p.updated_unix)
    facts = Facts(
        report=files.report.record,
        report_problem=files.report.problem,
        progress=p,
        progress_problem=files.progress.problem,
        heartbeat_age_s=age,
        heartbeat_s=(p.heartbeat_s if p is not None and p.heartbeat_s else heartbeat_s),
        process_alive=alive,
        **known,  # type: ignore[arg-type]
    )
    return facts, files


def _counts(rec: JobRecord) -> dict[str, int | None]:
    return {
        "total": rec.total,
        "done": rec.done,
        "processed": rec.processed,
        "skipped": rec.skipped,
        "failed_items": rec.failed,
    }


def shard_row(facts: Facts, verdict: Verdict, job_dir: str | None) -> ShardRow:
    """A row of numbers from the record the verdict trusts: the heartbeat while it runs."""
    live = facts.progress if verdict.live and facts.progress is not None else None
    rec = facts.done_later if verdict.state == "done" and facts.done_later else None
    rec = rec or live or facts.report or facts.progress or JobRecord()
    row = ShardRow(
        job_dir=job_dir,
        note=verdict.note,
        heartbeat_age_s=None if facts.heartbeat_age_s is None else round(facts.heartbeat_age_s, 1),
        **_counts(rec),
        planned=rec.planned,
        items_per_s=rec.items_per_s,
        eta_s=rec.eta_s if verdict.state in ("running", "stale") and live else None,
        elapsed_s=rec.elapsed_s,
        exit_code=rec.exit_code if rec is facts.report else facts.exit_code,
        final=verdict.final,
        state=verdict.state,
        ended_at=rec.ended_at if verdict.state == "done" else None,
    )
    if facts.slurm is not None:
        row.slurm_state, row.slurm_reason = facts.slurm.state, facts.slurm.reason or None
    return row


# -- a launched sweep ----------------------------------------------------------------------------


def _launched_rows(record: SweepRecord, directory: str) -> list[ShardRow]:
    ids = [e.slurm_id.split("_")[0] for a in record.arrays for e in a.elements if e.slurm_id]
    views, queue_ok = slurm.query(ids) if record.backend == "slurm" else ({}, False)
    exits = local_exits(directory) if record.backend == "local" else {}
    sched = record.scheduler
    sched_gone = sched is not None and sched.host == HOST and not pid_alive(sched.pid)
    created = _mtime(sweep_record_path(directory))
    markers = _Markers()
    now = time.time()
    rows = []
    for a in record.arrays:
        for e in a.elements:
            if not e.launched:
                row = _earlier(e, a, markers)
            else:
                log = os.path.join(directory, e.log) if e.log else None
                view = views.get(e.slurm_id or "")
                facts, _ = job_facts(
                    os.path.join(directory, e.job_dir),
                    a.heartbeat_s,
                    now,
                    exit_code=exits.get((a.index, e.shard), (None, True))[0],
                    started=exits.get((a.index, e.shard), (None, True))[1],
                    slurm=view,
                    slurm_backend=record.backend == "slurm",
                    queue_answered=queue_ok,
                    scheduler_gone=sched_gone,
                )
                quiet = max(created, _mtime(log and log + ERR))
                if facts.progress is not None and facts.progress.updated_unix:
                    quiet = max(quiet, facts.progress.updated_unix)
                facts = replace(facts, quiet_s=now - quiet)
                verdict = infer(facts)
                if verdict.state in ("failed", "stale"):
                    later = markers.done_after(e, a.key, record.created_at)
                    if later is not None:
                        facts = replace(facts, done_later=later)
                        verdict = infer(facts)
                row = shard_row(facts, verdict, os.path.join(directory, e.job_dir))
                row.log = log
                if row.state == "done" and e.state_dir:
                    row.marker = markers.present(e, a.key)
                    if row.marker is None:
                        row.note += f"; {markers.unread(e)}"
                    elif not row.marker:
                        row.note += "; its completion marker is gone"
            row.array, row.shard, row.tag, row.launched = a.index, e.shard, e.tag, e.launched
            row.slurm_id = e.slurm_id
            rows.append(row)
    return rows


class _Markers:
    """Completion markers, listed once per (state dir, config key).

    A state dir on object storage may not be reachable from where ``status`` runs (a
    login node without the jobs' credentials): its markers are then unknown, said in
    a note, and the shards' own records are shown all the same.
    """

    def __init__(self) -> None:
        self._listed: dict[tuple[str, str], set[str] | None] = {}
        self.unreadable: dict[str, str] = {}  # state dir -> why its markers cannot be read

    def present(self, e: ElementRecord, key: str) -> bool | None:
        """Whether the shard's marker is there; None when the state dir cannot be read."""
        assert e.state_dir is not None
        where = (e.state_dir, key)
        if where not in self._listed:
            try:
                self._listed[where] = done_shards(e.state_dir, key)
            except Exception as exc:  # noqa: BLE001 - a store's errors are not all OSErrors
                self._listed[where] = None
                self.unreadable[e.state_dir] = f"{type(exc).__name__}: {clip(str(exc), 200)}"
        listed = self._listed[where]
        return None if listed is None else e.tag in listed

    def unread(self, e: ElementRecord) -> str:
        """The note for a shard whose marker could not be read."""
        return f"its completion marker cannot be read ({self.unreadable[e.state_dir or '']})"

    def read(self, e: ElementRecord, key: str) -> JobRecord | None:
        if not e.state_dir or not self.present(e, key):
            return None
        return read_record(StateDir(e.state_dir).marker(key, e.tag)).record

    def done_after(self, e: ElementRecord, key: str, since: str) -> JobRecord | None:
        """The shard's marker when it was written after ``since`` (a later relaunch)."""
        marker = self.read(e, key)
        return marker if marker is not None and (marker.ended_at or "") > since else None


def _earlier(e: ElementRecord, a: ArrayRecord, markers: _Markers) -> ShardRow:
    """A shard skipped by a relaunch: its numbers from its completion marker, if still there."""
    marker = markers.read(e, a.key)
    rec = marker or JobRecord()
    row = ShardRow(
        job_dir=rec.job_dir,
        **_counts(rec),
        exit_code=0,
        final=True,
        state="done",
        ended_at=rec.ended_at,
        marker=marker is not None,
    )
    if marker is None and e.state_dir in markers.unreadable:
        row.note = f"done before this sweep; {markers.unread(e)}"
        row.marker = None
    elif marker is None:
        row.note = "done before this sweep; its completion marker is gone"
    else:
        row.note = f"done before, at {rec.ended_at}, in {rec.job_dir}"
    return row


# -- a directory without a sweep record ----------------------------------------------------------


def _plain_rows(directory: str) -> list[ShardRow]:
    """Itself if it is a job dir, else its job subdirectories (a Hydra multirun dir)."""
    if is_job_dir(directory):
        dirs = [directory]
    else:
        try:
            subs = [d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d))]
        except OSError as e:
            raise NotARun(f"{directory} cannot be listed ({e.strerror})") from None
        subs.sort(key=lambda d: (not d.isdigit(), int(d) if d.isdigit() else 0, d))
        dirs = [os.path.join(directory, d) for d in subs if is_job_dir(os.path.join(directory, d))]
    now = time.time()
    rows = []
    for d in dirs:
        facts, files = job_facts(d, DEFAULT_HEARTBEAT_S, now)
        row = shard_row(facts, infer(facts), d)
        info = facts.report or facts.progress
        if info is not None and info.shard_num is not None:
            row.shard, row.tag = info.shard_idx, f"shard-{info.shard_idx}-of-{info.shard_num}"
        else:
            row.tag = os.path.basename(d)
        rows.append(row)
    return rows
