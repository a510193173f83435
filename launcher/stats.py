"""The counters of one job, shared by the planner, the backbone and the records."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Stats:
    total: int = 0  # items this shard owns, as planned so far
    skipped: int = 0  # already done before this run
    processed: int = 0
    failed: int = 0
    planned: bool = False  # planning finished: total is final

    @property
    def pending(self) -> int:
        return self.total - self.skipped - self.processed - self.failed

    def as_dict(self) -> dict:
        return asdict(self)
