"""What a job leaves behind in its directory, for people and for ``status``.

- ``failures.jsonl``: one line per failed item (``item``, ``error``, ``message``,
  ``traceback``), appended and flushed as failures happen, so a killed job keeps them.
- ``progress.json``: a heartbeat rewritten atomically every few seconds.
- ``report.json``: the final account of the job.
- ``<state dir>/locks/<shard>.lock``: the one job running a shard into an output.

A copy of the failures also goes to the task's state directory (beside its
outputs), where ``run.retry_failed=true`` finds them on a later run, and so
does a completion marker per shard, keyed by the task config, where a
relaunched sweep finds the shards it need not run again.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import platform
import shutil
import socket
import sys
import time
from datetime import datetime, timezone
from typing import Any

from launcher import location
from launcher.io import atomic_write, write_json_atomic
from launcher.location import is_url
from launcher.machine import pid_alive
from launcher.progress import eta_s
from launcher.stats import Stats

FAILURES = "failures.jsonl"
INFLIGHT = "inflight-{shard}.json"  # torch backbone: items in flight, named after a crash
PROGRESS = "progress.json"
REPORT = "report.json"
DONE_DIR = "done"
SWEEP_STATE = ".launcher"  # in a sweep dir: the sweep record, array configs, scripts
SWEEP_RECORD = "sweep.json"  # in SWEEP_STATE: the arrays, their shards and ids
LOCAL_EXITS = "exits.jsonl"  # in SWEEP_STATE: one line per local element that ended
SUMMARY = "summary.json"  # in a sweep dir: the merged view ``status`` last showed

SLURM_VARS = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "restart_count": "SLURM_RESTART_COUNT",
    "node": "SLURMD_NODENAME",
}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def slurm_ids() -> dict[str, str]:
    return {k: os.environ[v] for k, v in SLURM_VARS.items() if v in os.environ}


def versions() -> dict[str, str]:
    """Versions of what shaped the results; torch only when the job imported it."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("shard-launcher", "hydra-core", "omegaconf"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].__version__
    return out


