"""The work every contender does: item generators, per-item functions and our Task subclasses.

They live in one importable module (not ``__main__``) so that spawn/forkserver
workers can unpickle our tasks and every peer can pickle the same functions.
Every contender gets the same item dicts and calls the same function on them;
only the machinery around the call differs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from launcher import AppendExtension, Task

SPIN_STEPS = 2000  # ~0.2 ms of pure-Python work per W2 item on the reference machine
SLEEP_S = 0.002  # W3: an item that waits on I/O
DONE_EVERY = 10  # W4: item x is pending when x % DONE_EVERY == 0, i.e. 90% already done

Item = dict[str, Any]


# -- per-item work (returns nothing: results are not what is measured) ------------------------


def square(x: int) -> None:
    x * x  # noqa: B018 - the work is the point


def spin(x: int) -> None:
    s = x
    for i in range(SPIN_STEPS):
        s = (s * 31 + i) % 1000003


def nap(x: int) -> None:
    time.sleep(SLEEP_S)


def doze(x: int, seconds: float) -> None:
    time.sleep(seconds)


def square_file(key: str, x: int, output: str) -> None:
    x * x  # noqa: B018 - outputs are never written, so every repetition resumes the same state


def square_unless_exists(key: str, x: int, output: str) -> None:
    """A peer's in-worker finish check: one ``stat`` per item, then the work."""
    if not os.path.exists(output):
        x * x  # noqa: B018


WORK = {
    "square": square,
    "spin": spin,
    "nap": nap,
    "square_file": square_file,
    "square_unless_exists": square_unless_exists,
}


# Single-argument versions for Pool, ProcessPoolExecutor and the serial loop: the work inline,
# the cheapest function a user would write for ``imap_unordered`` (no peer pays an extra call).


def one_square(item: Item) -> None:
    item["x"] * item["x"]  # noqa: B018


def one_spin(item: Item) -> None:
    spin(item["x"])


def one_nap(item: Item) -> None:
    time.sleep(SLEEP_S)


def one_doze(item: Item) -> None:
    time.sleep(item["seconds"])


def one_square_unless_exists(item: Item) -> None:
    if not os.path.exists(item["output"]):
        item["x"] * item["x"]  # noqa: B018


ONE = {
    "square": one_square,
    "spin": one_spin,
    "nap": one_nap,
    "square_file": one_square,
    "square_unless_exists": one_square_unless_exists,
}


# -- items ------------------------------------------------------------------------------------


def numbers(n: int) -> Iterator[Item]:
    """W1/W2/W3/W4a/M1 items: ``{"x": i}``."""
    return ({"x": i} for i in range(n))


def slow_items(n: int, seconds: float) -> Iterator[Item]:
    """W5 items: ``{"x": i, "seconds": s}``, each a ``seconds`` wait (a page, a model call)."""
    return ({"x": i, "seconds": seconds} for i in range(n))


def done_set(n: int) -> frozenset[int]:
    """W4a: the 90% of ``numbers(n)`` that a previous run already processed."""
    return frozenset(x for x in range(n) if x % DONE_EVERY)


def file_items(root: str, n: int, per_dir: int = 1000) -> Iterator[Item]:
    """W4b items: ``{"key", "x", "output"}`` with outputs under ``root/DDD/XXXXXXX.out``."""
    for x in range(n):
        key = f"{x // per_dir:04d}/{x:07d}"
        yield {"key": key, "x": x, "output": f"{root}/{key}.out"}


# -- our tasks (launcher.Task subclasses, pickled to each worker) -----------------------------


class Squares(Task):
    """W1/M1: ``x*x`` per item."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def generate_tasks(self) -> Iterator[Item]:
        return numbers(self.n)

    def process(self, x: int) -> None:
        x * x  # noqa: B018


class Spins(Squares):
    """W2: ~0.2 ms of pure Python per item."""

    def process(self, x: int) -> None:
        spin(x)


class Naps(Squares):
    """W3: a 2 ms sleep per item."""

    def process(self, x: int) -> None:
        time.sleep(SLEEP_S)


class Dozes(Task):
    """W5: a few slow items (each one ``seconds`` wait)."""

    def __init__(self, n: int, seconds: float) -> None:
        super().__init__()
        self.n = n
        self.seconds = seconds

    def generate_tasks(self) -> Iterator[Item]:
        return slow_items(self.n, self.seconds)

    def process(self, x: int, seconds: float) -> None:
        doze(x, seconds)


class ResumeInMemory(Squares):
    """W4a: the done-set lives in memory; ``is_executed`` is a set lookup."""

    def __init__(self, n: int, done: frozenset[int]) -> None:
        super().__init__(n)
        self.done = done

    def is_executed(self, x: int) -> bool:
        return x in self.done


class SquaresByChunk(Squares):
    """W1-opt: ``x*x`` per item, a whole chunk per call (the ``Task.process_chunk`` opt-in)."""

    def process_chunk(self, items: list[Item]) -> None:
        for item in items:
            item["x"] * item["x"]  # noqa: B018


class ResumeByBlock(ResumeInMemory):
    """W4a-opt: the same done-set, asked a block at a time (the ``Task.unfinished`` opt-in),
    kept in the launching process (``planning_only``): no call per item, and workers are
    not sent the set."""

    planning_only = ("done",)

    def unfinished(self, items: list[Item]) -> list[Item]:
        done = self.done
        return [it for it in items if it["x"] not in done]


class DoneByRule(Squares):
    """P2: item ``x`` is done unless ``x % DONE_EVERY == 0``; no set held (10M items)."""

    def is_executed(self, x: int) -> bool:
        return x % DONE_EVERY != 0


class DoneByRuleBlock(DoneByRule):
    """P2 with the block-level done check, filtered in C."""

    def unfinished(self, items: list[Item]) -> list[Item]:
        return [it for it in items if it["x"] % DONE_EVERY == 0]


class ResumeOnDisk(Task):
    """W4b: done means the output file exists; the launcher's output mode answers in bulk."""

    def __init__(self, output_dir: str, n: int) -> None:
        super().__init__(output_dir=output_dir, output=AppendExtension(".out"))
        self.n = n

    def generate_tasks(self) -> Iterator[Item]:
        return file_items(self.output_dir, self.n)

    def process(self, key: str, x: int, output: str) -> None:
        x * x  # noqa: B018


class OneItem(Task):
    """S1: the smallest real job (one item, no files), for ``launch.py task=bench_one``."""

    def generate_tasks(self) -> Iterator[Item]:
        return numbers(1)

    def process(self, x: int) -> None:
        x * x  # noqa: B018


class PlanOnly(Task):
    """P1: inputs and outputs by mode; only planned here (the time to the first pending item)."""

    def process(self, key: str, input: str, output: str) -> None:
        pass
