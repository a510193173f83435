"""A launched sweep's record (``.launcher/sweep.json``) and local exit codes, as dataclasses.

The launchers write these (:func:`launcher.launchers.arrays.write_record`,
:func:`launcher.launchers.local.run_queue`); a record of an unexpected shape is
a :class:`RecordError` naming the file and the field, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from launcher.layout import SweepDir
from launcher.status.jobfiles import NUMBER, RecordError, field, load_json


@dataclass(frozen=True)
class ElementRecord:
    shard: int | None
    tag: str
    job_dir: str  # relative to the sweep dir
    state_dir: str | None
    launched: bool
    slurm_id: str | None
    log: str | None  # relative to the sweep dir, without .out/.err


@dataclass(frozen=True)
class ArrayRecord:
    index: int
    overrides: list[str]
    key: str
    heartbeat_s: float
    elements: list[ElementRecord]


@dataclass(frozen=True)
class Scheduler:
    """The detached process that runs a ``wait=false`` local sweep."""

    host: str
    pid: int


@dataclass(frozen=True)
class SweepRecord:
    backend: str
    created_at: str
    scheduler: Scheduler | None
    arrays: list[ArrayRecord]
    argv: list[str]  # the command line that launched it


def record_path(directory: str) -> str:
    return SweepDir(directory).record


def read_sweep(directory: str) -> SweepRecord | None:
    """The sweep record of ``directory``; None when it has none; RecordError when damaged."""
    path = record_path(directory)
    try:
        data = load_json(path)
        return None if data is None else _sweep(data)
    except RecordError as e:
        raise RecordError(f"{path} is damaged: {e}") from None


def _sweep(data: Any) -> SweepRecord:
    if not isinstance(data, dict):
        raise RecordError(f"should be a JSON object, found {type(data).__name__}")
    sched = field(data, "scheduler", (dict,))
    return SweepRecord(
        backend=field(data, "backend", (str,), "?"),
        created_at=field(data, "created_at", (str,), ""),
        scheduler=Scheduler(field(sched, "host", (str,), ""), field(sched, "pid", (int,), 0))
        if sched
        else None,
        arrays=[_array(a, i) for i, a in enumerate(field(data, "arrays", (list,), []))],
        argv=[str(a) for a in field(data, "argv", (list,), [])],
    )


def _array(data: Any, position: int) -> ArrayRecord:
    if not isinstance(data, dict):
        raise RecordError(f"arrays[{position}] should be a JSON object")
    try:
        return ArrayRecord(
            index=field(data, "index", (int,), position),
            overrides=[str(o) for o in field(data, "overrides", (list,), [])],
            key=field(data, "key", (str,), ""),
            heartbeat_s=float(field(data, "heartbeat_s", NUMBER, 5.0)),
            elements=[_element(e, i) for i, e in enumerate(field(data, "elements", (list,), []))],
        )
    except RecordError as e:
        raise RecordError(f"arrays[{position}]: {e}") from None


def _element(data: Any, position: int) -> ElementRecord:
    if not isinstance(data, dict):
        raise RecordError(f"elements[{position}] should be a JSON object")
    try:
        shard = field(data, "shard", (int,))
        return ElementRecord(
            shard=shard,
            tag=field(data, "tag", (str,), f"element-{position}"),
            job_dir=field(data, "job_dir", (str,), str(position if shard is None else shard)),
            state_dir=field(data, "state_dir", (str,)),
            launched=field(data, "launched", (bool,), True),
            slurm_id=field(data, "slurm_id", (str,)),
            log=field(data, "log", (str,)),
        )
    except RecordError as e:
        raise RecordError(f"elements[{position}]: {e}") from None


def local_exits(directory: str) -> dict[tuple[int, int | None], tuple[int, bool]]:
    """Exit codes of the local elements that ended, by (array, shard), and whether each had
    started (a stop signal keeps the rest from starting); torn lines skipped."""
    out: dict[tuple[int, int | None], tuple[int, bool]] = {}
    try:
        with open(SweepDir(directory).exits, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    ended = int(rec["exit_code"]), bool(rec.get("started", True))
                    out[(rec["array"], rec["shard"])] = ended
                except (ValueError, KeyError, TypeError):
                    continue
    except OSError:
        pass
    return out
