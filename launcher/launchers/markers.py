"""Completion markers against the items as they are now.

A shard's marker says it completed with the items it had then; inputs keep
arriving (and get deleted). Before a relaunch trusts markers, the planner
runs the elements' own :class:`~launcher.plan.Plan` once, with a counting
sink in place of a backbone, and launches a marked shard again when it owns a
pending item (a new input, a deleted output) or a different number of items
than its marker counted (inputs deleted). One listing for all shards of an
array (one per shard for hard sharding); nothing when no shard has a marker.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Hashable
from typing import Protocol

from launcher import location
from launcher.driving import Driven
from launcher.layout import StateDir
from launcher.plan import Plan
from launcher.shard import Shard, Strategy
from launcher.stats import Stats
from launcher.task import Item

log = logging.getLogger(__name__)

BLOCK = 4096


class Marked(Protocol):
    """An array element as the marker checks read it (an ``arrays.Element``)."""

    shard: int | None
    tag: str
    state_dir: str | None


class Tally:
    """The counting sink the plan tells: per marked shard, how many items it owns and
    whether one of them is pending."""

    def __init__(self, groups: dict[int, str]) -> None:
        self.groups = groups
        self.counts: Counter = Counter()
        self.pending: set[Hashable] = set()

    def count(self, owned: list[Item], owners: list[Hashable], pending: list[Item]) -> None:
        self.counts.update(owners)
        if pending:
            left = set(map(id, pending))
            self.pending.update(o for it, o in zip(owned, owners, strict=True) if id(it) in left)


def stale(shard: Shard, key: str, marked: list[tuple[Marked, Driven]]) -> list[Marked]:
    """The elements of ``marked`` (shards with a marker for config ``key``, each with the
    task it runs, as driven) to launch again."""
    if not marked:
        return []
    try:
        if shard.strategy is Strategy.hard:
            found = {}
            for e, driven in marked:
                idx = e.shard if e.shard is not None else min(shard.idx)
                census = _census(driven, shard, {idx: e.tag}, e.state_dir)
                found[e.tag] = (census.counts[e.tag], e.tag in census.pending)
        else:
            first, driven = marked[0]
            if first.shard is None:  # one element, its job's own selection
                groups = dict.fromkeys(shard.idx, first.tag)
            else:
                groups = {e.shard: e.tag for e, _ in marked}
            census = _census(driven, shard, groups, first.state_dir)
            found = {e.tag: (census.counts[e.tag], e.tag in census.pending) for e, _ in marked}
    except Exception as exc:  # noqa: BLE001 - the elements meet the same error and report it
        log.warning("could not re-check completed shards (%s): launching them again", exc)
        found = {e.tag: (-1, True) for e, _ in marked}
    again = [
        e
        for e, _ in marked
        if found[e.tag][1] or found[e.tag][0] != _marker_total(e.state_dir, key, e.tag)
    ]
    if again:
        tags = [e.tag for e in again]
        log.info(
            "%d of %d completed shard(s) have new, deleted or unfinished items since their "
            "marker: launching them again (%s)",
            len(again),
            len(marked),
            ", ".join(tags[:5]) + (", ..." if len(tags) > 5 else ""),
        )
    return again


def _marker_total(state_dir: str | None, key: str, tag: str) -> int | None:
    try:
        with location.open(StateDir(state_dir or "").marker(key, tag), "r", encoding="utf-8") as f:
            return int(json.load(f)["total"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _census(driven: Driven, shard: Shard, groups: dict[int, str], state_dir: str | None) -> Tally:
    """The plan of the shards in ``groups`` run to its end into a counting sink, listing
    the items as their jobs do (never those in their ``state_dir``)."""
    census = Tally(groups)
    plan = Plan(driven, shard, Stats(), census=census, unlisted=(state_dir,) if state_dir else ())
    while plan.take(BLOCK):  # a listing error raises here
        pass
    return census
