"""Progress for people: a tqdm bar on a terminal, a log line every N seconds elsewhere.

SLURM logs are files, where a bar's carriage returns become megabytes of noise.
Until items flow, the bar (or a log line) says what the job is doing: setting
up, listing, starting workers, loading the model. While a bar is shown, log
lines are written above it rather than onto it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

from launcher.stats import Stats

log = logging.getLogger(__name__)

BAR_REFRESH_S = 0.2
FALLBACK_COLUMNS, FALLBACK_LINES = 100, 24  # a pseudo-terminal reporting no size (script -qc)


def format_duration(seconds: float | None, unknown: str = "?") -> str:
    """``1h05m`` or ``4m07s``: how long, at a glance."""
    if seconds is None:
        return unknown
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def eta_s(remaining: float | None, rate: float) -> float | None:
    """Seconds left for ``remaining`` items at ``rate`` items/s; None when either is unknown."""
    return remaining / rate if remaining is not None and rate > 0 else None


def terminal_size() -> tuple[int, int]:
    """The terminal's columns and lines; 0 where it reports none (a bare pseudo-terminal,
    where tqdm would draw a bar 0 columns wide and hide it below row 0)."""
    try:
        return tuple(os.get_terminal_size(sys.stderr.fileno()))
    except (OSError, ValueError):
        return 0, 0


class Progress:
    """Shows the job's counters; mode auto (a bar on a terminal), bar, log or off."""

    def __init__(self, stats: Stats, mode: str, log_interval_s: float, desc: str) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.stats = stats
        self.mode = mode
        self.log_interval_s = log_interval_s
        self.desc = desc
        self.started = time.monotonic()
        self._next_log = self.started + log_interval_s
        self._bar = None
        self._next_draw = 0.0
        self._stage: str | None = None
        self._logs_above = contextlib.ExitStack()
        if mode == "bar":
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            columns, lines = terminal_size()
            self._bar = tqdm(
                desc=desc,
                unit="item",
                dynamic_ncols=columns > 0,
                ncols=None if columns > 0 else FALLBACK_COLUMNS,
                nrows=None if lines > 0 else FALLBACK_LINES,
                mininterval=0.2,
            )
            self._logs_above.enter_context(logging_redirect_tqdm())

    def stage(self, what: str) -> None:
        """Say what the job does before items flow (``loading the model``)."""
        if self.stats.processed or self.stats.failed or what == self._stage:
            return
        self._stage = what
        if self._bar is not None:
            self._bar.set_description_str(f"{self.desc}: {what}", refresh=False)
            self.update(force=True)
        elif self.mode == "log":
            log.info("%s: %s", self.desc, what)

    def update(self, force: bool = False) -> None:
        s = self.stats
        if self._bar is not None:
            now = time.monotonic()
            if now < self._next_draw and not force:
                return
            self._next_draw = now + BAR_REFRESH_S
            if s.planned and self._bar.total is None:
                self._bar.total = s.total - s.skipped
            if self._stage is not None and (s.processed or s.failed):
                self._stage = None  # items flow: the counters say the rest
                self._bar.set_description_str(self.desc, refresh=False)
            self._bar.n = s.processed + s.failed
            self._bar.set_postfix(skipped=s.skipped, failed=s.failed, refresh=False)
            self._bar.refresh()
        elif self.mode == "log" and time.monotonic() >= self._next_log:
            self._next_log = time.monotonic() + self.log_interval_s
            log.info(self.line())

    def line(self) -> str:
        s = self.stats
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (s.processed + s.failed) / elapsed
        of = f"/{s.total - s.skipped}" if s.planned else ""
        eta = format_duration(eta_s(s.pending if s.planned else None, rate))
        return (
            f"processed {s.processed}{of} (skipped {s.skipped}, failed {s.failed}), "
            f"{rate:.1f} items/s, ETA {eta}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self.update(force=True)
            self._bar.close()
            self._logs_above.close()
