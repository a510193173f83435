"""P2's child process: ``python -m bench.planchild CONTENDER N OUT`` plans a generator of N
items of which 90% are done, writes ``{"seconds", "pending"}`` to OUT and exits; the parent
samples its RSS.

``ours`` is the launcher's :class:`~launcher.plan.Plan` asking the task's
``is_executed`` per item (the default path); ``ours[unfinished]`` the same plan
with the task's block-level ``unfinished``; ``loop`` a plain parent-side filter
loop over the same generator, the done test inline.
"""

from __future__ import annotations

import json
import sys
import time

from bench.ours import WHOLE
from bench.workloads import DONE_EVERY, DoneByRule, DoneByRuleBlock, numbers
from launcher.driving import Driven
from launcher.plan import Plan
from launcher.stats import Stats

CONTENDERS = ("ours", "ours[unfinished]", "loop")


def ours(n: int, block: bool) -> int:
    plan = Plan(Driven.of((DoneByRuleBlock if block else DoneByRule)(n)), WHOLE, Stats())
    pending = 0
    while batch := plan.take(4096):
        pending += len(batch)
    return pending


def loop(n: int) -> int:
    pending = 0
    for item in numbers(n):
        if item["x"] % DONE_EVERY == 0:
            pending += 1
    return pending


def run(contender: str, n: int) -> int:
    if contender == "loop":
        return loop(n)
    return ours(n, block=contender == "ours[unfinished]")


if __name__ == "__main__":
    name, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    t0 = time.perf_counter()
    pending = run(name, count)
    seconds = time.perf_counter() - t0
    with open(out, "w") as f:
        json.dump({"seconds": seconds, "pending": pending}, f)
