"""A file naming the items the job's own process is loading or running its model on.

On the torch backbone the model runs in the job's process, and with
``num_workers=0`` so does ``load_data``: a segfault or ``os._exit`` there ends
the job before any report is written. This file is rewritten before each such
step and removed when the run ends, so after a death it is still there, naming
the items in flight; the next run of the shard (and ``status``) reads it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

FILE = "inflight-{shard}.json"


def inflight_path(records: Any) -> str:
    """Beside the shard's failures when the task has a state dir, else in the job dir."""
    return os.path.join(records.state_dir or records.job_dir, FILE.format(shard=records.shard_tag))


def left_behind(path: str) -> dict[str, Any] | None:
    """What a run that died left in flight, if it left a record."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if any(record.get("stages", {}).values()) else None


def warn_left_behind(path: str) -> None:
    """Name, once, the items a run of this shard that died had in flight."""
    left = left_behind(path)
    if left is None:
        return
    named = [f"{stage}: {', '.join(keys)}" for stage, keys in left["stages"].items() if keys]
    log.warning(
        "the last run of this shard (pid %s) ended without a report while these items were "
        "in flight: %s. If it died on one of them, backbone.num_workers>=1 makes a crashing "
        "load_data cost only its item.",
        left.get("pid"),
        "; ".join(named),
    )
    os.unlink(path)


class InFlight:
    """The record, kept open: a rewrite is two system calls, no new file per batch."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.head = {"pid": os.getpid(), "started": time.time()}
        self.stages: dict[str, list[str]] = {}
        self.lock = threading.Lock()  # the model's thread and a loader thread both write

    def set(self, stage: str, keys: list[str]) -> None:
        """``keys`` are now in ``stage`` (``loading`` or ``model``); [] when it is done."""
        with self.lock:
            self.stages[stage] = keys
            data = json.dumps({**self.head, "stages": self.stages}).encode()
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)

    def close(self) -> None:
        """The run ended in this process: nothing is in flight any more."""
        os.close(self.fd)
        os.unlink(self.path)
