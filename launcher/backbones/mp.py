"""The mp backbone: a crash-safe process pool fed by the planner.

Each worker has its own pipe, so the parent always knows which chunk each
worker holds, and a small shared array where the worker marks the item it is
on (chunk id, position, start time): three memory stores per item, no syscall.
That is what lets the parent, when a worker dies or an item overruns
``run.item_timeout_s``, count the finished part of the chunk, blame exactly
one item, and hand the unstarted rest to other workers. An item that kills a
worker is retried once on its own; a second death records it as
``WorkerDied``. ``multiprocessing.Pool`` hangs forever in that case and
``ProcessPoolExecutor`` breaks as a whole. A task that implements
``process_chunk`` (the opt-in for tiny items) gets one call per chunk and its
worker marks only the chunk: a lost chunk's items each run again alone.

Chunks are sized from measured item times (about ``TARGET_CHUNK_S`` of work
each, between 1 and ``MAX_CHUNK``). Until the first item is timed, each worker
gets one item at a time, so a few slow items spread over every worker; once
items are known to be quick, a worker holds two chunks and never waits for the
parent. Chunks are pickled in the parent's loop (an item that cannot be sent
fails alone) and written by one sender thread per worker, so a large chunk
never blocks the loop on a full pipe.

A worker is dead when it exits while it holds an item, whatever its exit
code (only a worker told to stop leaves between items), and its exit is seen
by polling the process too: an item that forks a long-lived child (which
inherits the pipes the parent watches) cannot hide its worker's death.

This module is the parent's side (config, scheduling, salvage); what runs in
each worker process is :mod:`launcher.backbones.mp_worker`.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import pickle
import queue
import select
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.reduction import ForkingPickler
from typing import Any, ClassVar

from launcher import location, transient_errors
from launcher.backbones.mp_worker import (
    CHUNK,
    ITEM,
    POS,
    RETRY_ALONE,
    START,
    WorkerSpec,
    worker_main,
)
from launcher.driving import Driven, TorchOnWorkers
from launcher.errors import ConfigError
from launcher.machine import available_cpus, pid_exists
from launcher.plan import Plan
from launcher.run_state import RunState
from launcher.task import Item, Task, TorchTask

log = logging.getLogger(__name__)

TARGET_CHUNK_S = 0.05
MAX_CHUNK = 4096
PREFETCH = 2
SLOW_CHUNK_S = 0.2  # a chunk expected to take longer than this is not prefetched
TAIL_CHUNK_S = 0.005  # once planning ended, chunks shrink towards this much work
READ_AHEAD = 16384  # pending items planned ahead of the workers' demand, at most
READ_AHEAD_BLOCK = 1024
STARTING_BLOCK = 64  # while workers start: small steps, so their threads get the GIL often
TICK_S = 0.25
MAX_STARTUP_DEATHS = 3
FORKSERVER_RESTARTS = 3  # tries to start a worker while its fork server is replaced

StartMethod = enum.Enum("StartMethod", ["fork", "spawn", "forkserver"])


@dataclass
class MpConfig:
    """``backbone.*`` for ``backbone=mp``."""

    name: str = "mp"
    num_workers: int | None = None  # None: the CPUs this process may use
    start_method: StartMethod = StartMethod.forkserver
    chunksize: int | None = None  # None: sized from measured item times
    batch_size: int = 16  # items per model call, for a TorchTask on this backbone

    BOUNDS: ClassVar[dict[str, str]] = {
        "num_workers": ">= 1",
        "chunksize": ">= 1",
        "batch_size": ">= 1",
    }


@dataclass
class _Chunk:
    id: int
    items: list[Item]
    failed: int = 0  # failures reported so far


@dataclass
class _Worker:
    slot: int
    proc: Any
    to_worker: Any  # chunks, written by the sender thread
    from_worker: Any  # the worker's messages, read by the loop
    status: Any  # the worker's CHUNK, POS, START and ITEM slots
    stop: Any  # set: the worker stops between items
    sendq: queue.SimpleQueue
    sender: threading.Thread
    inflight: deque[_Chunk] = field(default_factory=deque)
    ready: bool = False
    finished_any: bool = False
    ended: bool = False  # it said bye: torn down, and exiting


_QUIT = object()  # ends a sender thread without writing: the parent wrote the stop itself


def _send_loop(sendq: queue.SimpleQueue, conn: Any) -> None:
    """Write pickled chunks to one worker; None ends the worker (and this thread)."""
    while True:
        payload = sendq.get()
        if payload is _QUIT:
            return
        try:
            if payload is None:
                conn.send(None)
                return
            conn.send_bytes(payload)
        except (OSError, ValueError):
            return  # the worker is gone; the parent salvages its chunks


def preload(driven: Driven) -> list[str]:
    """What a job's forkserver imports before forking any worker."""
    return ["launcher.backbones.forkserver_preload", __name__, *driven.forkserver_modules()]


