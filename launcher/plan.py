"""Plan: stream the task's items through the shard filter, the retry filter and the
finish check, in the launching process, so only pending items reach workers.

Nothing here lists the whole item stream: memory stays flat for any number of
items, and workers start on the first pending items while planning goes on.
Items are read and filtered in blocks (list comprehensions, counters updated
once per block): per item, planning costs little more than generating the item.
A :class:`Census` takes a backbone's place for a sweep: a plan over several
shards' items run to its end, counting what each owns and whether one is pending.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from itertools import compress, groupby, islice, repeat
from operator import itemgetter
from typing import NoReturn

from launcher.driving import Driven, Unfinished
from launcher.errors import InputError
from launcher.records import clip, printable
from launcher.run_state import StopPlanning
from launcher.shard import Shard
from launcher.stats import Stats
from launcher.task import Item, listing_context

log = logging.getLogger(__name__)

FIRST_BLOCK = 16  # small first blocks: the first pending item reaches a worker early
MAX_BLOCK = 1024
CENSUS_TAKE = 4096  # items per take() while a census runs its plan to the end
MAX_GROUPS = 64  # folders whose keys / outputs are remembered for the duplicate check
MAX_SEEN = 1 << 20  # ... and at most this many of them in all
MAX_RUNS = 16  # folders in one block that the block-at-once duplicate check takes

_FOLDER = itemgetter(0, 1)  # (folder, "/") of rpartition: a folder, told apart from the root
Fit = tuple[list[int], list[tuple[str, int, int]]]  # a block's hashes; (folder, start, end) runs

OnSkip = Callable[[str, str, str, str], None]  # (item, error, message, traceback)


class _Seen:
    """Values (keys, output paths) met so far, grouped by folder, to catch a second item
    with the same one.

    Listings and generators give a folder's items together, so only the most
    recent folders are remembered: memory stays bounded by the largest folder,
    like the finish check's directory listings. A folder past ``MAX_SEEN``
    values is no longer checked (said once in the log).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.groups: OrderedDict[str, dict[int, str]] = OrderedDict()
        self.size = 0
        self.head: str | None = None
        self.group: dict[int, str] = {}
        self.full = False

    def first(self, value: str, owner: str) -> str | None:
        """Remember ``value`` for ``owner``; the earlier owner when it was met before."""
        head = value[: value.rfind("/") + 1]
        if head != self.head:
            self._enter(head)
        h = hash(value)
        earlier = self.group.get(h)
        if earlier is not None:
            return earlier
        if self.size < MAX_SEEN:
            self.group[h] = owner
            self.size += 1
        elif not self.full:
            self.full = True
            log.info("the duplicate %s check stopped after %d in one folder", self.what, MAX_SEEN)
        return None

    def fits(self, values: list[str]) -> Fit | None:
        """Whether a block's values can be remembered at once, with no Python call per
        value: None when :meth:`first` must decide value by value (a value met before or
        twice in the block, a folder met twice in it, the size limit). Changes nothing."""
        if self.size + len(values) >= MAX_SEEN:
            return None
        hashes = list(map(hash, values))
        if len(set(hashes)) != len(hashes):
            return None
        spans = self._runs(values)
        if spans is None:
            return None
        for head, a, b in spans:
            group = self.groups.get(head)
            if group and not group.keys().isdisjoint(hashes[a:b]):
                return None
        return hashes, spans

    @staticmethod
    def _runs(values: list[str]) -> list[tuple[str, int, int]] | None:
        """The block's folders as ``(folder, start, end)`` runs; None when one comes back
        after another (or there are many)."""
        first = values[0]
        head = first[: first.rfind("/") + 1]
        if all(map(str.startswith, values, repeat(head))) and sum(
            map(str.count, values, repeat("/"))
        ) == head.count("/") * len(values):
            return [(head, 0, len(values))]  # one folder: every value is head + a name
        heads = list(map(_FOLDER, map(str.rpartition, values, repeat("/"))))
        runs = [len(list(run)) for _, run in groupby(heads)]
        if len(runs) > MAX_RUNS or len(runs) != len(set(heads)):
            return None
        spans = []
        start = 0
        for length in runs:
            first = values[start]
            spans.append((first[: first.rfind("/") + 1], start, start + length))
            start += length
        return spans

    def take(self, fit: Fit, owners: list[str]) -> None:
        """Remember what :meth:`fits` accepted, each value with its owner."""
        hashes, spans = fit
        for head, a, b in spans:
            if head != self.head:
                self._enter(head)
            self.group.update(zip(hashes[a:b], owners[a:b], strict=True))
            self.size += b - a

    def _enter(self, head: str) -> None:
        self.head = head
        group = self.groups.get(head)
        if group is None:
            group = self.groups[head] = {}
            while len(self.groups) > MAX_GROUPS:
                _, old = self.groups.popitem(last=False)
                self.size -= len(old)
        else:
            self.groups.move_to_end(head)
        self.group = group


