"""Batches from a DataLoader iterator, pulled by a thread once the model's steps wait.

Receiving a batch from a loader worker (unpickling it, mapping its shared
tensors) or, with ``num_workers=0``, loading it, happens on the model's thread
between two steps. When a step mostly waits (on a device, a remote model, a
sleep) with the GIL released, a thread pulling the next batch meanwhile takes
that off the critical path; when a step keeps the CPUs busy, such a thread
only competes with it. So the first steps are timed, and the thread starts
only if they wait (wall time minus this thread's CPU time) more than half of
the time, and at least ``MIN_WAIT_S`` a step: a step that waits less than
that has too little to overlap, and is timed too coarsely to tell.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

PROBE_STEPS = 4  # steps timed before deciding (the first one, a warm-up, is not counted)
DEPTH = 2  # batches pulled ahead
MIN_WAIT_S = 0.001
CLOSE_WAIT_S = 2.0

_END = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetch:
    """Iterate ``batches`` here; once :meth:`observe` has seen the first steps, maybe from a
    thread. :meth:`close` stops that thread."""

    def __init__(self, batches: Iterator[Any]) -> None:
        self._batches = batches
        self._queue: queue.Queue = queue.Queue(DEPTH)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._timed: list[tuple[float, float]] = []  # (wall, this thread's CPU) per step

    @property
    def threaded(self) -> bool:
        """Whether batches now come from the pulling thread."""
        return self._thread is not None

    @property
    def probing(self) -> bool:
        """Whether the next step is to be timed for :meth:`observe` (reading a thread's CPU
        time is a system call, slow on some VMs: the steps after the decision are not timed)."""
        return self._thread is None and len(self._timed) <= PROBE_STEPS

    def observe(self, wall: float, cpu: float) -> None:
        """One model step's wall time and this thread's CPU time in it; decides once
        enough steps are timed."""
        if not self.probing:
            return
        self._timed.append((wall, cpu))
        if len(self._timed) > PROBE_STEPS:
            steps = self._timed[1:]
            wall = sum(w for w, _ in steps)
            waited = wall - sum(c for _, c in steps)
            if waited > 0.5 * wall and waited >= MIN_WAIT_S * len(steps):
                self._thread = threading.Thread(target=self._pull, name="loader", daemon=True)
                self._thread.start()

    def _put(self, value: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _pull(self) -> None:
        try:
            for batch in self._batches:
                if not self._put(batch):
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised on the consuming thread
            self._put(_Raised(exc))
        self._put(_END)

    def __iter__(self) -> Iterator[Any]:
        while self._thread is None:
            batch = next(self._batches, _END)
            if batch is _END:
                return
            yield batch
        while (value := self._queue.get()) is not _END:
            if isinstance(value, _Raised):
                raise value.exc
            yield value

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Stop the pulling thread, if it started, after the batch it may be receiving; a
        thread still stuck in a loader after ``wait_s`` is left behind (it is a daemon)."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(wait_s)
