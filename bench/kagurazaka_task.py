"""The bench workloads as one kagurazaka task (imported only when kagurazaka is installed).

kagurazaka builds a task from command-line flags, so the workload travels as
``--workload NAME --items N [--out-root DIR]``: none of them is a prefix of
its backbone's ``--num_process``/``--chunksize``, which argparse would
otherwise match by abbreviation. Its ``is_executed`` runs in the workers,
per item: that is kagurazaka's design, and what W4 measures for it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

from kagurazaka import KagurazakaTask

from bench.workloads import DONE_EVERY, WORK, Item, file_items, numbers

# workload -> (work function, how the task decides an item is done)
KINDS = {
    "square": ("square", None),
    "spin": ("spin", None),
    "nap": ("nap", None),
    "resume-set": ("square", "set"),
    "resume-files": ("square_file", "exists"),
}


class BenchTask(KagurazakaTask):
    def __init__(self, args: list[str]) -> None:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--workload", required=True, choices=sorted(KINDS))
        parser.add_argument("--items", type=int, required=True)
        parser.add_argument("--out-root", default=None)
        opts = parser.parse_args(args)
        work, self.check = KINDS[opts.workload]
        self.process = WORK[work]  # an instance attribute: no extra call per item
        self.n = opts.items
        self.out_root = opts.out_root
        if self.check == "set":
            self.done = frozenset(x for x in range(self.n) if x % DONE_EVERY)

    def generate_tasks(self) -> Iterator[Item]:
        if self.check == "exists":
            return file_items(self.out_root, self.n)
        return numbers(self.n)

    def is_executed(self, **item: Any) -> bool:
        if self.check == "set":
            return item["x"] in self.done
        if self.check == "exists":
            return os.path.exists(item["output"])
        return False
