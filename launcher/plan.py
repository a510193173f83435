"""Plan: stream the task's items through the shard filter, the retry filter and the
finish check, in the launching process, so only pending items reach workers.

Nothing here lists the whole item stream: memory stays flat for any number of
items, and workers start on the first pending items while planning goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from launcher.errors import InputError
from launcher.shard import Shard
from launcher.stats import Stats
from launcher.task import Item, Task


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
        self._pending = self._stream()
        self._head: list[Item] = []
        self.error: Exception | None = None

    def _stream(self) -> Iterator[Item]:
        task, stats = self.task, self.stats
        key_of = task.item_key
        count = sum(1 for _ in task.generate_tasks()) if self.shard.needs_count else None
        select = self.shard.selector(key_of, count)
        done = task.finish_check()
        only = self.only_keys
        limit = self.limit
        pos = -1
        for pos, item in enumerate(task.generate_tasks()):  # noqa: B007 - pos is read after
            if select is not None and not select(pos, item):
                continue
            if only is not None and key_of(item) not in only:
                continue
            stats.total += 1
            if done is not None and done(item):
                stats.skipped += 1
                continue
            if limit is not None:
                if limit <= 0:
                    stats.total -= 1
                    break
                limit -= 1
            yield item
        self.generated = pos + 1
        stats.planned = True

    def take(self, n: int) -> list[Item]:
        """Up to ``n`` more pending items; an empty list once the plan is exhausted.

        If listing fails midway, the items listed so far are still returned and
        the error is kept in :attr:`error`, so the work they represent goes on.
        """
        items, self._head = self._head, []
        try:
            items.extend(islice(self._pending, max(n - len(items), 0)))
        except Exception as exc:  # noqa: BLE001 - re-raised by the app after the run
            self.error = exc
            self._pending = iter(())
        return items

    def has_pending(self) -> bool:
        """Plan up to the first pending item (so a job with nothing to do starts no workers).

        Also where an empty input is caught: a task that yields no item at all
        is almost always a wrong path or pattern.
        """
        if not self._head:
            self._head = self.take(1)
        if not self._head and self.generated == 0 and self.stats.planned:
            raise InputError(
                f"No items found: the task listed nothing from {self.task.describe_inputs()}."
            )
        return bool(self._head)