class MpBackbone:
    """Runs a plan's pending items over ``num_workers`` processes."""

    def __init__(self, cfg: MpConfig) -> None:
        import multiprocessing as mp

        self.num_workers = cfg.num_workers or available_cpus()
        method = getattr(cfg.start_method, "name", cfg.start_method)
        self.ctx = mp.get_context(method)
        self.fixed_chunksize = cfg.chunksize
        self.batch_size = cfg.batch_size
        self.start_method = method

    def describe(self) -> dict[str, Any]:
        return {
            "name": "mp",
            "num_workers": self.num_workers,
            "start_method": self.start_method,
            "chunksize": self.fixed_chunksize or "auto",
        }

    def prepare(self, driven: Driven) -> None:
        """Start the fork server now, before the task's setup and planning: it imports
        its preloads (the launcher's worker side, the task's module) meanwhile, instead
        of while the first worker start waits for it."""
        if self.start_method == "forkserver":
            from multiprocessing import forkserver

            self.ctx.set_forkserver_preload(preload(driven))
            forkserver.ensure_running()

    def run(self, driven: Driven, plan: Plan, state: RunState) -> None:
        """Run the plan's items; the workers it started (replacements included) go into the
        run state's ``backbone_facts``, counted as they start."""
        state.backbone_facts["workers_started"] = 0
        _Run(self, driven, plan, state).run()


