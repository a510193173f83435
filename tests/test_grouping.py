"""Batches of similar size from a bounded window of a real plan (launcher.backbones.grouping)."""

from __future__ import annotations

from types import SimpleNamespace

from launcher.backbones.grouping import SizeGrouped, size_grouped
from launcher.driving import Driven
from launcher.plan import Plan
from launcher.shard import Shard
from launcher.stats import Stats
from launcher.task import Task, TorchTask


class Words(TorchTask):
    """``n`` items whose size is ``(7 * i) % 10``; item 5's size cannot be told."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def generate_tasks(self):
        return ({"key": str(i), "i": i} for i in range(self.n))

    def is_each_executed(self, **item):
        return False

    def item_size(self, i: int, **_) -> float:
        if i == 5:
            raise OSError("no such file")
        return (7 * i) % 10


def plan(task: Task) -> Plan:
    whole = SimpleNamespace(num=1, idx=0, strategy="modulo", sub_num=1, sub_idx=0)
    return Plan(Driven.of(task), Shard.from_config(whole), Stats())


def test_batches_hold_similar_sizes_within_a_window_and_every_item_once() -> None:
    task = Words(25)
    grouped = SizeGrouped(plan(task), lambda it: task.item_size(**it), 3, window_batches=2)
    batches = []
    while batch := grouped.take(3):
        batches.append([it["i"] for it in batch])
    taken = [i for batch in batches for i in batch]
    assert sorted(taken) == list(range(25))  # every item, once
    for start in range(0, 25, 6):  # windows of 2 batches of 3: the plan's order between them
        window = taken[start : start + 6]
        assert sorted(window) == list(range(start, min(start + 6, 25)))
        sizes = [0 if i == 5 else (7 * i) % 10 for i in window]
        assert sizes == sorted(sizes, reverse=True)  # an unknown size sorts last, still runs


def test_a_task_that_declares_no_size_keeps_the_plans_batches() -> None:
    class Plain(Words):
        item_size = TorchTask.item_size

    source = plan(Plain(4))
    assert size_grouped(Driven.of(Plain(4)), source, 3) is source
    assert isinstance(size_grouped(Driven.of(Words(4)), source, 3), SizeGrouped)
    assert size_grouped(Driven.of(Words(4)), source, 1) is source  # a batch of one has no mates