class _Checks:
    """What the planner checks per listed item: a dict; and, unless the task's listing
    guarantees it (a folder listing mapped by a built-in output mode), a key of its own
    and an output path of its own inside ``task.output_dir``."""

    def __init__(self, driven: Driven) -> None:
        self.driven = driven
        self.task = task = driven.task
        self.keys_distinct, self.outputs_distinct = driven.distinct_by_construction()
        root = task.output_dir
        self.root = root.rstrip("/") + "/" if root else None
        self.keys = _Seen("key")
        self.outputs = _Seen("output")

    def block(self, block: list[Item]) -> None:
        if self.keys_distinct and self.outputs_distinct:
            if set(map(type, block)) <= {dict} or all(map(isinstance, block, repeat(dict))):
                return
            self._not_a_dict(block)
        try:  # dict.get also checks that each item is a dict
            keys = list(map(dict.get, block, repeat("key")))
            outputs = list(map(dict.get, block, repeat("output")))
        except TypeError:
            self._not_a_dict(block)
        if not self.at_once(block, keys, outputs):
            for it in block:
                self.item(it)

    def _not_a_dict(self, block: list[Item]) -> NoReturn:
        it = next(it for it in block if not isinstance(it, dict))
        raise InputError(
            f"{self.driven.describe_inputs()} gave a {type(it).__name__} "
            f"({clip(repr(it), 200)}): each item must be a dict, the keyword "
            "arguments of process()."
        )

    def at_once(self, block: list[Item], keys: list, outputs: list) -> bool:
        """The checks of :meth:`item` for a block, given its items' ``key`` and ``output``
        fields, in C (maps over the block, set operations); False, having changed
        nothing, when the block has anything :meth:`item` must look at item by item
        (a dict subclass, a field of another type): then it does, as before."""
        n = len(block)
        if keys.count(None) == n and outputs.count(None) == n:
            return True  # nothing to check
        if not block or set(map(type, block)) != {dict}:
            return False
        key_types = set() if keys.count(None) == n else set(map(type, keys))
        output_types = set() if outputs.count(None) == n else set(map(type, outputs))
        check_keys = not self.keys_distinct and bool(key_types)
        check_outputs = bool(output_types)
        if (check_keys and key_types != {str}) or (check_outputs and output_types != {str}):
            return False
        root = self.root
        if check_outputs and root is not None:
            inside = all(map(str.startswith, outputs, repeat(root)))
            if not inside or any(map(str.__contains__, outputs, repeat("/.."))):
                return False
        dedupe_outputs = check_outputs and not self.outputs_distinct
        if dedupe_outputs and (key_types != {str} or self.driven.can.item_key):
            return False  # the outputs' owners would take a call per item
        key_fit = self.keys.fits(keys) if check_keys else None
        output_fit = self.outputs.fits(outputs) if dedupe_outputs else None
        if (check_keys and key_fit is None) or (dedupe_outputs and output_fit is None):
            return False
        if key_fit is not None:
            self.keys.take(key_fit, keys)
        if output_fit is not None:
            self.outputs.take(output_fit, keys)
        return True

    def item(self, it: Item) -> None:
        key = it.get("key")
        if not self.keys_distinct and isinstance(key, str) and self.keys.first(key, key):
            raise InputError(
                f"{self.driven.describe_inputs()} gave the key {printable(key)!r} twice: a key "
                "names one item in the records, retries and hash sharding, so no two items "
                "may share one."
            )
        output = it.get("output")
        if not isinstance(output, str):
            return
        if self.root is not None and not self._inside(output):
            raise InputError(
                f"item {printable(self.task.item_key(it))!r}: its output {printable(output)!r} "
                f"is outside task.output_dir={self.task.output_dir!r}; the launcher never "
                "writes outside the output folder (a key that is an absolute path or climbs "
                "out with '..'?)."
            )
        if not self.outputs_distinct:
            owner = self.task.item_key(it)
            earlier = self.outputs.first(output, owner)
            if earlier is not None and earlier != owner:
                raise InputError(
                    f"items {printable(earlier)!r} and {printable(owner)!r} both map to the "
                    f"output {printable(output)!r}: one would overwrite the other. Give them "
                    "distinct output names (e.g. keep the input suffix in the output name)."
                )

    def _inside(self, path: str) -> bool:
        root = self.root
        if path.startswith(root) and "/.." not in path[len(root) - 1 :]:
            return True
        return os.path.abspath(path).startswith(os.path.abspath(root) + "/")


