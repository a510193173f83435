"""The run state of one job: the object a backbone reports into, and its stop policy.

Backbones call :meth:`RunState.done`, :meth:`RunState.failed` and
:meth:`RunState.tick`; the run state applies the failure policy
(``run.on_error``, ``run.max_failures``), turns SIGTERM/SIGINT/SIGHUP into a
graceful stop that ends by one deadline (``run.grace_s`` after the signal),
refreshes progress and writes the heartbeat. A backbone stops dispatching as
soon as :attr:`RunState.stopping` is set. (Not a Hydra or SLURM job: one of
these lives inside each.)
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from launcher import stops
from launcher.layout import FAILURES
from launcher.progress import Progress
from launcher.records import MAX_SHOWN_CHARS, Records, clip, printable, progress_record
from launcher.stats import Stats

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopPlanning(BaseException):
    """Raised into the main thread by a stop signal while it runs the user's setup or
    listing code (:meth:`RunState.interruptible`): setup or planning ends there. A
    BaseException, so the user's own ``except Exception`` does not swallow it."""


class RunState:
    """Counts, failure policy, stop signals and deadline, heartbeat: while one job runs."""

    def __init__(
        self,
        stats: Stats,
        records: Records,
        progress: Progress,
        *,
        on_error: str = "continue",
        max_failures: int | None = None,
        systematic_failures: int | None = None,
        item_timeout_s: float | None = None,
        grace_s: float = 30.0,
        heartbeat_s: float = 5.0,
        count_log_s: float = 30.0,
        item_key: Callable[[Any], str] = str,
        inflight_record: str = "",
    ) -> None:
        self.stats = stats
        self.inflight_record = inflight_record  # where a backbone names the items in flight
        self.backbone_facts: dict[str, Any] = {}  # what the backbone learned while running
        self.records = records
        self.progress = progress
        self.on_error = on_error
        self.max_failures = max_failures
        self.systematic_failures = systematic_failures
        self.count_log_s = count_log_s
        self.item_key = item_key
        self.errors: dict[str, int] = {}  # failed items by error type
        self._first: dict[str, None] = {}  # keys of the first systematic_failures pending items
        self._first_failed: dict[str, str] = {}  # ... those that failed, with their error type
        self._first_failure: tuple[str, str, str, str] | None = None  # item, error, message, tb
        self._next_count_log = time.monotonic() + count_log_s
        self.item_timeout_s = item_timeout_s
        self.grace_s = grace_s
        self.heartbeat_s = heartbeat_s
        self.started = time.monotonic()
        self.signal: int | None = None  # the signal that asked us to stop
        self.abort_reason: str | None = None  # a stop decided by policy or a fatal error
        self.ended: str | None = None  # the report's state, once the job has ended
        self.deadline: float | None = None  # monotonic time by which a stopping job has ended
        self._interruptible = False
        self._next_beat = 0.0
        self._old_handlers: dict[int, Any] = {}

    # -- reported by backbones ---------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.signal is not None or self.abort_reason is not None

    def done(self, n: int, finished: Sequence[Any] = ()) -> None:
        """``n`` items succeeded; ``finished`` (when :attr:`watching`) are the items that
        ended, succeeded or failed, so the earlier failures among them are settled."""
        self.stats.processed += n
        if finished and self.records.watching:
            self.records.settled(map(self.item_key, finished))

    def found_done(self, keys: list[str]) -> None:
        """The planner found these items done: earlier failures among them are settled."""
        self.records.settled(keys)

    @property
    def earlier_failures(self) -> Mapping[str, str]:
        """The failures kept from earlier runs of this shard, as lines by item."""
        return self.records.earlier

    @property
    def watching(self) -> bool:
        """Whether :meth:`done` needs the finished items (earlier failures wait for them)."""
        return self.records.watching

    def planned(self, pending: list[Any]) -> None:
        """The planner's pending items, block by block: the first ``systematic_failures``
        of them are the items the systematic-failure stop looks at, by position."""
        n = self.systematic_failures
        if n is not None and len(self._first) < n:
            self._first.update(dict.fromkeys(map(self.item_key, pending[: n - len(self._first)])))

    def stage(self, what: str) -> None:
        """Say what the job does until items flow (``loading the model``)."""
        self.progress.stage(what)

    def failed(self, item: str, error: str, message: str, traceback: str, **extra: Any) -> None:
        """Record a failed item. The log shows the first failure of each error type, then
        periodic counts: a bug that fails every item must not print a line per item."""
        self.stats.failed += 1
        self.records.failure(item, error, message, traceback, **extra)
        if self._first_failure is None:
            self._first_failure = (item, error, message, traceback)
        self.errors[error] = self.errors.get(error, 0) + 1
        if item in self._first:
            self._first_failed[item] = error
        shown = clip(message, MAX_SHOWN_CHARS)
        if self.on_error == "raise":
            log.error("item %s failed: %s: %s\n%s", printable(item), error, shown, traceback)
            self.abort(f"item {item!r} failed with {error} and run.on_error=raise")
            return
        if self.errors[error] == 1:
            log.warning(
                "item %s failed: %s: %s (further %s failures are counted, not shown one by one)",
                printable(item),
                error,
                shown,
                error,
            )
        else:
            self._log_failure_counts()
        if self.max_failures is not None and self.stats.failed >= self.max_failures:
            self.abort(f"{self.stats.failed} items failed, reaching run.max_failures")
        elif self._systematic():
            self.abort(
                f"the first {self.systematic_failures} items all failed with {error} "
                f"(run.systematic_failures={self.systematic_failures})",
                self._systematic_paragraph(),
            )

    def _log_failure_counts(self) -> None:
        """One line with the failures so far by error type, at most every ``count_log_s``."""
        now = time.monotonic()
        if now < self._next_count_log:
            return
        self._next_count_log = now + self.count_log_s
        log.warning("%d item(s) failed so far: %s", self.stats.failed, self.failure_counts())

    def failure_counts(self) -> str:
        """``TypeError 30, OSError 2``: the failures by error type, most frequent first."""
        ranked = sorted(self.errors.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{error} {n}" for error, n in ranked)

    def _systematic(self) -> bool:
        """Whether the first ``systematic_failures`` pending items, by position, have all
        failed with one error type: one of them still running (in another worker's chunk,
        say) may yet succeed, and then the stop never comes."""
        n = self.systematic_failures
        failed = self._first_failed
        return n is not None and len(failed) >= n and len(set(failed.values())) == 1

    def _systematic_paragraph(self) -> str:
        item, error, message, traceback = self._first_failure
        return (
            f"the first {self.systematic_failures} items all failed with {error}: "
            "this looks like a bug in the task or a wrong parameter, not bad items "
            f"(run.systematic_failures={self.systematic_failures}). The first, item "
            f"{printable(item)}: {error}: {clip(message, MAX_SHOWN_CHARS)}\n"
            f"{traceback.rstrip()}\n"
            f"Every failure is in {FAILURES}. Fix the cause and run the same command again "
            "(done items are skipped), or set run.systematic_failures=null to process every "
            "item regardless."
        )

    def abort(self, reason: str, paragraph: str | None = None) -> None:
        """Stop taking items; ``reason`` goes to the report, ``paragraph`` (if any) to the log."""
        if self.abort_reason is None:
            self.abort_reason = reason
            self._start_deadline()
            log.error("stopping: %s", paragraph or clip(reason, MAX_SHOWN_CHARS))

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
            if self.records.gone and self.state == "running":
                self.abort(f"the job dir {self.records.job_dir} was moved or deleted")

    # -- state -----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self.ended is not None:
            return self.ended
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

    def __enter__(self) -> RunState:
        for sig in STOP_SIGNALS:
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        stops.register(self._on_stop_request)
        return self

    def __exit__(self, *exc: Any) -> None:
        stops.unregister(self._on_stop_request)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
