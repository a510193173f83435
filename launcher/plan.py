"""Plan: stream the task's items through the shard filter, the retry filter and the
finish check, in the launching process, so only pending items reach workers.

Nothing here lists the whole item stream: memory stays flat for any number of
items, and workers start on the first pending items while planning goes on.
Items are read and filtered in blocks (list comprehensions, counters updated
once per block): per item, planning costs little more than generating the item.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from launcher.errors import InputError
from launcher.shard import Shard
from launcher.stats import Stats
from launcher.task import Item, Task, Unfinished

FIRST_BLOCK = 16  # small first blocks: the first pending item reaches a worker early
MAX_BLOCK = 1024


class Plan:
    """The pending items of one job, pulled lazily in chunks by a backbone."""

    def __init__(
        self,
        task: Task,
        shard: Shard,
        stats: Stats,
        only_keys: frozenset[str] | None = None,
        limit: int | None = None,
    ) -> None:
        self.task = task
        self.shard = shard
        self.stats = stats
        self.only_keys = only_keys
        self.limit = limit
        self.generated = 0
        self._blocks = self._stream()
        self._head: list[Item] = []
        self.error: Exception | None = None

    def _stream(self) -> Iterator[list[Item]]:
        """Blocks of pending items; stops at the first listing or finish-check error."""
        task, stats = self.task, self.stats
        key_of = task.item_key
        count = sum(1 for _ in task.generate_tasks()) if self.shard.needs_count else None
        select = self.shard.selector(key_of, count)
        done = task.finish_check()
        only = self.only_keys
        source = iter(task.generate_tasks())
        size = FIRST_BLOCK
        while self.error is None and self.limit != 0:
            block: list[Item] = []
            try:
                block.extend(islice(source, size))  # keeps what was listed before an error
            except Exception as exc:  # noqa: BLE001 - re-raised by the app after the run
                self.error = exc
            base = self.generated
            self.generated += len(block)
            if not block:
                break
            size = min(size * 2, MAX_BLOCK)
            if select is not None:
                block = [it for pos, it in enumerate(block, base) if select(pos, it)]
            if only is not None:
                block = [it for it in block if key_of(it) in only]
            pending, owned = (block, len(block)) if done is None else self._unfinished(block, done)
            if self.limit is not None and len(pending) > self.limit:
                pending = pending[: self.limit]
                last = pending[-1]
                owned = next(i for i, it in enumerate(block) if it is last) + 1
            stats.total += owned
            stats.skipped += owned - len(pending)
            if self.limit is not None:
                self.limit -= len(pending)
            if pending:
                yield pending
        stats.planned = True

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
                except Exception as exc:  # noqa: BLE001 - re-raised by the app after the run
                    self.error = exc
                    return pending, i
            return pending, len(block)

    def take(self, n: int) -> list[Item]:
        """Up to ``n`` more pending items; an empty list once the plan is exhausted.

        If listing fails midway, the items listed so far are still returned and
        the error is kept in :attr:`error`, so the work they represent goes on.
        """
        items, self._head = self._head, []
        try:
            while len(items) < n:
                block = next(self._blocks, None)
                if block is None:
                    break
                items.extend(block)
        except Exception as exc:  # noqa: BLE001 - re-raised by the app after the run
            self.error = exc
            self._blocks = iter(())
        if len(items) > n:
            items, self._head = items[:n], items[n:]
        return items

    def has_pending(self) -> bool:
        """Plan up to the first pending item (so a job with nothing to do starts no workers).

        Also where an empty input is caught: a task that yields no item at all
        is almost always a wrong path or pattern.
        """
        if not self._head:
            first = self.take(1)  # take() keeps the rest of the block in the head
            self._head = first + self._head
        if not self._head and self.generated == 0 and self.stats.planned:
            raise InputError(
                f"No items found: the task listed nothing from {self.task.describe_inputs()}."
            )
        return bool(self._head)
