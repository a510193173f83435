"""One job's records as ``status`` reads them: ``report.json``, ``progress.json``, a marker.

Each is read into a :class:`JobRecord`, checked field by field: a file that is
missing reads as None; one that is torn, not JSON or of an unexpected shape
reads as a problem that names the file and what is wrong, never a traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from launcher import location
from launcher.layout import PROGRESS, REPORT, JobDir

OK_STATES = ("completed", "dry_run")  # a report's states that mean the shard is done


class RecordError(ValueError):
    """A record file that exists but cannot be used; the message names it."""


def load_json(path: str) -> Any:
    """The JSON value in ``path`` (a completion marker may be at a URL, in a state dir on
    object storage); None when it does not exist; RecordError when damaged."""
    try:
        with location.open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise RecordError(f"{os.path.basename(path)} cannot be read ({e})") from None
    try:
        return json.loads(text)
    except ValueError as e:
        what = "is empty" if not text.strip() else f"is not valid JSON ({e}; truncated?)"
        raise RecordError(f"{os.path.basename(path)} {what}") from None


def field(data: dict[str, Any], name: str, kinds: tuple[type, ...], default: Any = None) -> Any:
    """``data[name]`` if one of ``kinds``; ``default`` if missing or null; else RecordError."""
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in kinds:
        value = None  # JSON true is not a count
    if not isinstance(value, kinds):
        want = " or ".join(k.__name__ for k in kinds)
        raise RecordError(f"field {name!r} should be {want}, found {data.get(name)!r}")
    return value


NUMBER = (int, float)


@dataclass(frozen=True)
class JobRecord:
    """The fields ``status`` uses from a report, a heartbeat or a completion marker."""

    total: int | None = None
    skipped: int = 0
    processed: int = 0
    failed: int = 0
    planned: bool = True
    items_per_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    state: str | None = None
    exit_code: int | None = None
    stop_reason: str | None = None
    error: str | None = None
    ended_at: str | None = None
    updated_unix: float | None = None
    heartbeat_s: float | None = None
    host: str | None = None
    pid: int | None = None
    job_dir: str | None = None
    shard_idx: int | None = None
    shard_num: int | None = None

    @property
    def done(self) -> int:
        return self.skipped + self.processed

    @property
    def ok(self) -> bool:
        """A report that says the job completed with exit code 0."""
        return self.exit_code == 0 and self.state in OK_STATES

    @classmethod
    def parse(cls, data: Any) -> JobRecord:
        if not isinstance(data, dict):
            raise RecordError(f"should be a JSON object, found {type(data).__name__}")
        shard = field(data, "shard", (dict,), {})
        return cls(
            total=field(data, "total", (int,)),
            skipped=field(data, "skipped", (int,), 0),
            processed=field(data, "processed", (int,), 0),
            failed=field(data, "failed", (int,), 0),
            planned=field(data, "planned", (bool,), True),
            items_per_s=field(data, "items_per_s", NUMBER),
            eta_s=field(data, "eta_s", NUMBER),
            elapsed_s=field(data, "elapsed_s", NUMBER),
            state=field(data, "state", (str,)),
            exit_code=field(data, "exit_code", (int,)),
            stop_reason=_text(data.get("stop_reason")),
            error=_text(data.get("error")),
            ended_at=field(data, "ended_at", (str,)),
            updated_unix=field(data, "updated_unix", NUMBER),
            heartbeat_s=field(data, "heartbeat_s", NUMBER),
            host=field(data, "host", (str,)),
            pid=field(data, "pid", (int,)),
            job_dir=field(data, "job_dir", (str,)),
            shard_idx=field(shard, "idx", (int,)),
            shard_num=field(shard, "num", (int,)),
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Read:
    """A record file read: its content, or what is wrong with it (both None: no such file)."""

    record: JobRecord | None = None
    problem: str | None = None

    @property
    def exists(self) -> bool:
        return self.record is not None or self.problem is not None


def read_record(path: str) -> Read:
    name = os.path.basename(path)
    try:
        data = load_json(path)
        return Read(None if data is None else JobRecord.parse(data))
    except RecordError as e:
        text = str(e)
        return Read(problem=text if text.startswith(name) else f"{name}: {text}")


@dataclass(frozen=True)
class JobFiles:
    report: Read
    progress: Read

    @property
    def any(self) -> bool:
        return self.report.exists or self.progress.exists


def read_job(job_dir: str, heartbeat_if_done: bool = True) -> JobFiles:
    """Its report and heartbeat; the heartbeat of a job whose report says done only if asked
    (half the files of a big finished sweep)."""
    report = read_record(JobDir(job_dir).report)
    if not heartbeat_if_done and report.record is not None and report.record.ok:
        return JobFiles(report, Read())
    return JobFiles(report, read_record(JobDir(job_dir).progress))


def is_job_dir(directory: str) -> bool:
    return any(os.path.exists(os.path.join(directory, f)) for f in (REPORT, PROGRESS))
