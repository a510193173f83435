"""What a job leaves behind in its directory, for people and for ``status``.

- ``failures.jsonl``: one line per failed item (``item``, ``error``, ``message``,
  ``traceback``), appended and flushed as failures happen, so a killed job keeps them.
- ``progress.json``: a heartbeat rewritten atomically every few seconds.
- ``report.json``: the final account of the job.
- ``<state dir>/locks/<shard>.lock``: the one job running a shard into an output.

The failures are also kept in the task's state directory (beside its outputs),
``failures/<task>/<shard split>.<shard>.jsonl``, merged with those of
earlier runs, where ``run.retry_failed=true`` finds them on a later run; so is
a completion marker per shard, keyed by the task config, where a relaunched
sweep finds the shards it need not run again.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from launcher import location
from launcher.io import atomic_write, write_json_atomic
from launcher.layout import (
    FAILURES,
    KEPT_FAILURES,
    PROGRESS,
    REPORT,
    JobDir,
    StateDir,
    failure_files,
    is_lock,
    marker_tag,
)
from launcher.location import is_url
from launcher.machine import pid_alive
from launcher.progress import eta_s
from launcher.stats import Stats

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
        f"if it is a sweep's). Its records ({REPORT}, {PROGRESS}, {FAILURES}) are "
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
    directory starts it afresh, but only once this job holds its shard
    (:meth:`start`): a job refused before that (its lock is held, its config is
    bad) truncates nothing, and writes no report, while another job still runs
    in its job dir.

    The failures kept for retries (:meth:`keep_failures`) are merged, never
    replaced: an item that failed in an earlier run stays until a run reaches
    it (:meth:`settled`), so a run that stops early loses none of them.

    The job dir is created once, here. Should it be moved or deleted later
    (or replaced by another folder of that name), :attr:`gone` turns true,
    says so once on stderr, and no record is written to that path again.
    """

    def __init__(self, job_dir: str) -> None:
        self.job_dir = job_dir
        self._lock: ShardLock | None = None  # refreshed by each heartbeat
        self.kept: str | None = None  # the failures kept for retries, beside the outputs
        self.earlier: dict[str, str] = {}  # their lines by item, as the last runs left them
        self._reached: set[str] = set()  # earlier failures this run processed or found done
        os.makedirs(job_dir, exist_ok=True)
        self._dir_identity = dir_identity(job_dir)
        self._gone = False
        self._failures: Any = None  # read back by close(): it may move away with the job dir

    def start(self) -> None:
        """This job now owns its job dir's records: start ``failures.jsonl`` afresh."""
        if self._failures is None:
            path = JobDir(self.job_dir).failures
            self._failures = open(path, "w+", encoding="utf-8")  # noqa: SIM115 - until close()

    def keep_failures(self, path: str, lock: ShardLock) -> None:
        """This job holds its shard (``lock``, refreshed by each heartbeat from now on):
        keep its failures at ``path`` for retries, merged with what is there."""
        self._lock = lock
        self.kept = path
        self.earlier = {}
        with (
            contextlib.suppress(FileNotFoundError),
            location.open(path, "r", encoding="utf-8", errors="surrogateescape") as f,
        ):
            for n, line in enumerate(f):
                if line.strip():
                    line = line if line.endswith("\n") else line + "\n"  # torn by a kill
                    self.earlier[_item_of(line) or f"\0damaged line {n}"] = line

    @property
    def watching(self) -> bool:
        """Whether earlier failures wait to be settled: only then are keys worth computing."""
        return bool(self.earlier)

    def settled(self, keys: Iterable[str]) -> None:
        """These items were processed (or found done) by this run."""
        earlier = self.earlier
        self._reached.update(k for k in keys if k in earlier)

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
        self.start()
        self._failures.write(json.dumps(record, default=str) + "\n")
        self._failures.flush()

    def heartbeat(self, data: dict[str, Any]) -> None:
        self._write(PROGRESS, data)
        if self._lock is not None:
            self._lock.refresh()

    def report(self, data: dict[str, Any]) -> bool:
        """Write ``report.json``; False when this job was refused before it owned the job
        dir and another job still running there owns it (its records stay whole)."""
        if self._failures is None:
            if self._another_job_runs_here():
                return False
            # an ended run's records: this report replaces them, its failures with them
            open(JobDir(self.job_dir).failures, "w", encoding="utf-8").close()
        self._write(REPORT, data)
        return True

    def _another_job_runs_here(self) -> bool:
        """Whether the job dir's heartbeat is another job's, still running (its process
        alive on this host, or beating recently elsewhere)."""
        beat = read_progress(self.job_dir)
        if beat is None or beat.get("state") not in RUNNING_STATES:
            return False
        if beat.get("host") == socket.gethostname():
            return beat.get("pid") != os.getpid() and pid_alive(beat.get("pid"))
        age = time.time() - float(beat.get("updated_unix") or 0)
        return age < 3 * float(beat.get("heartbeat_s") or 5)

    def close(self) -> None:
        """Flush failures and merge them into the ones kept with the outputs for retries:
        earlier failures this run did not reach stay, the rest are this run's."""
        if self._failures is None:
            return
        try:
            self._failures.flush()
            if self.kept is None:
                return
            self._failures.seek(0)
            lines = [line for line in self._failures if line.strip()]
            failed_now = {_item_of(line) for line in lines}
            gone = self._reached | failed_now
            kept = [line for key, line in self.earlier.items() if key not in gone]
            with atomic_write(self.kept, "w", encoding="utf-8", errors="surrogateescape") as copy:
                copy.writelines(kept + lines)
        finally:
            self._failures.close()


