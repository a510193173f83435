"""What runs in an mp worker process: set the task up, then run the chunks the parent
sends, marking the item in hand where the parent can read it.

The parent (:mod:`launcher.backbones.mp`) hands each worker a :class:`WorkerSpec`;
the worker turns it into a :class:`WorkerContext` that its run functions share.
Per item it writes three numbers into a shared array (chunk id, position, start
time) and checks one flag (stop between items): no syscall, so the hot loop
stays cheap, and a parent that sees the worker die or overrun knows which item
it held. Failures go to the parent as they happen, except a ``process_chunk``
chunk's, which travel in the chunk's end message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from launcher import location, transient_errors
from launcher.batching import Failure
from launcher.driving import TorchOnWorkers
from launcher.records import clip
from launcher.task import Task

log = logging.getLogger(__name__)

# shared status slots per worker; ITEM: in a batch at POS, the item loading, or -1 while
# the whole batch is in its model step
CHUNK, POS, START, ITEM = 0, 1, 2, 3

RETRY_ALONE = -1  # a chunk's count when process_chunk raised: run each of its items alone


@dataclass
class WorkerSpec:
    """What the parent hands one worker process: all of it pickles (pipes, shared arrays,
    the task or its pickled bytes)."""

    slot: int
    task: Task | TorchOnWorkers | bytes  # bytes: pickled once in the parent for every worker
    from_parent: Any  # chunks to run; None: stop
    to_parent: Any  # ready, fail, done, setup_error, bye messages
    status: Any  # RawArray("d", 4): the CHUNK, POS, START and ITEM slots
    stop: Any  # RawArray("b", 1): set, the worker stops between items
    batch_size: int  # items per model call, for a TorchTask
    timed: bool  # run.item_timeout_s is set: mark each item's start time
    chunked: bool  # the task overrides process_chunk: whole chunks per call
    storage_options: dict  # task.storage_options: how this worker opens URLs


@dataclass
class WorkerContext:
    """What a worker's run functions share: the set-up task, where to report, what to mark.

    ``marks`` and ``halt`` are memoryviews over the shared arrays: a store is a few tens
    of ns, a ctypes attribute several times that."""

    task: Any  # a Task or TorchOnWorkers, set up
    to_parent: Any
    marks: Any  # the CHUNK, POS, START and ITEM slots, as doubles
    halt: Any  # this worker's own stop flag: one check per item
    timed: bool
    batch_size: int
    chunk_id: int = -1  # the chunk in hand

    def begin(self, chunk_id: int) -> None:
        """Mark a chunk taken: busy from now (its item start times when timed)."""
        self.chunk_id = chunk_id
        self.marks[CHUNK] = chunk_id
        self.marks[POS] = 0
        self.marks[START] = time.monotonic() if self.timed else 1.0

    def fail(self, pos: int, failure: Failure) -> None:
        self.to_parent.send(("fail", self.chunk_id, pos, *failure))

    def end(self, n: int, elapsed: float, failures: list | None) -> None:
        """Mark the worker between items and tell the parent how many items were attempted
        (and how many transient errors the object store gave since the last chunk)."""
        self.marks[START] = 0.0
        self.to_parent.send(("done", self.chunk_id, n, elapsed, failures, transient_errors.take()))


Runner = Callable[[WorkerContext, list], tuple[int, list | None]]  # a chunk -> attempted, failed


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (kill -9 of the job)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def failure(exc: BaseException) -> Failure:
    """An exception as the parent records it; a broken ``__str__`` must not kill the worker."""
    try:
        message = str(exc)
    except Exception as e:  # noqa: BLE001
        message = f"<the exception's message could not be made: {type(e).__name__}: {e}>"
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # noqa: BLE001
        tb = ""
    return type(exc).__name__, message, tb


def _stop_on_sigterm(halt: Any) -> list[bool]:
    """SIGTERM: finish the current item, report, then exit; the flag says it came."""
    terminated = [False]

    def on_term(signum: int, frame: Any) -> None:
        halt[0] = 1
        terminated[0] = True

    signal.signal(signal.SIGTERM, on_term)
    return terminated


def worker_main(spec: WorkerSpec) -> None:
    """A worker process's whole life: set up, run chunks until told to stop, tear down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates Ctrl-C
    halt = memoryview(spec.stop).cast("B")
    terminated = _stop_on_sigterm(halt)
    _die_with_parent()
    task = spec.task
    location.use_storage_options(spec.storage_options)
    try:
        if isinstance(task, bytes):
            task = pickle.loads(task)
        task.setup_worker(spec.slot)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent verbatim
        spec.to_parent.send(("setup_error", *failure(exc)))
        return
    spec.to_parent.send(("ready",))
    marks = memoryview(spec.status).cast("B").cast("d")
    ctx = WorkerContext(task, spec.to_parent, marks, halt, spec.timed, spec.batch_size)
    _serve(ctx, spec.from_parent, terminated, _runner(task, spec.chunked))
    try:
        task.teardown_worker()
    except Exception:  # noqa: BLE001
        log.exception("teardown_worker failed in worker %d", spec.slot)
    # now, without waiting for threads the task left running (Process would join them)
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError, ValueError):  # torn down: the parent need not wait longer
        spec.to_parent.send(("bye", transient_errors.take()))
    os._exit(0)