MAX_RECORD_CHARS = 64 * 1024  # of a failure's message or traceback kept in failures.jsonl
MAX_SHOWN_CHARS = 500  # of a message printed to the console and job.log


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def printable(key: str) -> str:
    """An item key as a log line can carry it (undecodable file-name bytes escaped)."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


class JobDirGone(Exception):
    """The job dir was moved or deleted while the job ran: its records cannot be kept."""


def gone_paragraph(job_dir: str) -> str:
    """What a job whose dir disappeared says, once, on stderr (a SLURM element's ``.err``)."""
    return (
        f"the job dir {job_dir} was moved or deleted while the job ran (with its sweep dir, "
        "if it is a sweep's). Its records (report.json, progress.json, failures.jsonl) are "
        "no longer written there, and the path is not created again: a second, partial copy "
        "would mislead status. The job stops taking items and exits non-zero; outputs "
        "already written are kept. Move a run or sweep dir only once its jobs have ended; to "
        "finish, run the same command again (for a sweep with hydra.sweep.dir=NEW): done "
        "items are skipped."
    )


def dir_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Records:
    """Writes one job's records; the only place that knows their file names.

    ``failures.jsonl`` describes this run only: a rerun into the same job
    directory starts it afresh. The copy for retries goes to ``state_dir``
    once the job holds its shard's lock (set it then).

    The job dir is created once, here. Should it be moved or deleted later
    (or replaced by another folder of that name), :attr:`gone` turns true,
    says so once on stderr, and no record is written to that path again.
    """

    def __init__(self, job_dir: str) -> None:
        self.job_dir = job_dir
        self.state_dir: str | None = None
        self.shard_tag = ""
        self.lock: ShardLock | None = None
        os.makedirs(job_dir, exist_ok=True)
        self._dir_identity = dir_identity(job_dir)
        self._gone = False
        # read back by close(): the file itself may have moved away with the job dir
        self._failures = open(os.path.join(job_dir, FAILURES), "w+", encoding="utf-8")  # noqa: SIM115

    @property
    def gone(self) -> bool:
        """Whether the job dir is no longer the one this job created (moved, deleted)."""
        if not self._gone and dir_identity(self.job_dir) != self._dir_identity:
            self._gone = True
            print(gone_paragraph(self.job_dir), file=sys.stderr, flush=True)
        return self._gone

    def _write(self, name: str, data: dict[str, Any]) -> None:
        if self.gone:
            return
        try:
            write_json_atomic(os.path.join(self.job_dir, name), data, create_dirs=False)
        except FileNotFoundError:
            if not self.gone:  # a missing job dir is said once; anything else is an error
                raise

    def failure(self, item: str, error: str, message: str, traceback: str, **extra: Any) -> None:
        record = {
            "item": item,
            "error": error,
            "message": clip(message, MAX_RECORD_CHARS),
            "traceback": clip(traceback, MAX_RECORD_CHARS),
        }
        record.update(extra)
        self._failures.write(json.dumps(record, default=str) + "\n")
        self._failures.flush()

    def heartbeat(self, data: dict[str, Any]) -> None:
        self._write(PROGRESS, data)
        if self.lock is not None:
            self.lock.refresh()

    def report(self, data: dict[str, Any]) -> None:
        self._write(REPORT, data)

    def close(self) -> None:
        """Flush failures and keep a copy of them with the outputs for retries."""
        try:
            self._failures.flush()
            if self.state_dir is None:
                return
            target = shard_failures(self.state_dir, self.shard_tag)
            self._failures.seek(0)
            if is_url(target):
                with atomic_write(target, "w", encoding="utf-8") as copy:
                    shutil.copyfileobj(self._failures, copy)
                return
            tmp = target + ".tmp"
            with open(tmp, "w", encoding="utf-8") as copy:
                shutil.copyfileobj(self._failures, copy)
            os.replace(tmp, target)
        finally:
            self._failures.close()


def shard_failures(state_dir: str, shard_tag: str) -> str:
    """Where a shard's failures are kept beside its outputs, for ``run.retry_failed``."""
    return os.path.join(state_dir, f"failures.{shard_tag}.jsonl")


def read_failures(path: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The failure records of one ``failures.jsonl``, and the numbers of its damaged lines.

    A job killed mid-write leaves a torn last line; one bad line never hides the others.
    Raises OSError when the file cannot be read.
    """
    records, damaged = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                damaged.append(number)
    return records, damaged


def failed_keys(state_dir: str) -> frozenset[str]:
    """The items that failed in the latest run of every shard of this output."""
    from launcher.errors import InputError

    keys: set[str] = set()
    if is_url(state_dir):
        paths = location.files_matching(state_dir, "failures.", ".jsonl")
    else:
        paths = glob.glob(os.path.join(state_dir, "failures.*.jsonl"))
    for path in paths:
        with location.open(path, "r", encoding="utf-8", errors="surrogateescape") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    keys.add(str(json.loads(line)["item"]))
                except (ValueError, KeyError, TypeError) as e:
                    raise InputError(
                        f"{path}:{lineno}: a damaged failure record ({type(e).__name__}: "
                        f"{clip(str(e), 200)}), so run.retry_failed cannot tell which items "
                        "failed. Fix or delete that line (or the file, to retry nothing)."
                    ) from None
    return frozenset(keys)


class LockedError(Exception):
    """Another live job holds this shard's lock."""


class ShardLock:
    """One running job per shard and output: ``locks/<shard>.lock`` in the state dir,
    naming its holder (host, pid, SLURM ids).

    A lock is stale, and taken over, when its holder is a dead process on this
    host, an earlier run of this same SLURM job (a requeue, on any node), or
    has not been refreshed (each heartbeat touches it) for ``stale_s``.
    """

    def __init__(self, state_dir: str, shard_tag: str, stale_s: float) -> None:
        self.path = os.path.join(state_dir, "locks", f"{shard_tag}.lock")
        self.stale_s = stale_s
        self.me = {**job_identity(), "started_at": now_iso()}
        self.held = False

    def acquire(self) -> None:
        """Take the lock, or raise :class:`LockedError` saying who holds it."""
        if is_url(self.path):
            self._acquire_at_url()
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_lock(self.path)
                if not self._stale(holder):
                    raise LockedError(self._describe(holder)) from None
                # move the stale lock aside: of two jobs taking it over, one rename wins
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self.path, f"{self.path}.stale-{os.getpid()}")
                    os.unlink(f"{self.path}.stale-{os.getpid()}")
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.me, f)
            self.held = True
            return
        raise LockedError(self._describe(_read_lock(self.path)))

    def _acquire_at_url(self) -> None:
        """On object storage: a conditional PUT creates the lock only where none is, and
        a stale one is deleted first (of two jobs taking it over, one PUT wins)."""
        for _ in range(3):
            if location.create_exclusive(self.path, json.dumps(self.me)):
                self.held = True
                return
            holder = _read_lock(self.path)
            if not self._stale(holder):
                raise LockedError(self._describe(holder))
            location.remove(self.path)
        raise LockedError(self._describe(_read_lock(self.path)))

    def _stale(self, holder: dict[str, Any] | None) -> bool:
        try:
            age = location.age_s(self.path) if is_url(self.path) else _age_s(self.path)
        except FileNotFoundError:
            return True
        if holder is None:  # being written, or torn by a kill: give its writer a moment
            return age > 10
        if age > self.stale_s:
            return True
        mine = self.me["slurm"].get("job_id")
        if mine and holder.get("slurm", {}).get("job_id") == mine:
            return True  # an earlier run of this very SLURM job, requeued
        if holder.get("host") == self.me["host"]:
            return not pid_alive(holder.get("pid"))
        return False

    def _describe(self, holder: dict[str, Any] | None) -> str:
        who = (
            f"{holder.get('host')} pid {holder.get('pid')} since {holder.get('started_at')}"
            if holder
            else "a job that is starting"
        )
        return (
            f"another job is already running this shard into the same output ({who}; lock "
            f"{self.path}). Two jobs would process every item twice: wait for it to end or "
            "stop it. If it is gone, delete the lock file."
        )

    def refresh(self) -> None:
        with contextlib.suppress(OSError):
            if is_url(self.path):  # an object's age is its last write
                location.write_text(self.path, json.dumps(self.me))
            else:
                os.utime(self.path)

    def release(self) -> None:
        if self.held and _read_lock(self.path) == self.me:
            if is_url(self.path):
                location.remove(self.path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        self.held = False


def _age_s(path: str) -> float:
    return time.time() - os.stat(path).st_mtime


def _read_lock(path: str) -> dict[str, Any] | None:
    try:
        with location.open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def job_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm": slurm_ids()}


def progress_record(
    stats: Stats, state: str, started: float, heartbeat_s: float | None = None
) -> dict[str, Any]:
    """The heartbeat's content: counters, rate and ETA, and how often it is rewritten
    (``status`` calls a heartbeat stale after a few of these intervals)."""
    elapsed = max(time.monotonic() - started, 1e-9)
    rate = (stats.processed + stats.failed) / elapsed
    eta = eta_s(stats.pending if stats.planned else None, rate)
    return {
        "state": state,
        **stats.as_dict(),
        "elapsed_s": round(elapsed, 3),
        "items_per_s": round(rate, 3),
        "eta_s": None if eta is None else round(eta, 1),
        "heartbeat_s": heartbeat_s,
        "updated_at": now_iso(),
        "updated_unix": time.time(),
        **job_identity(),
    }


def config_key(cfg: Any) -> str:
    """A hash of what decides a shard's items and outputs: the task and the shard split.

    ``shard.idx`` is left out (the marker's name carries it), and so are the
    backbone and run options, which change how items are processed, not which.
    """
    from omegaconf import OmegaConf

    shard = OmegaConf.to_container(cfg.shard, resolve=True, enum_to_str=True)
    shard.pop("idx", None)
    task = OmegaConf.to_container(cfg.task, resolve=True, enum_to_str=True)
    what = {"task": task, "shard": shard}
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def marker_path(state_dir: str, key: str, shard_tag: str) -> str:
    return os.path.join(state_dir, DONE_DIR, key, f"{shard_tag}.json")


def mark_shard_done(state_dir: str, key: str, shard_tag: str, record: dict[str, Any]) -> None:
    """Record that this shard completed for the task config ``key``."""
    write_json_atomic(marker_path(state_dir, key, shard_tag), record)


def done_shards(state_dir: str, key: str) -> set[str]:
    """Tags of the shards completed for the task config ``key`` (one directory listing)."""
    folder = os.path.join(state_dir, DONE_DIR, key)
    try:
        names = location.names(folder) if is_url(folder) else os.listdir(folder)
    except FileNotFoundError:
        return set()
    return {n[: -len(".json")] for n in names if n.endswith(".json") and not n.startswith(".")}