def _item_of(line: str) -> str | None:
    """The item a failure line names; None for a damaged line."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return str(record["item"]) if isinstance(record, dict) and "item" in record else None


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


def failed_keys(state_dir: str, task_key: str) -> frozenset[str]:
    """The items of this task that failed and have not succeeded since, in every shard
    split."""
    from launcher.errors import InputError

    keys: set[str] = set()
    folder = StateDir(state_dir).failures(task_key)
    if is_url(folder):
        paths = location.files_matching(folder, "", KEPT_FAILURES)
    else:
        paths = sorted(glob.glob(failure_files(folder)))
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
    naming its holder (host, pid, SLURM ids) and its task and shard split.

    A lock is stale, and taken over, when its holder is a dead process on this
    host, this very process (the pid of a job killed before a container restart,
    reused), an earlier run of this same SLURM job (a requeue, on any node), or
    has not been refreshed (each heartbeat touches it) for ``stale_s``; a lock
    that cannot be read is stale only after ``stale_s`` too. A live lock of the
    same task under another shard split (``shard.num=1`` beside ``shard.num=2``)
    refuses this job as well: the two splits would process items twice.
    """

    def __init__(
        self, state_dir: str, shard_tag: str, stale_s: float, task: str = "", split: str = ""
    ) -> None:
        self.path = StateDir(state_dir).lock(shard_tag)
        self.stale_s = stale_s
        self.me = {**job_identity(), "started_at": now_iso(), "task": task, "split": split}
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
                if not self._stale(self.path, holder):
                    raise LockedError(self._describe(holder)) from None
                # move the stale lock aside: of two jobs taking it over, one rename wins
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self.path, f"{self.path}.stale-{os.getpid()}")
                    os.unlink(f"{self.path}.stale-{os.getpid()}")
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.me, f)
            self.held = True
            self._refuse_other_splits()
            return
        raise LockedError(self._describe(_read_lock(self.path)))

    def _acquire_at_url(self) -> None:
        """On object storage: a conditional PUT creates the lock only where none is, and
        a stale one is deleted first (of two jobs taking it over, one PUT wins)."""
        for _ in range(3):
            if location.create_exclusive(self.path, json.dumps(self.me)):
                self.held = True
                self._refuse_other_splits()
                return
            holder = _read_lock(self.path)
            if not self._stale(self.path, holder):
                raise LockedError(self._describe(holder))
            location.remove(self.path)
        raise LockedError(self._describe(_read_lock(self.path)))

    def _refuse_other_splits(self) -> None:
        """Release and refuse when a live job runs this task under another shard split."""
        folder = location.dirname(self.path)
        names = location.names(folder) if is_url(folder) else os.listdir(folder)
        for name in sorted(names):
            path = location.join(folder, name)
            if not is_lock(name) or path == self.path:
                continue
            holder = _read_lock(path)
            other = holder and holder.get("task") == self.me["task"]
            if other and holder.get("split") != self.me["split"] and not self._stale(path, holder):
                self.release()
                raise LockedError(
                    f"another job runs this task into the same output under another shard "
                    f"split ({holder.get('host')} pid {holder.get('pid')}, lock {path}): two "
                    "splits own overlapping items, which both would process. Wait for it to "
                    "end or stop it, then run one split. If it is gone, delete that lock file."
                )

    def _stale(self, path: str, holder: dict[str, Any] | None) -> bool:
        try:
            age = location.age_s(path) if is_url(path) else _age_s(path)
        except FileNotFoundError:
            return True
        if age > self.stale_s:
            return True
        if holder is None:  # being written, torn by a kill, or unreadable: its job may live
            return False
        mine = self.me["slurm"].get("job_id")
        if mine and holder.get("slurm", {}).get("job_id") == mine:
            return True  # an earlier run of this very SLURM job, requeued
        if holder.get("host") == self.me["host"]:
            return holder.get("pid") == self.me["pid"] or not pid_alive(holder.get("pid"))
        return False

    def _describe(self, holder: dict[str, Any] | None) -> str:
        who = (
            f"{holder.get('host')} pid {holder.get('pid')} since {holder.get('started_at')}"
            if holder
            else f"a job whose lock cannot be read yet, taken over once {self.stale_s:.0f}s old"
        )
        return (
            f"another job is already running this shard into the same output ({who}; lock "
            f"{self.path}). Two jobs would process every item twice: wait for it to end or "
            "stop it. If it is gone, delete the lock file."
        )

    def refresh(self) -> None:
        """Touch the lock (it is stale once not refreshed for ``stale_s``); a store that
        fails to answer now is asked again at the next heartbeat."""
        with contextlib.suppress(*location.store_errors()):
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
    except (*location.store_errors(), ValueError):
        return None
    return data if isinstance(data, dict) else None


