"""DataLoaders over the plan that survive a worker that dies or hangs.

A DataLoader whose worker dies (SIGKILL, a segfault, ``os._exit``) or, with a
timeout, delivers nothing in time, raises and is unusable. Every batch handed
to a loader is remembered here until it comes back, so when one fails the
batches it still owed are known: the loader is dropped and those items are
loaded again one at a time, by a loader with one worker holding one item. An
item that kills that worker (or runs over ``run.item_timeout_s``) alone is
recorded as ``WorkerDied`` (``ItemTimeout``); the others go on as batches of
one, and a fresh loader then goes on with the plan. mp does the same with its
own workers: an item costs only itself.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from launcher import transient_errors
from launcher.backbones.grouping import Source
from launcher.backbones.inflight import InFlight
from launcher.batching import Loaded
from launcher.driving import Driven
from launcher.internals import loader_failure, loader_worker_pids, stop_loader_workers
from launcher.run_state import RunState
from launcher.task import Item

log = logging.getLogger(__name__)

# (batch sampler, workers, batches each worker holds, timeout in seconds or 0) -> DataLoader
MAX_DEATHS_IN_A_ROW = 5  # then it is the workers, not the items
LOAD_SHARE = 0.1  # loading in the model's process past this share of the time moves to workers
SHARE_BATCHES = 8  # batches timed per decision (after the first, a warm-up)

MakeLoader = Callable[[Any, int, int, float], Any]


class _Owed:
    """A batch sampler that remembers what it handed out until :meth:`received`."""

    def __init__(
        self,
        source: Callable[[], list[Item]],
        state: RunState,
        on_take: Callable[[list[Item]], None] | None = None,
    ) -> None:
        self.source = source
        self.state = state
        self.on_take = on_take
        self.owed: deque[list[Item]] = deque()

    def __iter__(self) -> Iterator[list[Item]]:
        while not self.state.stopping:
            items = self.source()
            if not items:
                return
            self.owed.append(items)
            if self.on_take is not None:
                self.on_take(items)
            yield items

    def received(self) -> None:
        self.owed.popleft()  # a DataLoader delivers batches in the order it was given them
        if self.on_take is not None:
            self.on_take([])


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Move this process's objects out of the garbage collector's reach while workers fork:
    a forked worker's collections then never walk them, which would copy most of the
    parent's heap page by page (copy-on-write) before its first batch. A freeze the
    task made itself is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class LoadShare:
    """The share of the time loading in the model's process takes: batches' loading
    against the time until the next batch is asked for (the model's step, postprocessing),
    over windows of :data:`SHARE_BATCHES` batches after the first."""

    def __init__(self) -> None:
        self.batches = 0
        self.loading = self.rest = 0.0
        self.last = 0.0  # the share of the window last decided on

    def add(self, loading: float, rest: float) -> None:
        self.batches += 1
        if self.batches > 1:  # the first step warms the model up
            self.loading += loading
            self.rest += rest

    def too_costly(self) -> bool:
        """At the end of a window: whether loading took more than :data:`LOAD_SHARE`."""
        if self.batches <= SHARE_BATCHES:
            return False
        self.last = self.loading / max(self.loading + self.rest, 1e-9)
        self.batches, self.loading, self.rest = 1, 0.0, 0.0
        return self.last > LOAD_SHARE


@dataclass
class Loading:
    """Batches (:class:`Loaded`) for the model, from loaders replaced as workers fail."""

    make_loader: MakeLoader
    plan: Source  # the plan, or its items grouped by size
    driven: Driven
    state: RunState
    batch_size: int
    workers: int
    prefetch_factor: int
    inflight: InFlight | None = None
    isolate: set[str] = field(default_factory=set)  # keys to load alone whenever they come
    spare: int = 0  # workers to move loading to if it costs too much here (0: never)
    plan_done: bool = False
    suspects: deque[Item] = field(default_factory=deque)  # a failed loader's: loaded alone
    iterator: Any = None
    deaths_in_a_row: int = 0
    opened: tuple[bool, _Owed, Iterator[Loaded]] | None = None  # by start(), not yet iterated
    share: LoadShare = field(default_factory=LoadShare)

    @property
    def item_timeout_s(self) -> float:
        return self.state.item_timeout_s or 0.0

    def _open(self, alone: bool) -> tuple[_Owed, Iterator[Loaded]]:
        if alone:
            sampler = _Owed(lambda: [self.suspects.popleft()] if self.suspects else [], self.state)
            loader = self.make_loader(sampler, 1, 1, self.item_timeout_s)
        else:
            # without workers, this process loads what it hands out: the record names it
            on_take = self._loading if not self.workers and self.inflight else None
            sampler = _Owed(self._take, self.state, on_take)
            # a batch is loaded item after item in one worker: it gets the time of all of them
            timeout = self.item_timeout_s * self.batch_size
            loader = self.make_loader(sampler, self.workers, self.prefetch_factor, timeout)
        previous = signal.getsignal(signal.SIGCHLD)
        with frozen_heap():
            self.iterator = iter(loader)
        # the DataLoader's SIGCHLD handler raises "worker killed" wherever the main thread
        # is (inside a model step or a postprocess); its own check finds dead workers too
        if signal.getsignal(signal.SIGCHLD) is not previous:
            signal.signal(signal.SIGCHLD, previous)
        return sampler, self.iterator

    def start(self) -> None:
        """Fork the first loader's workers now, on this thread, so they load while the
        model loads (without workers, loading waits for the first batch asked for)."""
        if self.workers and self.opened is None:
            alone = bool(self.suspects)
            self.opened = (alone, *self._open(alone))

    def __iter__(self) -> Iterator[Loaded]:
        """Batches, and each item a failed loader is blamed for as a ``Loaded`` holding only
        that failure (it may run in a loader thread: the model's thread records it)."""
        while True:
            if self.opened is not None:
                (alone, sampler, batches), self.opened = self.opened, None
            else:
                alone = bool(self.suspects)
                sampler, batches = self._open(alone)
            try:
                if (yield from self._deliver(batches, sampler, alone)):
                    self._move_to_workers()
                elif self.state.stopping or (self.plan_done and not self.suspects):
                    return
            except RuntimeError as exc:
                how = loader_failure(exc)
                if how is None:
                    raise
                if self.state.stopping:
                    return  # workers may die of the same signal; what they held stays pending
                blamed = self._settle(sampler, how, str(exc), alone)
                if blamed is not None:
                    yield blamed
            finally:
                self.close()

    def _deliver(
        self, batches: Iterator[Loaded], sampler: _Owed, alone: bool
    ) -> Generator[Loaded, None, bool]:
        """One loader's batches; True when it was left because loading in this process
        costs the model too much (:attr:`share`), False when it ran out."""
        clock = time.perf_counter
        timing = self.spare and not alone
        while True:
            start = clock()
            loaded = next(batches, None)
            if loaded is None:
                return False
            got = clock()
            sampler.received()
            transient_errors.add(loaded.transient_errors)
            self.deaths_in_a_row = 0
            yield loaded
            if timing:
                self.share.add(got - start, clock() - got)
                if self.share.too_costly():
                    return True

    def _move_to_workers(self) -> None:
        """Loading here costs the model too much of its time: the next loader has workers."""
        log.info(
            "loading takes %.0f%% of the time in the model's process: moving it to %d "
            "DataLoader worker(s)",
            100 * self.share.last,
            self.spare,
        )
        self.workers, self.spare = self.spare, 0

    def _take(self) -> list[Item]:
        """The plan's next batch, less the items to :attr:`isolate` (set aside to be loaded
        alone)."""
        while True:
            items = self.plan.take(self.batch_size)
            self.plan_done = not items
            if not self.isolate or not items:
                return items
            key = self.driven.task.item_key
            kept = [it for it in items if key(it) not in self.isolate]
            self.suspects.extend(it for it in items if key(it) in self.isolate)
            if kept:
                return kept

    def _loading(self, items: list[Item]) -> None:
        assert self.inflight is not None
        self.inflight.set("loading", self.driven.item_keys(items))

    def _settle(self, sampler: _Owed, how: str, message: str, alone: bool) -> Loaded | None:
        """Blame the item a one-item loader failed on, or set a loader's debts aside."""
        owed = [item for items in sampler.owed for item in items]
        if not alone:
            log.warning(
                "a DataLoader worker failed (%s); loading its %d unfinished item(s) one by one",
                message,
                len(owed),
            )
            self.suspects.extendleft(reversed(owed))
            return None
        self.suspects.extendleft(reversed(owed[1:]))
        if not owed:
            return None
        if how == "timeout":
            error = (
                "ItemTimeout",
                f"loading the item ran over run.item_timeout_s={self.item_timeout_s}s; "
                "its DataLoader worker was stopped",
                "",
            )
        else:
            self.deaths_in_a_row += 1
            if self.deaths_in_a_row > MAX_DEATHS_IN_A_ROW:
                raise RuntimeError(
                    f"DataLoader workers died on {self.deaths_in_a_row} items in a row, each "
                    f"loaded alone ({message}): this looks like the workers, not the items "
                    "(worker_init_fn, memory, imports); stopping rather than failing every item"
                )
            error = (
                "WorkerDied",
                "the DataLoader worker died while loading this item alone, after it had taken "
                f"down the loader of its batch or a run's own process ({message})",
                "",
            )
        return Loaded([], [(owed[0], error)])

    def worker_pids(self) -> tuple[int, ...]:
        """The current loader's worker processes (none before it starts, or without workers)."""
        return loader_worker_pids(self.iterator)

    def close(self) -> None:
        """Stop the current loader's workers (any thread may be waiting on them)."""
        iterator, self.iterator = self.iterator, None
        if iterator is not None:
            stop_loader_workers(iterator)
