"""The runtime state of one job that a backbone reports into.

Backbones call :meth:`Job.done`, :meth:`Job.failed` and :meth:`Job.tick`;
the job applies the failure policy (``run.on_error``, ``run.max_failures``),
turns SIGTERM/SIGINT into a graceful stop, refreshes progress and writes the
heartbeat. A backbone stops dispatching as soon as :attr:`Job.stopping` is set.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from launcher.progress import Progress
from launcher.records import Records, progress_record
from launcher.stats import Stats

log = logging.getLogger(__name__)


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
        log.warning("item %s failed: %s: %s", item, error, message)
        if self.on_error == "raise":
            self.abort(f"item {item!r} failed with {error} and run.on_error=raise")
        elif self.max_failures is not None and self.stats.failed >= self.max_failures:
            self.abort(f"{self.stats.failed} items failed, reaching run.max_failures")

    def abort(self, reason: str) -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
            log.error("stopping: %s", reason)

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

    @property
    def exit_code(self) -> int:
        if self.signal is not None:
            return 128 + self.signal
        return 1 if self.stats.failed or self.abort_reason else 0

    # -- signals -------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # a second signal: stop waiting for in-flight items
        self.signal = signum
        log.warning(
            "received %s: no new items; waiting up to %.0fs (run.grace_s) for items in flight",
            signal.Signals(signum).name,
            self.grace_s,
        )

    def __enter__(self) -> Job:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
