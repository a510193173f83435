"""Completion markers against the items as they are now.

A shard's marker says it completed with the items it had then; inputs keep
arriving (and get deleted). Before a relaunch trusts markers, the planner
runs the elements' own :class:`~launcher.plan.Plan` once into a
:class:`~launcher.plan.Census` in place of a backbone, and launches a marked
shard again when it owns a pending item (a new input, a deleted output) or a
different number of items than its marker counted (``records.marker_total``:
inputs deleted). One listing for all shards of an array (one per shard for hard
sharding); nothing when no shard has a marker.
"""

from __future__ import annotations

import logging
from typing import Protocol

from launcher.driving import Driven
from launcher.plan import Census
from launcher.records import marker_total
from launcher.shard import Shard, Strategy

log = logging.getLogger(__name__)


class Marked(Protocol):
    """An array element as the marker checks read it (an ``arrays.Element``)."""

    shard: int | None
    tag: str
    state_dir: str | None


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
                census = Census.of(driven, shard, {idx: e.tag}, e.state_dir)
                found[e.tag] = (census.counts[e.tag], e.tag in census.pending)
        else:
            first, driven = marked[0]
            if first.shard is None:  # one element, its job's own selection
                groups = dict.fromkeys(shard.idx, first.tag)
            else:
                groups = {e.shard: e.tag for e, _ in marked}
            census = Census.of(driven, shard, groups, first.state_dir)
            found = {e.tag: (census.counts[e.tag], e.tag in census.pending) for e, _ in marked}
    except Exception as exc:  # noqa: BLE001 - the elements meet the same error and report it
        log.warning("could not re-check completed shards (%s): launching them again", exc)
        found = {e.tag: (-1, True) for e, _ in marked}
    again = [
        e
        for e, _ in marked
        if found[e.tag][1] or found[e.tag][0] != marker_total(e.state_dir, key, e.tag)
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
