"""What ``status`` shows, as dataclasses: one :class:`ShardRow` per shard, the
:class:`Totals`, and the :class:`Summary` that ``--json`` and ``summary.json`` print."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from launcher.progress import eta_s

STATES = ("pending", "held", "running", "done", "failed", "stale")


@dataclass
class ShardRow:
    job_dir: str | None
    note: str = ""
    heartbeat_age_s: float | None = None
    total: int | None = None
    done: int = 0
    processed: int = 0
    skipped: int = 0
    failed_items: int = 0
    planned: bool = True
    items_per_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None  # how long it ran (to its end, or to its last heartbeat)
    exit_code: int | None = None
    final: bool = False
    state: str = "pending"
    array: int = 0
    shard: int | None = None
    tag: str = ""
    launched: bool = True
    slurm_id: str | None = None
    slurm_state: str | None = None
    slurm_reason: str | None = None
    log: str | None = None  # without .out/.err
    ended_at: str | None = None  # when its report (or marker) says it ended
    marker: bool | None = None  # its completion marker is there (None: not checked)


@dataclass
class Totals:
    shards: dict[str, int]
    items: dict[str, int]
    items_per_s: float
    eta_s: float | None
    finished: bool
    last_ended_at: str | None = None  # the latest end among done shards
    unmarked: int = 0  # done shards whose completion marker is gone

    @classmethod
    def of(cls, rows: list[ShardRow]) -> Totals:
        """Shards by state, items, the current rate and the overall ETA.

        Shards that have not counted their items yet are assumed to be as large
        as the average shard that has, so the ETA covers them too.
        """
        by_state = dict.fromkeys(STATES, 0)
        for r in rows:
            by_state[r.state] += 1
        known = [r for r in rows if r.total is not None and r.planned]
        total = sum(r.total or 0 for r in known)
        done = sum(r.done for r in rows)
        failed = sum(r.failed_items for r in rows)
        avg = total / len(known) if known else None
        estimated = total + ((len(rows) - len(known)) * avg if avg is not None else 0)
        rate = sum(r.items_per_s or 0 for r in rows if r.state == "running")
        if not rate:  # between shards, or shards still listing: the pace of those that ran
            ran = [r.items_per_s for r in rows if r.state == "done" and r.items_per_s]
            if ran:
                rate = sum(ran) / len(ran) * max(1, by_state["running"])
        eta = eta_s(max(0.0, estimated - done - failed), rate)
        ended = [r.ended_at for r in rows if r.state == "done" and r.ended_at]
        return cls(
            shards={"total": len(rows), **by_state},
            items={
                "total": total,
                "estimated_total": round(estimated),
                "done": done,
                "processed": sum(r.processed for r in rows),
                "skipped": sum(r.skipped for r in rows),
                "failed": failed,
            },
            items_per_s=round(rate, 3),
            eta_s=None if eta is None else round(eta, 1),
            finished=all(r.final for r in rows),
            last_ended_at=max(ended, default=None),
            unmarked=sum(1 for r in rows if r.state == "done" and r.marker is False),
        )


@dataclass
class ArrayInfo:
    index: int
    overrides: list[str]
    key: str


@dataclass
class Summary:
    dir: str
    backend: str
    updated_at: str
    arrays: list[ArrayInfo]
    totals: Totals
    shards: list[ShardRow]
    argv: list[str] = field(default_factory=list)  # the sweep's command line, when recorded
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. ``failures`` with --failed

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape; rows copied field by field (``asdict`` deep-copies: slow)."""
        return {
            "dir": self.dir,
            "backend": self.backend,
            "updated_at": self.updated_at,
            "argv": self.argv,
            "arrays": [dict(vars(a)) for a in self.arrays],
            "totals": asdict(self.totals),
            "shards": [dict(vars(r)) for r in self.shards],
            **self.extra,
        }
