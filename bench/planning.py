"""P1: how long a resumed job takes to find its first pending item in a big tree.

Ours is the launcher's :class:`~launcher.plan.Plan` with the task's input mode
(a sorted walk) and output mode (the finish check answers from one listing
per output directory). ``MpBackbone.run`` calls ``plan.has_pending()`` before
it starts workers, so that call is the time to the first dispatch. The peer is
what a script does without a planner: the same sorted walk, one
``os.path.exists`` per item. Both also report the time to plan everything.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from bench.harness import Sample
from bench.ours import WHOLE
from bench.workloads import Item, PlanOnly
from launcher import AppendExtension, ByExtensions
from launcher.driving import Driven
from launcher.plan import Plan
from launcher.stats import Stats


def ours(in_root: str, out_root: str, expect_pending: int) -> Callable[[], Sample]:
    def runner() -> Sample:
        t0 = time.perf_counter()
        task = PlanOnly(
            input_dir=in_root,
            output_dir=out_root,
            input=ByExtensions([".txt"]),
            output=AppendExtension(".out"),
        )
        stats = Stats()
        plan = Plan(Driven.of(task), WHOLE, stats)
        if not plan.has_pending():
            raise RuntimeError("P1: our plan found nothing pending")
        first = time.perf_counter() - t0
        pending = 0
        while batch := plan.take(4096):
            pending += len(batch)
        return _sample(first, time.perf_counter() - t0, pending, expect_pending)

    return runner


def exists_scan(in_root: str, out_root: str) -> Iterator[Item]:
    """The same sorted walk as the input mode, and one ``stat`` per item's output."""
    for dirpath, dirnames, filenames in os.walk(in_root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, in_root)
        for name in sorted(filenames):
            if not name.endswith(".txt"):
                continue
            key = name if rel_dir == "." else f"{rel_dir}/{name}"
            output = os.path.join(out_root, key + ".out")
            if not os.path.exists(output):
                yield {"key": key, "input": os.path.join(dirpath, name), "output": output}


def scan(in_root: str, out_root: str, expect_pending: int) -> Callable[[], Sample]:
    def runner() -> Sample:
        t0 = time.perf_counter()
        items = exists_scan(in_root, out_root)
        if next(items, None) is None:
            raise RuntimeError("P1: the scan found nothing pending")
        first = time.perf_counter() - t0
        pending = 1 + sum(1 for _ in items)
        return _sample(first, time.perf_counter() - t0, pending, expect_pending)

    return runner


def _sample(first: float, total: float, pending: int, expect: int) -> Sample:
    if pending != expect:
        raise RuntimeError(f"P1: found {pending} pending items, expected {expect}")
    return Sample(first, {"first_pending_s": round(first, 4), "plan_all_s": round(total, 4)})
