"""The performance targets, checked against a run's summaries: one source for table and README."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import Summary


@dataclass(frozen=True)
class Target:
    workload: str
    text: str
    peer: str | None  # compare the ratio ours/peer; None: compare our own value
    op: Callable[[float, float], bool]
    bound: float

    def check(self, summaries: list[Summary]) -> dict[str, Any] | None:
        by_name = {s.contender: s for s in summaries}
        if "ours" not in by_name or (self.peer and self.peer not in by_name):
            return None
        measured = by_name[self.peer].ratio if self.peer else by_name["ours"].median
        if measured is None:
            return None
        met = self.op(measured, self.bound)
        shortfall = None
        if not met and self.peer:
            shortfall = f"{abs(1 - measured / self.bound) * 100:.0f}% short"
        elif not met:
            shortfall = f"{abs(measured - self.bound):.3g} over"
        return {"target": self.text, "measured": measured, "met": met, "shortfall": shortfall}


TARGETS = [
    Target("W1", "W1 >= 1.0x tuned Pool", "pool", operator.ge, 1.0),
    Target("W2", "W2 >= 0.95x tuned Pool", "pool", operator.ge, 0.95),
    Target("W4a", "W4a >= 1.0x tuned Pool, parent-filtered", "pool", operator.ge, 1.0),
    Target("W4b", "W4b >= 1.0x tuned Pool, parent-filtered", "pool", operator.ge, 1.0),
    Target("W1-opt", "W1 by process_chunk (opt-in) >= 1.0x tuned Pool", "pool", operator.ge, 1.0),
    Target(
        "W4a-opt",
        "W4a by unfinished (opt-in) >= 1.0x tuned Pool, parent-filtered",
        "pool",
        operator.ge,
        1.0,
    ),
    Target(  # ratio = ours/pool of seconds; ours starts 16 fork-server workers, Pool forks them
        "W5",
        "W5 slow items within 1.25x Pool chunksize 1 (time ratio <= 1.25)",
        "pool",
        operator.le,
        1.25,
    ),
    Target("M1", "M1 <= 150 MiB", None, operator.le, 150.0),
    Target("T1a", "T1 >= 0.97x hand-written DataLoader loop", "hand-loop", operator.ge, 0.97),
    Target("T1b", "T1 slow postprocess >= 1.6x sequential loop", "hand-loop", operator.ge, 1.6),
    Target(  # ratio = ours/peer of seconds: at least as fast is a ratio of at most 1
        "T2",
        "T2 task=embed >= 1.0x the SentenceTransformer script (time ratio <= 1)",
        "st-script",
        operator.le,
        1.0,
    ),
    Target(
        "T2-1cpu",
        "T2 on 1 CPU >= 1.0x the SentenceTransformer script (time ratio <= 1)",
        "st-script",
        operator.le,
        1.0,
    ),
    Target(
        "T2-inv",
        "T2 batch invariance costs <= 5% (time ratio <= 1.05)",
        "pad-to-longest",
        operator.le,
        1.05,
    ),
    Target(
        "T2-cuda",
        "T2 on CUDA >= 1.0x the SentenceTransformer script (time ratio <= 1)",
        "st-script",
        operator.le,
        1.0,
    ),
    Target(
        "T3", "T3 task=ocr >= 1.0x the hand loop (time ratio <= 1)", "hand-loop", operator.le, 1.0
    ),
    Target("S1-help", "S1 --help <= 0.5 s", None, operator.le, 0.5),
    Target(
        "P1", "P1 faster than the per-item scan (time ratio < 1)", "exists-scan", operator.lt, 1.0
    ),
    Target(
        "O1",
        "O1 done check by listing <= 0.25x a per-object HEAD loop's time",
        "head-loop",
        operator.le,
        0.25,
    ),
    Target("L1", "L1 <= 5 s", None, operator.le, 5.0),
    Target("ST1", "ST1 status of 1000 shards <= 1 s", None, operator.le, 1.0),
    Target("ST2-paint", "ST2 page of 10,000 shards, first paint <= 1 s", None, operator.le, 1.0),
    Target("ST2-refresh", "ST2 page of 10,000 shards, refresh <= 0.5 s", None, operator.le, 0.5),
    Target(  # ratio = ours/peer of seconds: 10x faster is a ratio of at most 0.1
        "L1",
        "L1 >= 10x faster than hydra-submitit-launcher (time ratio <= 0.1)",
        "hydra-submitit-launcher",
        operator.le,
        0.1,
    ),
]


def check(workload: str, summaries: list[Summary]) -> list[dict[str, Any]]:
    out = []
    for t in TARGETS:
        if t.workload == workload:
            result = t.check(summaries)
            if result is not None:
                out.append(result)
    return out