class Plan:
    """The pending items of one job, pulled lazily in chunks by a backbone."""

    def __init__(
        self,
        driven: Driven,
        shard: Shard,
        stats: Stats,
        only_keys: frozenset[str] | None = None,
        limit: int | None = None,
        on_skip: OnSkip | None = None,
        interruptible: Callable[[], AbstractContextManager] = contextlib.nullcontext,
        on_done: Callable[[list[str]], None] | None = None,
        on_pending: Callable[[list[Item]], None] | None = None,
        census: Census | None = None,
        unlisted: Sequence[str] = (),
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.driven = driven
        self.census = census  # counts the items of the shards it names, instead of one job's
        self.unlisted = unlisted  # folders never listed: the launcher's state dir
        self.on_error = on_error  # told what ended listing early; None: take() raises it
        self.on_done = on_done  # told the keys of the items the finish check found done
        self.on_pending = on_pending  # told each block of pending items, in order
        self.shard = shard
        self.stats = stats
        self.only_keys = only_keys
        self.limit = limit
        self.on_skip = on_skip
        self.interruptible = interruptible
        self.generated = 0
        self.left = 0  # items outside only_keys that are not done: run.retry_failed leaves them
        self.stopped = False  # a stop signal ended planning
        self._blocks = self._stream()
        self._head: list[Item] = []
        self._failed = False  # listing or a finish check raised: nothing more is planned
        self._unlisted: list[tuple[str, OSError]] = []

    def _stream(self) -> Iterator[list[Item]]:
        """Blocks of pending items; stops at the first listing or finish-check error, or
        when a stop signal arrives while the user's listing code runs."""
        try:
            yield from self._blocks_of_pending()
        except StopPlanning:
            self.stopped = True

    def _blocks_of_pending(self) -> Iterator[list[Item]]:
        stats = self.stats
        key_of = self.driven.task.item_key
        count = None
        if self.shard.needs_count:
            with self.interruptible(), listing_context(self.unlisted, self._note_unlisted):
                count = sum(1 for _ in self._listing())
            self._unlisted.clear()  # recorded by the listing that follows
        census = self.census
        if census is None:
            select = self.shard.selector(key_of, count)
        else:
            owner_of = self.shard.owners(key_of, count, census.groups)
        done = self.driven.unfinished_filter()
        only = self.only_keys
        checks = _Checks(self.driven)
        with listing_context(self.unlisted, self._note_unlisted):
            source = iter(self._listing())
        size = FIRST_BLOCK
        while not self._failed and self.limit != 0:
            block: list[Item] = []
            try:
                with self.interruptible(), listing_context(self.unlisted, self._note_unlisted):
                    block.extend(islice(source, size))  # keeps what was listed before an error
            except Exception as exc:  # noqa: BLE001 - handed to on_error
                self._fail(exc)
            self._record_unlisted()
            try:
                checks.block(block)
            except InputError as exc:
                self._fail(exc)
                break
            base = self.generated
            self.generated += len(block)
            if not block:
                break
            size = min(size * 2, MAX_BLOCK)
            if census is not None:
                owners = list(map(owner_of, range(base, base + len(block)), block))
                block = list(compress(block, [o is not None for o in owners]))
                owners = [o for o in owners if o is not None]
            elif select is not None:
                block = [it for pos, it in enumerate(block, base) if select(pos, it)]
            if only is not None:
                block = self._retried(block, key_of, only, done)
            if done is None:
                pending, owned = block, len(block)
            else:
                with self.interruptible():
                    pending, owned = self._unfinished(block, done)
            pending, owned = self._within_limit(block, pending, owned)
            if census is not None:
                census.count(block[:owned], owners[:owned], pending)
            if self.on_done is not None and len(pending) < owned:
                waiting = set(map(key_of, pending))
                self.on_done([k for k in map(key_of, block[:owned]) if k not in waiting])
            stats.total += owned
            stats.skipped += owned - len(pending)
            if self.limit is not None:
                self.limit -= len(pending)
            if pending:
                if self.on_pending is not None:
                    self.on_pending(pending)
                yield pending
        self._record_unlisted()
        stats.planned = True

    def _listing(self) -> Iterable[Item]:
        """The task's items; folders the listing cannot read are kept for the records."""
        return self.driven.listing(self.unlisted, self._note_unlisted)

    def _note_unlisted(self, rel: str, exc: OSError) -> None:
        """A folder the listing could not read: kept for the records."""
        self._unlisted.append((rel, exc))

    def _retried(
        self, block: list[Item], key_of: Callable[[Item], str], only: frozenset[str], done
    ) -> list[Item]:
        """``run.retry_failed``: the block's items that failed last time. The shard's other
        items still count, so the report holds the shard's totals (a sweep's add up): as
        skipped when done (or when the task has no finish check: they did not fail), as
        left when the finish check says they are not done."""
        retried = [it for it in block if key_of(it) in only]
        others = [it for it in block if key_of(it) not in only]
        if done is None:
            not_done, owned = [], len(others)
        else:
            with self.interruptible():
                not_done, owned = self._unfinished(others, done)
        self.stats.total += owned - len(not_done)
        self.stats.skipped += owned - len(not_done)
        self.left += len(not_done)
        return retried

    def _within_limit(
        self, block: list[Item], pending: list[Item], owned: int
    ) -> tuple[list[Item], int]:
        """``run.limit``: at most that many pending items; the block's items up to the last
        one kept are the ones planned (counted in the total)."""
        if self.limit is None or len(pending) <= self.limit:
            return pending, owned
        pending = pending[: self.limit]
        last = pending[-1]
        at = next((i for i, it in enumerate(block) if it is last), None)
        if at is None:
            raise InputError(
                f"{type(self.driven.task).__name__}.unfinished() returned items that are not "
                "among those it was given: return a sub-list of the same dicts."
            )
        return pending, at + 1

    def _record_unlisted(self) -> None:
        """Folders the listing could not read: one failure each, and the listing goes on."""
        for rel, exc in self._unlisted:
            self.stats.total += 1
            message = f"could not list this folder ({exc.strerror or exc}); its items were skipped"
            if self.on_skip is not None:
                self.on_skip(rel or ".", "ListingError", message, "")
            else:
                log.warning("%s: %s", printable(rel), message)
        self._unlisted.clear()

    def _unfinished(self, block: list[Item], unfinished: Unfinished) -> tuple[list[Item], int]:
        """The block's items that are not done, and how many were checked (all of them,
        unless the finish check raised: then those before the item it raised on)."""
        try:
            return unfinished(block), len(block)
        except Exception:  # noqa: BLE001 - find the item, keep what precedes it
            pending = []
            for i, it in enumerate(block):
                try:
                    pending += unfinished([it])
                except Exception as exc:  # noqa: BLE001 - handed to on_error
                    self._fail(exc)
                    return pending, i
            return pending, len(block)

    def take(self, n: int) -> list[Item]:
        """Up to ``n`` more pending items; an empty list once the plan is exhausted.

        If listing fails midway, the items listed so far are still returned and
        the error goes to ``on_error``, so the work they represent goes on.
        """
        items, self._head = self._head, []
        try:
            while len(items) < n:
                block = next(self._blocks, None)
                if block is None:
                    break
                items.extend(block)
        except Exception as exc:  # noqa: BLE001 - handed to on_error
            self._blocks = iter(())
            self._fail(exc)
        if len(items) > n:
            items, self._head = items[:n], items[n:]
        return items

    def _fail(self, exc: Exception) -> None:
        """Listing or a finish check raised: plan nothing more, and hand the error to its
        owner (or raise it, when no one takes it)."""
        self._failed = True
        if self.on_error is None:
            raise exc
        self.on_error(exc)

    def exhausted(self) -> bool:
        """Whether :meth:`take` has nothing more to give: listing ended and all was taken."""
        return not self._head and (self.stats.planned or self.stopped or self._failed)

    def has_pending(self) -> bool:
        """Plan up to the first pending item (so a job with nothing to do starts no workers).

        Also where an empty input is caught: a task that yields no item at all
        is almost always a wrong path or pattern.
        """
        if not self._head:
            first = self.take(1)  # take() keeps the rest of the block in the head
            self._head = first + self._head
        if not self._head and self.generated == 0 and self.stats.planned and not self._failed:
            raise InputError(
                f"No items found: the task listed nothing from {self.driven.describe_inputs()}."
            )
        return bool(self._head)


class Census:
    """A counting sink in place of a backbone: a plan over several shards' items at once
    tells it, block by block, which shard owns each item and which are pending; it keeps,
    per shard, how many items it owns and whether one of them is pending (what a sweep
    compares with the shards' completion markers)."""

    def __init__(self, groups: Mapping[int, Hashable]) -> None:
        self.groups = groups  # a shard index -> the name it is counted under
        self.counts: Counter = Counter()
        self.pending: set[Hashable] = set()

    @classmethod
    def of(
        cls, driven: Driven, shard: Shard, groups: Mapping[int, Hashable], state_dir: str | None
    ) -> Census:
        """The plan of the shards in ``groups`` run to its end into a census, listing the
        items as their jobs do (never those in their ``state_dir``)."""
        census = cls(groups)
        unlisted = (state_dir,) if state_dir else ()
        plan = Plan(driven, shard, Stats(), census=census, unlisted=unlisted)
        while plan.take(CENSUS_TAKE):  # a listing error raises here
            pass
        return census

    def count(self, owned: list[Item], owners: list[Hashable], pending: list[Item]) -> None:
        """``owned`` items (``owners[i]`` owns ``owned[i]``), ``pending`` among them."""
        self.counts.update(owners)
        if pending:
            left = set(map(id, pending))
            self.pending.update(o for it, o in zip(owned, owners, strict=True) if id(it) in left)
