"""The runtime state of one job that a backbone reports into.

Backbones call :meth:`Job.done`, :meth:`Job.failed` and :meth:`Job.tick`;
the job applies the failure policy (``run.on_error``, ``run.max_failures``),
turns SIGTERM/SIGINT/SIGHUP into a graceful stop that ends by one deadline
(``run.grace_s`` after the signal), refreshes progress and writes the heartbeat.
A backbone stops dispatching as soon as :attr:`Job.stopping` is set.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from launcher import stops
from launcher.progress import Progress
from launcher.records import MAX_SHOWN_CHARS, Records, clip, printable, progress_record
from launcher.stats import Stats

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopPlanning(BaseException):
    """Raised into the main thread by a stop signal while it runs the user's setup or
    listing code (:meth:`Job.interruptible`): setup or planning ends there. A
    BaseException, so the user's own ``except Exception`` does not swallow it."""


class Job:
    def __init__(
        self,
        stats: Stats,
        records: Records,
        progress: Progress,
        *,
        on_error: str = "continue",
        max_failures: int | None = None,
        item_timeout_s: float | None = None,
        grace_s: float = 30.0,
        heartbeat_s: float = 5.0,
    ) -> None:
        self.stats = stats
        self.records = records
        self.progress = progress
        self.on_error = on_error
        self.max_failures = max_failures
        self.item_timeout_s = item_timeout_s
        self.grace_s = grace_s
        self.heartbeat_s = heartbeat_s
        self.started = time.monotonic()
        self.signal: int | None = None  # the signal that asked us to stop
        self.abort_reason: str | None = None  # a stop decided by policy or a fatal error
        self.outcome: str | None = None  # set when the job has ended
        self.deadline: float | None = None  # monotonic time by which a stopping job has ended
        self._interruptible = False
        self._next_beat = 0.0
        self._old_handlers: dict[int, Any] = {}

    # -- reported by backbones ---------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.signal is not None or self.abort_reason is not None

    def done(self, n: int) -> None:
        self.stats.processed += n

    def failed(self, item: str, error: str, message: str, traceback: str, **extra: Any) -> None:
        self.stats.failed += 1
        self.records.failure(item, error, message, traceback, **extra)
        shown = clip(message, MAX_SHOWN_CHARS)
        log.warning("item %s failed: %s: %s", printable(item), error, shown)
        if self.on_error == "raise":
            self.abort(f"item {item!r} failed with {error} and run.on_error=raise")
        elif self.max_failures is not None and self.stats.failed >= self.max_failures:
            self.abort(f"{self.stats.failed} items failed, reaching run.max_failures")

    def abort(self, reason: str) -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
            self._start_deadline()
            log.error("stopping: %s", clip(reason, MAX_SHOWN_CHARS))

    def _start_deadline(self) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.grace_s

    def time_left(self) -> float:
        """Seconds until the stop deadline (``run.grace_s`` after the stop began)."""
        if self.deadline is None:
            return self.grace_s
        return max(0.0, self.deadline - time.monotonic())

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Let a stop signal raise :class:`StopPlanning` here (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        if self.stopping:
            raise StopPlanning
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    def tick(self, force: bool = False) -> None:
        """Refresh progress; rewrite the heartbeat when it is due."""
        self.progress.update()
        now = time.monotonic()
        if force or now >= self._next_beat:
            self._next_beat = now + self.heartbeat_s
            beat = progress_record(self.stats, self.state, self.started, self.heartbeat_s)
            self.records.heartbeat(beat)

    # -- state -----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self.outcome is not None:
            return self.outcome
        if self.signal is not None:
            return "interrupted"
        if self.abort_reason is not None:
            return "aborted"
        return "running"

    # -- signals -------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # a second signal: stop waiting for in-flight items
        self.signal = signum
        self._start_deadline()
        log.warning(
            "received %s: no new items; waiting up to %.0fs (run.grace_s) for items in flight",
            signal.Signals(signum).name,
            self.grace_s,
        )
        if self._interruptible:
            self._interruptible = False
            raise StopPlanning

    def _on_stop_request(self, signum: int) -> None:
        if not self.stopping:  # a request is never the second Ctrl-C
            self._on_signal(signum, None)

    def __enter__(self) -> Job:
        for sig in STOP_SIGNALS:
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        stops.register(self._on_stop_request)
        return self

    def __exit__(self, *exc: Any) -> None:
        stops.unregister(self._on_stop_request)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
