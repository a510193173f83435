"""Completion markers against the items as they are now.

A shard's marker says it completed with the items it had then; inputs keep
arriving (and get deleted). Before a relaunch trusts markers, the planner
lists the items once, as the elements would, through their finish check,
and launches a marked shard again when it owns a pending item (a new input,
a deleted output) or a different number of items than its marker counted
(inputs deleted). One listing for all shards of an array (one per shard for
hard sharding); nothing when no shard has a marker.
"""

from __future__ import annotations

import bisect
import copy
import json
import logging
from collections import Counter
from collections.abc import Callable
from itertools import islice
from typing import Any, Protocol

from launcher import location
from launcher.driving import bind_hard_shard, unfinished_filter
from launcher.layout import StateDir
from launcher.shard import Shard, Strategy, stable_hash

log = logging.getLogger(__name__)

BLOCK = 4096


class Marked(Protocol):
    """An array element as the marker checks read it (an ``arrays.Element``)."""

    shard: int | None
    tag: str
    state_dir: str | None


def stale(task: Any, shard: Shard, key: str, marked: list[Marked]) -> list[Marked]:
    """The elements of ``marked`` (shards with a marker for config ``key``) to launch again."""
    if not marked:
        return []
    try:
        if shard.strategy is Strategy.hard:
            found = {}
            for e in marked:
                bound = copy.copy(task)
                bind_hard_shard(
                    bound, e.shard if e.shard is not None else min(shard.idx), shard.num
                )
                counts, pending = _owned(bound, shard, [e])
                found[e.tag] = (counts[e.tag], e.tag in pending)
        else:
            counts, pending = _owned(task, shard, marked)
            found = {e.tag: (counts[e.tag], e.tag in pending) for e in marked}
    except Exception as exc:  # noqa: BLE001 - the elements meet the same error and report it
        log.warning("could not re-check completed shards (%s): launching them again", exc)
        found = {e.tag: (-1, True) for e in marked}
    again = [
        e
        for e in marked
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


def _owned(task: Any, shard: Shard, marked: list[Marked]) -> tuple[Counter, set[str]]:
    """One pass over the task's items: how many each marked shard owns, which have pending ones."""
    key_of = task.item_key
    count = sum(1 for _ in task.generate_tasks()) if shard.needs_count else None
    if marked[0].shard is None or shard.strategy is Strategy.hard:  # one element, own selection
        select = shard.selector(key_of, count)
        tag = marked[0].tag
        which = lambda pos, item: tag if select is None or select(pos, item) else None  # noqa: E731
    else:
        which = owner_tags(shard, key_of, count, {e.shard: e.tag for e in marked})
    unfinished = unfinished_filter(task)
    counts: Counter = Counter()
    pending: set[str] = set()
    items = enumerate(task.generate_tasks())
    while block := list(islice(items, BLOCK)):
        mine = [(t, item) for pos, item in block if (t := which(pos, item)) is not None]
        counts.update(t for t, _ in mine)
        if unfinished is not None and mine:
            left = {id(it) for it in unfinished([it for _, it in mine])}
            pending.update(t for t, it in mine if id(it) in left)
    return counts, pending


def owner_tags(
    shard: Shard, key_of: Callable[[dict], str], count: int | None, tags: dict[int | None, str]
) -> Callable[[int, dict], str | None]:
    """``(position, item) -> tag`` of the shard in ``tags`` that owns it, else None:
    :meth:`Shard.selector` for every shard at once."""
    num, sub_num, sub_idx = shard.num, shard.sub_num, shard.sub_idx
    if shard.strategy is Strategy.modulo or num == 1:
        top = lambda pos, item: pos % num  # noqa: E731
    elif shard.strategy is Strategy.hash:
        top = lambda pos, item: stable_hash(key_of(item)) % num  # noqa: E731
    else:
        assert count is not None, "contiguous sharding needs the item count"
        starts = [i * count // num for i in range(num)]
        top = lambda pos, item: bisect.bisect_right(starts, pos) - 1  # noqa: E731
    seen: Counter = Counter()  # items per shard so far, for sub-shards

    def which(pos: int, item: dict) -> str | None:
        i = top(pos, item)
        if sub_num > 1:
            seen[i] += 1
            if (seen[i] - 1) % sub_num not in sub_idx:
                return None
        return tags.get(i)

    return which