def job_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm": slurm_ids()}


RUNNING_STATES = ("running", "interrupted", "aborted")  # a heartbeat's states before the end


def read_progress(job_dir: str) -> dict[str, Any] | None:
    """A job dir's heartbeat, None when there is none (or it cannot be read)."""
    try:
        with open(JobDir(job_dir).progress, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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


def mark_shard_done(state_dir: str, key: str, shard_tag: str, record: dict[str, Any]) -> None:
    """Record that this shard completed for the task config ``key``."""
    write_json_atomic(StateDir(state_dir).marker(key, shard_tag), record)


def marker_total(state_dir: str | None, key: str, tag: str) -> int | None:
    """How many items shard ``tag`` had when it completed for the task config ``key``
    (its completion marker's ``total``); None without a readable marker."""
    try:
        with location.open(StateDir(state_dir or "").marker(key, tag), "r", encoding="utf-8") as f:
            return int(json.load(f)["total"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def done_shards(state_dir: str, key: str) -> set[str]:
    """Tags of the shards completed for the task config ``key`` (one directory listing)."""
    folder = StateDir(state_dir).done(key)
    try:
        names = location.names(folder) if is_url(folder) else os.listdir(folder)
    except FileNotFoundError:
        return set()
    return {tag for tag in map(marker_tag, names) if tag is not None}