def _serve(ctx: WorkerContext, from_parent: Any, terminated: list[bool], run: Runner) -> None:
    """Run each chunk the parent sends until it sends None, closes the pipe, or SIGTERM."""
    while True:
        try:
            msg = from_parent.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        chunk_id, items = msg
        ctx.begin(chunk_id)
        t0 = time.monotonic()
        n, failures = run(ctx, items)
        ctx.end(n, time.monotonic() - t0, failures)
        if terminated[0]:
            return


def _runner(task: Any, chunked: bool) -> Runner:
    """How this worker runs a chunk: a TorchTask's batches, one process_chunk call (a task
    that overrides it, as the parent found), or one process call per item."""
    if isinstance(task, TorchOnWorkers):
        return _run_batches
    return _run_chunk if chunked else _run_items


def _run_items(ctx: WorkerContext, items: list) -> tuple[int, None]:
    """The hot loop: one ``process(**item)`` per item; returns how many were attempted
    (failures were sent as they happened)."""
    process = ctx.task.process
    marks, halt, timed = ctx.marks, ctx.halt, ctx.timed
    clock = time.monotonic
    for pos, item in enumerate(items):
        if halt[0]:
            return pos, None
        marks[POS] = pos
        if timed:
            marks[START] = clock()
        try:
            process(**item)
        except (Exception, SystemExit) as exc:
            ctx.fail(pos, failure(exc))
    return len(items), None


def _run_chunk(ctx: WorkerContext, items: list) -> tuple[int, list | None]:
    """A task's ``process_chunk``: one call per chunk. Its failures travel in the chunk's
    end message, so a worker that dies first has recorded none of them."""
    if ctx.halt[0]:
        return 0, None
    try:
        failed = ctx.task.process_chunk(items)
        return len(items), _chunk_failures(failed, len(items))
    except (Exception, SystemExit) as exc:
        if len(items) > 1:
            return RETRY_ALONE, None
        return 1, [(0, *failure(exc))]


def _chunk_failures(failed: Any, n: int) -> list | None:
    """``process_chunk``'s answer as ``(position, error, message, traceback)`` tuples."""
    if not failed:
        return None
    try:
        entries = list(dict(failed).items())
    except (TypeError, ValueError):
        entries = [(None, None)]
    if not all(type(p) is int and 0 <= p < n and isinstance(e, BaseException) for p, e in entries):
        raise TypeError(
            "process_chunk() must return None or {position in items: exception}, got "
            f"{clip(repr(failed), 200)}"
        )
    return [(pos, *failure(exc)) for pos, exc in entries]


def _run_batches(ctx: WorkerContext, items: list) -> tuple[int, None]:
    """A TorchTask's items, ``batch_size`` at a time through ``process_batch``, which marks
    the item it loads (or -1 for the model step) so a timeout or a death blames that one."""
    marks, timed, batch_size = ctx.marks, ctx.timed, ctx.batch_size

    def mark(offset: int) -> None:
        marks[ITEM] = offset
        if timed:
            marks[START] = time.monotonic()

    for pos in range(0, len(items), batch_size):
        if ctx.halt[0]:
            return pos, None
        marks[POS] = pos
        for i, f in ctx.task.process_batch(items[pos : pos + batch_size], mark):
            ctx.fail(pos + i, f)
    return len(items), None