class _Run:
    """One execution of the pool loop; all state lives here, in the parent's main thread."""

    def __init__(self, backbone: MpBackbone, driven: Driven, plan: Plan, state: RunState) -> None:
        self.bb = backbone
        self.driven = driven
        self.task = task = driven.task
        self.plan = plan
        self.state = state
        self.ctx = backbone.ctx
        self.workers: list[_Worker] = []
        self.requeued: deque[Item] = deque()  # unstarted items salvaged from lost workers
        self.ahead: list[Item] = []  # planned while the workers were busy or starting
        self.solo: deque[Item] = deque()  # items that killed a worker once: run alone
        self.suspects: set[str] = set()
        self.next_id = 0
        self.min_chunk = backbone.batch_size if isinstance(task, TorchTask) else 1
        self.chunked = driven.chunked
        self.chunksize = backbone.fixed_chunksize or self.min_chunk
        self.per_item_s: float | None = None
        self.startup_deaths = 0
        self.timed = bool(state.item_timeout_s)
        self.shipped: Task | TorchOnWorkers | bytes = task
        # one poll set for the loop, kept as workers come and go (connection.wait builds one
        # per call): fd -> (worker, is its death sentinel)
        self.poller = select.poll()
        self.watched: dict[int, tuple[_Worker, bool]] = {}
        self.unpicklable: Exception | None = None
        self.next_check = 0.0

    # -- workers ---------------------------------------------------------------------------------

    def spawn(self, slot: int) -> _Worker:
        """Start one worker. A fork server killed under us (its reply cut short, its socket
        gone) is started again, and the worker with it, on fresh pipes: a child the dead
        server forked anyway finds its pipes closed. The workers that server had forked
        look dead to us, and are salvaged as any dead worker is."""
        from multiprocessing import forkserver

        for attempt in range(FORKSERVER_RESTARTS + 1):
            try:
                return self.spawn_once(slot)
            except (EOFError, OSError) as exc:
                if self.bb.start_method != "forkserver" or attempt == FORKSERVER_RESTARTS:
                    raise
                log.warning("the fork server is gone (%r): starting a new one", exc)
                time.sleep(0.1 * attempt)
                forkserver.ensure_running()  # the same preloads, in a new server
        raise AssertionError("unreachable")

    def spawn_once(self, slot: int) -> _Worker:
        ctx = self.ctx
        from_parent, to_worker = ctx.Pipe(duplex=False)
        from_worker, to_parent = ctx.Pipe(duplex=False)
        spec = WorkerSpec(
            slot,
            self.shipped,
            from_parent,
            to_parent,
            status=ctx.RawArray("d", 4),
            stop=ctx.RawArray("b", 1),
            batch_size=self.bb.batch_size,
            timed=self.timed,
            chunked=self.chunked,
            storage_options=location.storage_options(),
        )
        proc = ctx.Process(
            target=worker_main, args=(spec,), name=f"launcher-worker-{slot}", daemon=True
        )
        try:
            proc.start()
        except BaseException:
            to_worker.close()
            from_worker.close()
            raise
        finally:
            from_parent.close()
            to_parent.close()
        sendq: queue.SimpleQueue = queue.SimpleQueue()
        sender = threading.Thread(target=_send_loop, args=(sendq, to_worker), daemon=True)
        sender.start()
        return _Worker(slot, proc, to_worker, from_worker, spec.status, spec.stop, sendq, sender)

    def ship(self, task: Task | TorchOnWorkers) -> Task | TorchOnWorkers | bytes:
        """The task as workers receive it: pickled once here, for every worker.

        A fork-server or spawn start blocks until the child has read its
        arguments; bytes are read at once, and each child unpickles the task
        on its own time instead of holding up the next start. Fork children
        inherit the object itself.
        """
        if self.bb.start_method == "fork":
            return task
        try:
            return pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - multiprocessing's pickler may still manage
            self.unpicklable = exc  # (it knows its own locks and queues): let it try
            return task

    def spawn_all(self) -> list[_Worker]:
        """Start every worker.

        A fork-server or spawn start blocks until the child has read its pickled
        task, so those start side by side from threads while this thread plans
        ahead (a forked child copies this process's locks: fork starts stay on
        this thread, one by one).
        """
        slots = range(self.bb.num_workers)
        if self.bb.start_method == "fork":
            self.state.backbone_facts["workers_started"] += len(slots)
            return [self.spawn(slot) for slot in slots]
        started: dict[int, _Worker | BaseException] = {}

        def start(slot: int) -> None:
            try:
                started[slot] = self.spawn(slot)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                started[slot] = exc

        threads = [threading.Thread(target=start, args=(slot,), daemon=True) for slot in slots]
        for t in threads:
            t.start()
        interrupted = None
        try:
            while self.plans_ahead() and any(t.is_alive() for t in threads):
                self.read_ahead(STARTING_BLOCK)
                time.sleep(0)  # lets a starting thread take the GIL between blocks
        except BaseException as exc:  # noqa: BLE001 - re-raised once the started ones are gone
            interrupted = exc
        for t in threads:
            t.join()
        workers = [started[slot] for slot in slots]
        errors = [w for w in workers if isinstance(w, BaseException)]
        if errors or interrupted:
            for w in workers:
                if isinstance(w, _Worker):
                    self.retire(w, kill=True)
            if interrupted:
                raise interrupted
            if self.unpicklable is not None:
                raise ConfigError(
                    f"the task {type(self.task).__name__} cannot be pickled for "
                    f"backbone.start_method={self.bb.start_method} workers "
                    f"({self.unpicklable}): create unpicklable resources (models, clients, "
                    "open files) in setup_worker(), or use backbone.start_method=fork"
                ) from errors[0]
            raise errors[0]
        self.state.backbone_facts["workers_started"] += len(workers)
        return workers  # type: ignore[return-value]

    def watch(self, w: _Worker) -> None:
        for fd, dies in ((w.from_worker.fileno(), False), (w.proc.sentinel, True)):
            self.poller.register(fd, select.POLLIN)
            self.watched[fd] = (w, dies)

    def unwatch(self, w: _Worker) -> None:
        for fd in (w.from_worker.fileno(), w.proc.sentinel):
            if self.watched.pop(fd, None) is not None:
                self.poller.unregister(fd)

    def retire(self, w: _Worker, kill: bool = False) -> None:
        self.unwatch(w)
        if w.ended:  # torn down and exiting: reaped if it is gone already, never waited for
            w.proc.join(timeout=0)
        else:
            if kill and w.proc.is_alive():
                w.proc.kill()
            w.sendq.put(None)
            w.proc.join(timeout=None if kill else 5)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
        w.sender.join(timeout=1)
        w.to_worker.close()
        w.from_worker.close()

    # -- dispatch --------------------------------------------------------------------------------

    def next_items(self) -> list[Item]:
        if self.solo:
            return [self.solo.popleft()]
        n = self.chunksize
        if self.requeued:
            return [self.requeued.popleft() for _ in range(min(n, len(self.requeued)))]
        if len(self.ahead) < n and not self.plan_done:
            self.ahead += self.plan.take(n - len(self.ahead))
        if self.plan_done and self.per_item_s:  # the last items, in smaller chunks (not
            # under TAIL_CHUNK_S of work, which its message would cost): workers end together
            share = -(-len(self.ahead) // max(1, len(self.workers) * self.depth()))
            n = min(n, max(share, int(TAIL_CHUNK_S / self.per_item_s), self.min_chunk))
        items = self.ahead[:n]
        del self.ahead[:n]
        return items

    @property
    def plan_done(self) -> bool:
        """Whether the plan has no item left to take (some may wait in ``ahead``)."""
        return self.plan.exhausted()

    def plans_ahead(self) -> bool:
        """Whether planning may run ahead of the workers' demand now."""
        return not self.state.stopping and len(self.ahead) < READ_AHEAD and not self.plan_done

    def read_ahead(self, size: int = READ_AHEAD_BLOCK) -> None:
        """Plan a block while no worker needs items (workers starting, or all busy)."""
        self.ahead += self.plan.take(size)

    def depth(self) -> int:
        """Chunks a worker may hold: one while item times are unknown or chunks are slow
        (a second would wait behind the first while another worker idles), else two."""
        if self.per_item_s is None or self.per_item_s * self.chunksize >= SLOW_CHUNK_S:
            return 1
        return PREFETCH

    def feed(self) -> None:
        depth = self.depth()
        for w in self.workers:
            while w.ready and len(w.inflight) < depth and not self.state.stopping:
                items = self.next_items()
                if not items:
                    return
                payload = self.pack(items)
                if payload is None:
                    continue
                chunk = _Chunk(self.next_id, items)
                self.next_id += 1
                w.inflight.append(chunk)
                w.sendq.put(payload)

    def pack(self, items: list[Item]) -> memoryview | None:
        """The chunk as the worker reads it; an item that cannot be pickled is failed here
        and left out (``items`` is edited in place). None when no item is left."""
        try:
            return ForkingPickler.dumps((self.next_id, items))
        except Exception:  # noqa: BLE001 - find the items at fault
            sendable = []
            for item in items:
                try:
                    ForkingPickler.dumps(item)
                except Exception as exc:  # noqa: BLE001 - recorded as the item's failure
                    self.state.failed(
                        self.task.item_key(item),
                        type(exc).__name__,
                        f"the item cannot be sent to a worker process (pickled): {exc}",
                        traceback.format_exc(),
                    )
                else:
                    sendable.append(item)
            items[:] = sendable
            return ForkingPickler.dumps((self.next_id, items)) if items else None

    def tune(self, n: int, elapsed: float) -> None:
        if n == 0:
            return
        per_item = elapsed / n
        self.per_item_s = (
            per_item if self.per_item_s is None else 0.7 * self.per_item_s + 0.3 * per_item
        )
        if self.bb.fixed_chunksize:
            return
        best = int(TARGET_CHUNK_S / max(self.per_item_s, 1e-7))
        self.chunksize = max(self.min_chunk, min(MAX_CHUNK, best))

    # -- messages --------------------------------------------------------------------------------

    def handle(self, w: _Worker, msg: tuple) -> None:
        kind = msg[0]
        if kind == "fail":
            _, chunk_id, pos, error, message, tb = msg
            chunk = next(c for c in w.inflight if c.id == chunk_id)
            chunk.failed += 1
            self.state.failed(self.task.item_key(chunk.items[pos]), error, message, tb)
        elif kind == "done":
            _, chunk_id, n, elapsed, failures, transient = msg
            transient_errors.add(transient)
            chunk = w.inflight.popleft()
            assert chunk.id == chunk_id, (chunk.id, chunk_id)
            w.finished_any = True
            self.startup_deaths = 0
            if n == RETRY_ALONE:  # process_chunk raised: find the items at fault one by one
                self.solo.extend(chunk.items)
                return
            failures = failures or ()
            ended = chunk.items[:n] if self.state.watching else ()
            self.state.done(n - chunk.failed - len(failures), ended)
            for pos, error, message, tb in failures:
                chunk.failed += 1
                self.state.failed(self.task.item_key(chunk.items[pos]), error, message, tb)
            self.tune(n, elapsed)
            if n < len(chunk.items) and not self.state.stopping:
                self.requeued.extendleft(reversed(chunk.items[n:]))
        elif kind == "ready":
            w.ready = True
        elif kind == "bye":
            w.ended = True
            transient_errors.add(msg[1])
        elif kind == "setup_error":
            _, error, message, tb = msg
            self.state.abort(f"setup_worker failed in worker {w.slot}: {error}: {message}\n{tb}")

    def drain(self, w: _Worker) -> None:
        try:
            while w.from_worker.poll():
                self.handle(w, w.from_worker.recv())
        except (EOFError, OSError):
            pass

    # -- losses ----------------------------------------------------------------------------------

    def salvage(
        self,
        w: _Worker,
        blame: Callable[[Item], None],
        alone: Callable[[Item], None] | None = None,
        suspect: bool = False,
    ) -> None:
        """Settle a lost worker's chunks: finished part done, one item blamed, rest requeued
        (a batch lost in its model step: each of its items goes to ``alone``, default blame).

        A ``process_chunk`` chunk of several items has no finished part: each of its
        items runs again alone (as ``suspect``, when the worker died: a second death
        is then the item's own)."""
        if not w.inflight:
            return
        chunk = w.inflight.popleft()
        rest: list[Item] = []
        holding = int(w.status[CHUNK]) == chunk.id and w.status[START] > 0
        if holding and self.chunked and len(chunk.items) > 1:
            if suspect:
                self.suspects.update(map(self.task.item_key, chunk.items))
            self.solo.extend(chunk.items)
        elif holding:
            pos = int(w.status[POS])
            self.state.done(pos - chunk.failed, chunk.items[:pos])
            at = int(w.status[ITEM])
            end = pos + at + 1 if at >= 0 else pos + self.bb.batch_size
            held = chunk.items[pos + max(at, 0) : end]
            for item in held:
                (blame if len(held) == 1 else alone or blame)(item)
            rest.extend(chunk.items[pos : pos + max(at, 0)])  # loaded, not yet processed
            rest.extend(chunk.items[end:])
        else:
            rest.extend(chunk.items)
        for later in w.inflight:
            rest.extend(later.items)
        w.inflight.clear()
        self.requeued.extendleft(reversed(rest))

    def on_death(self, w: _Worker) -> None:
        self.drain(w)
        code = w.proc.exitcode
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"

        def blame(item: Item) -> None:
            key = self.task.item_key(item)
            if key in self.suspects:
                self.state.failed(
                    key,
                    "WorkerDied",
                    f"the worker process died ({how}) while processing this item, twice",
                    "",
                )
            else:
                self.suspects.add(key)
                self.solo.append(item)

        if self.bb.start_method == "forkserver" and code == 255 and pid_exists(w.proc.pid):
            # its exit status can no longer reach us: its fork server was killed (and it may
            # have ended with it, unreaped): not its item's doing
            log.warning("worker %d (pid %s) lost its fork server: replaced", w.slot, w.proc.pid)
            self.salvage(w, self.requeued.appendleft)
            self.replace(w)
            return
        holding = bool(w.inflight) and int(w.status[CHUNK]) == w.inflight[0].id
        if code == 0 and not (holding and w.status[START] > 0):
            # it left between items, told to stop (SIGTERM): nothing to blame
            log.info("worker %d (pid %s) stopped on SIGTERM", w.slot, w.proc.pid)
            self.salvage(w, self.requeued.appendleft)
            self.replace(w)
            return
        if not w.ready or not w.finished_any:
            self.startup_deaths += 1
        log.warning("worker %d (pid %s) died with %s", w.slot, w.proc.pid, how)
        self.salvage(w, blame, suspect=True)
        self.replace(w)
        if self.startup_deaths > MAX_STARTUP_DEATHS:
            self.state.abort(
                f"workers keep dying before finishing any item ({how}); "
                "check the task's imports and setup_worker"
            )

    def check_timeouts(self) -> None:
        limit = self.state.item_timeout_s
        if not limit:
            return
        now = time.monotonic()
        for w in list(self.workers):
            started = w.status[START]
            span = self.bb.batch_size if w.status[ITEM] < 0 else 1  # a model step: its batch's
            if self.chunked and w.inflight:  # one process_chunk call: the chunk's items'
                span = len(w.inflight[0].items)
            if w.inflight and started > 0 and now - started > limit * span:
                self.drain(w)
                if w.status[START] != started:
                    continue  # it moved on while we looked
                w.proc.kill()
                w.proc.join()

                def blame(item: Item) -> None:
                    self.state.failed(
                        self.task.item_key(item),
                        "ItemTimeout",
                        f"the item ran over run.item_timeout_s={limit}s; its worker was killed",
                        "",
                    )

                self.drain(w)
                self.salvage(w, blame, self.solo.append)
                self.replace(w)

    def replace(self, w: _Worker) -> None:
        self.retire(w, kill=True)
        i = self.workers.index(w)
        self.workers.pop(i)  # retired: never used again, even if its successor cannot start
        if not self.state.stopping:
            self.workers.insert(i, self.spawn(w.slot))
            self.watch(self.workers[i])
            self.state.backbone_facts["workers_started"] += 1

    # -- the loop --------------------------------------------------------------------------------

    def busy(self) -> bool:
        return any(w.inflight for w in self.workers)

    def finished(self) -> bool:
        return (
            self.plan_done
            and not self.ahead
            and not self.busy()
            and not self.requeued
            and not self.solo
        )

    def run(self) -> None:
        state = self.state
        if not self.plan.has_pending():
            return  # everything is done already: start no worker
        self.bb.prepare(self.driven)  # once per process: a no-op when it is running
        state.stage(f"starting {self.bb.num_workers} workers")
        self.shipped = self.ship(self.driven.worker_side(self.bb.num_workers, self.bb.batch_size))
        self.workers = self.spawn_all()
        for w in self.workers:
            self.watch(w)
        try:
            self.loop()
        except KeyboardInterrupt:
            state.abort("interrupted twice: items in flight were abandoned")
            for w in self.workers:
                self.retire(w, kill=True)
            self.workers = []
        finally:
            self.shutdown()

    def loop(self) -> None:
        state = self.state
        while True:
            if state.stopping:
                for w in self.workers:
                    w.stop[0] = 1
                if not self.busy():
                    return
                if state.time_left() <= 0:
                    log.error("items still running after run.grace_s: killing their workers")
                    return
            else:
                self.feed()
                if self.finished():
                    return
            idle = self.plans_ahead()
            events = self.poller.poll(0 if idle else TICK_S * 1000)
            if not events and idle:
                self.read_ahead()
            dead = []
            for fd, _ in events:
                w, dies = self.watched[fd]
                if dies:
                    dead.append(w)
                    continue
                # one message per wake-up: the next poll returns at once if more wait;
                # EOF means it died, and its sentinel says so
                with contextlib.suppress(EOFError, OSError):
                    self.handle(w, w.from_worker.recv())
            for w in dead:
                self.on_death(w)
            now = time.monotonic()
            if now >= self.next_check:
                self.next_check = now + TICK_S
                self.check_exits()
                self.check_timeouts()
            state.tick()

    def check_exits(self) -> None:
        """Deaths the sentinel does not show: a forked worker's sentinel stays open while
        a child the item forked lives on."""
        for w in list(self.workers):
            if w.proc.exitcode is not None and w in self.workers:
                self.on_death(w)

    def shutdown(self) -> None:
        """Workers end by one deadline: the stop's (``run.grace_s`` after it began), or
        ``run.grace_s`` from now after a normal end."""
        deadline = time.monotonic() + self.state.time_left()
        for w in self.workers:
            if w.inflight:  # the stop goes after the chunks its sender still holds
                w.sendq.put(None)
                continue
            w.sendq.put(_QUIT)  # nothing in flight: its sender is idle, the pipe has room
            with contextlib.suppress(OSError, ValueError):
                w.to_worker.send(None)
        for w in self.workers:
            self.await_end(w, deadline)
            if w.inflight:  # killed at the end of the grace period: count what finished
                self.salvage(w, lambda item: None)
            self.retire(w, kill=True)
        self.workers = []

    def await_end(self, w: _Worker, deadline: float) -> None:
        """Handle a stopping worker's last messages until it says bye (its teardown ran),
        its process ends, or the deadline passes: the bye spares waiting for the exit
        status, which a fork-server worker's parent learns only through the server."""
        while not w.ended:
            left = deadline - time.monotonic()
            ready = wait([w.from_worker, w.proc.sentinel], timeout=max(0.0, left))
            if w.from_worker in ready:
                try:
                    self.handle(w, w.from_worker.recv())
                except (EOFError, OSError):
                    return  # gone without a bye: retire kills and reaps it
            elif ready or left <= 0:
                self.drain(w)
                return
