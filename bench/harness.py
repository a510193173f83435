"""Repetitions: every contender of a workload, in the same process tree, alternating.

Each repetition runs all contenders once, starting from a different one each
time (so none always runs first, on a cold page cache), with the others' CPU
use recorded around every run. Before each attempt the harness waits (up to
``wait_quiet_s``) for other processes to leave the CPUs; a repetition they
disturbed anyway is run again (up to ``retries`` times) when a quiet window
was found, since retrying on a machine that stays busy only burns time. The
summary uses only the clean repetitions when there are any, and says so when
there are none.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from bench.load import QUIET_CPUS, CpuWatch, Load, wait_for_quiet


@dataclass
class Sample:
    """One contender's result in one repetition: ``value`` in the workload's unit."""

    value: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Contender:
    """``prepare()`` does untimed set-up and returns the runner that one repetition measures."""

    name: str
    prepare: Callable[[], Callable[[], Sample]]
    note: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # e.g. the chunk sizes tried


@dataclass
class Run:
    contender: str
    rep: int
    attempt: int
    sample: Sample
    load: Load

    def as_dict(self) -> dict[str, Any]:
        return {
            "contender": self.contender,
            "rep": self.rep,
            "attempt": self.attempt,
            "value": self.sample.value,
            **self.sample.extra,
            "load": self.load.as_dict(),
        }


@dataclass
class Options:
    reps: int
    retries: int  # extra attempts for a repetition that other processes disturbed
    wait_quiet_s: float  # before each attempt, wait up to this long for the CPUs to be free


def timed(n: int, run: Callable[[], int]) -> Sample:
    """Run a throughput contender; check it handled ``n`` items; value = items/s."""
    t0 = time.perf_counter()
    handled = run()
    seconds = time.perf_counter() - t0
    if handled is not None and handled != n:
        raise RuntimeError(f"handled {handled} items, expected {n}")
    return Sample(n / seconds, {"seconds": round(seconds, 4)})


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def repeat(name: str, contenders: list[Contender], opts: Options) -> list[Run]:
    """All repetitions of one workload; runs from disturbed attempts are kept, marked."""
    runs: list[Run] = []
    for rep in range(opts.reps):
        shift = rep % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        for attempt in range(opts.retries + 1):
            quiet = True
            if opts.wait_quiet_s:
                quiet = wait_for_quiet(opts.wait_quiet_s) <= QUIET_CPUS
            batch = []
            for c in order:
                runner = c.prepare()
                with CpuWatch() as watch:
                    sample = runner()
                assert watch.load is not None
                batch.append(Run(c.name, rep, attempt, sample, watch.load))
            runs.extend(batch)
            noisy = [r.contender for r in batch if r.load.flagged]
            line = "  ".join(f"{r.contender}={r.sample.value:.4g}" for r in batch)
            _say(
                f"  {name} rep {rep + 1}/{opts.reps}: {line}"
                + (f"  [busy: {noisy}]" if noisy else "")
            )
            if not noisy or not quiet:
                break  # clean, or the machine never went quiet: a retry would be disturbed too
    return runs


def clean_reps(runs: list[Run]) -> tuple[list[Run], bool]:
    """For each repetition keep its last attempt; prefer repetitions no other process disturbed."""
    last: dict[int, int] = {}
    clean: dict[int, int] = {}
    for r in runs:
        last[r.rep] = max(last.get(r.rep, -1), r.attempt)
    for rep in last:
        attempts = {r.attempt for r in runs if r.rep == rep}
        for a in sorted(attempts):
            if not any(r.load.flagged for r in runs if r.rep == rep and r.attempt == a):
                clean[rep] = a
                break
    if clean:
        return [r for r in runs if clean.get(r.rep) == r.attempt], True
    return [r for r in runs if last[r.rep] == r.attempt], False


@dataclass
class Summary:
    contender: str
    median: float
    low: float
    high: float
    reps: int
    ratio: float | None  # median over repetitions of ours / this contender
    flagged: int  # runs of this contender disturbed by other processes (all attempts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "reps": self.reps,
            "ratio_ours_over_this": self.ratio,
            "flagged_runs": self.flagged,
        }


def summarize(runs: list[Run], ours: str = "ours") -> tuple[list[Summary], bool]:
    """Median, min-max and the median pairwise ratio ours/contender, over the kept repetitions."""
    kept, clean = clean_reps(runs)
    names = list(dict.fromkeys(r.contender for r in runs))
    ours_by_rep = {r.rep: r.sample.value for r in kept if r.contender == ours}
    out = []
    for name in names:
        mine = [r for r in kept if r.contender == name]
        values = [r.sample.value for r in mine]
        ratios = [
            ours_by_rep[r.rep] / r.sample.value
            for r in mine
            if r.rep in ours_by_rep and r.sample.value
        ]
        out.append(
            Summary(
                contender=name,
                median=median(values),
                low=min(values),
                high=max(values),
                reps=len(values),
                ratio=median(ratios) if ratios else None,
                flagged=sum(1 for r in runs if r.contender == name and r.load.flagged),
            )
        )
    return out, clean
