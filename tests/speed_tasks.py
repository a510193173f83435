"""Tasks for the speed opt-ins: a chunk-level process hook and a block-level done check."""

from __future__ import annotations

from itertools import compress
from operator import itemgetter, not_

from launcher.task import ChunkFailures, Item
from tests.sample_tasks import Squares


class ChunkSquares(Squares):
    """:class:`Squares` through ``process_chunk``: an item's ``ValueError`` is its own failure;
    ``raise_key`` makes the whole call raise when it reaches that item."""

    def __init__(
        self, *args, raise_key: str | None = None, bad_answer: bool = False, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.raise_key = raise_key
        self.bad_answer = bad_answer  # answer with a list: a wrong answer

    def process_chunk(self, items: list[Item]) -> ChunkFailures:
        if self.bad_answer:
            return ["not", "a", "mapping"]
        failed = {}
        for pos, item in enumerate(items):
            if item["key"] == self.raise_key:
                raise RuntimeError(f"the chunk broke at {item['key']}")
            try:
                self.process(**item)
            except ValueError as exc:
                failed[pos] = exc
        return failed


class DoneSetSquares(Squares):
    """:class:`Squares` whose done items (all but every ``pending_every``-th) live in a set,
    answered a block at a time; ``is_executed`` must never be called, and the set, named
    planning-only, must never reach a worker."""

    planning_only = ("done",)

    def __init__(self, *args, pending_every: int = 10, copies: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.done = {f"{i:06d}" for i in range(self.n) if i % pending_every}
        self.copies = copies  # answer with copies of the items: a wrong answer

    def unfinished(self, items: list[Item]) -> list[Item]:
        keys = map(itemgetter("key"), items)
        pending = list(compress(items, map(not_, map(self.done.__contains__, keys))))
        return [dict(it) for it in pending] if self.copies else pending

    def is_executed(self, **item) -> bool:
        raise AssertionError("the planner called is_executed although unfinished is overridden")

    def process(self, **item) -> None:
        if "done" in vars(self):
            raise AssertionError("a worker was sent the planning-only done set")
        super().process(**item)
