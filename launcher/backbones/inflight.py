"""A file naming the items the job's own process is loading or running its model on.

On the torch backbone the model runs in the job's process, and with
``num_workers=0`` so does ``load_data``: a segfault or ``os._exit`` there ends
the job before any report is written. This file is rewritten before each such
step and removed when the run ends, so after a death it is still there, naming
the items in flight; the next run of the shard (and ``status``) reads it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def left_behind(path: str) -> dict[str, Any] | None:
    """What a run that died left in flight, if it left a record."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if any(record.get("stages", {}).values()) else None


def take_left_behind(path: str) -> dict[str, Any] | None:
    """Name, once, the items a run of this shard that died had in flight; return its record."""
    left = left_behind(path)
    if left is None:
        return None
    named = [f"{stage}: {', '.join(keys)}" for stage, keys in left["stages"].items() if keys]
    log.warning(
        "the last run of this shard (pid %s) ended without a report while these items were "
        "in flight: %s. If it died on one of them, backbone.num_workers>=1 makes a crashing "
        "load_data cost only its item.",
        left.get("pid"),
        "; ".join(named),
    )
    os.unlink(path)
    return left


def crashed_here(earlier: Mapping[str, str], left: dict[str, Any] | None) -> set[str]:
    """Items that took down a process of this shard: loading in the last run's own
    process when it died, or recorded as ``WorkerDied`` by the last run. A run without
    DataLoader workers loads them alone in a worker, so they cannot take it down again."""
    keys = set(left["stages"].get("loading", ())) if left else set()
    for key, line in earlier.items():  # the failures kept for retries, as lines by item
        with contextlib.suppress(ValueError, AttributeError):
            if json.loads(line).get("error") == "WorkerDied":
                keys.add(key)
    return keys


class InFlight:
    """The record, a memory-mapped file: a rewrite is a copy into the page cache, which
    outlives the process (a file write per batch cost tens of microseconds)."""

    def __init__(self, path: str, size: int = 1 << 16) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path = path
        self.file = open(path, "w+b")  # noqa: SIM115 - open until close()
        self.map = self._map(size)
        self.end = 0
        self.head = {"pid": os.getpid(), "started": time.time()}
        self.stages: dict[str, list[str]] = {}
        self.lock = threading.Lock()  # the model's thread and a loader thread both write

    def _map(self, size: int) -> mmap.mmap:
        """Map ``size`` bytes of blanks: the record is valid JSON for any reader."""
        self.file.seek(0)
        self.file.write(b" " * size)
        self.file.flush()
        return mmap.mmap(self.file.fileno(), size)

    def set(self, stage: str, keys: list[str]) -> None:
        """``keys`` are now in ``stage`` (``loading`` or ``model``); [] when it is done."""
        with self.lock:
            if self.stages.get(stage) == keys:
                return
            self.stages[stage] = keys
            data = json.dumps({**self.head, "stages": self.stages}).encode()
            if len(data) > len(self.map):
                self.map.close()
                self.map = self._map(2 * len(data))
            self.map[: len(data)] = data
            if self.end > len(data):
                self.map[len(data) : self.end] = b" " * (self.end - len(data))
            self.end = len(data)

    def close(self) -> None:
        """The run ended in this process: nothing is in flight any more."""
        self.map.close()
        self.file.close()
        with contextlib.suppress(FileNotFoundError):  # its job dir was moved away
            os.unlink(self.path)
