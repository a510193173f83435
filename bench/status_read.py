"""ST1: ``python -m launcher status DIR`` on a sweep of 1000 shards, a cold process.

The sweep is synthetic but has the files real shards leave (the launchers'
``.launcher/sweep.json``, a ``report.json`` per ended shard, a live
``progress.json`` heartbeat per running shard, a ``failures.jsonl`` per failed
shard), on local disk with a warm page cache, so what is timed is Python
start-up, reading ~1000 small JSON files, inferring states and drawing the
grid. The floor is an empty interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from bench.fixtures import cache_root
from bench.harness import Sample

REPO = Path(__file__).resolve().parent.parent
STATES = ("done",) * 90 + ("running",) * 5 + ("failed",) * 4 + ("pending",)  # shares of 100


def write_sweep(
    directory: str, shards: int, states: tuple[str, ...] = STATES, heartbeat_s: float = 5.0
) -> str:
    """A local sweep of ``shards`` shards whose state cycles through ``states``; the live
    heartbeats name this process, so they read as running while it lives (and for
    ``STALE_BEATS`` x ``heartbeat_s`` seconds; then stale)."""
    elements = []
    now = time.time()
    for i in range(shards):
        state = states[i % len(states)]
        job_dir = os.path.join(directory, str(i))
        elements.append(
            {"shard": i, "job_num": i, "tag": f"shard-{i}-of-{shards}", "job_dir": str(i),
             "state_dir": None, "launched": True, "log": f"logs/local-0_{i}"}
        )  # fmt: skip
        if state == "pending":
            continue
        os.makedirs(job_dir)
        counts = {"total": 100, "skipped": 0, "processed": 100, "failed": 0, "planned": True}
        beat = {
            "state": "running",
            **counts,
            "processed": 40,
            "items_per_s": 20.0,
            "elapsed_s": 2.0,
        }
        beat.update(eta_s=3.0, heartbeat_s=heartbeat_s, updated_unix=now, updated_at="-")
        beat.update(host=socket.gethostname(), pid=os.getpid(), shard={"idx": i, "num": shards})
        _write(os.path.join(job_dir, "progress.json"), beat)
        if state == "running":
            continue
        ended = datetime.fromtimestamp(now - 3600 * (shards - i) / shards, timezone.utc)
        report = {**beat, **counts, "state": "completed", "exit_code": 0, "elapsed_s": 60.0}
        report["ended_at"] = ended.isoformat(timespec="seconds")  # over the last hour, in order
        if state == "failed":
            report.update(processed=97, failed=3, exit_code=1)
            lines = [
                {"item": f"{i:06d}-{k}", "error": "ValueError", "message": "bad", "traceback": ""}
                for k in range(3)
            ]
            with open(os.path.join(job_dir, "failures.jsonl"), "w", encoding="utf-8") as f:
                f.writelines(json.dumps(x) + "\n" for x in lines)
        _write(os.path.join(job_dir, "report.json"), report)
    record = {
        "format": 1, "backend": "local", "sweep_dir": directory, "created_at": "-", "argv": [],
        "arrays": [{"index": 0, "overrides": [], "key": "bench", "shard_num": shards,
                    "heartbeat_s": heartbeat_s, "elements": elements}],
    }  # fmt: skip
    _write(os.path.join(directory, ".launcher", "sweep.json"), record)
    return directory


def _write(path: str, data: object) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def fresh_sweep(shards: int) -> str:
    """Rebuilt for every bench run: its running shards' heartbeats name this process."""
    directory = os.path.join(cache_root(), f"status-sweep-{shards}")
    shutil.rmtree(directory, ignore_errors=True)
    return write_sweep(directory, shards)


def command(argv: list[str]) -> Callable[[], Callable[[], Sample]]:
    """A contender's ``prepare``: each repetition times one cold process running ``argv``."""

    def prepare() -> Callable[[], Sample]:
        def runner() -> Sample:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            t0 = time.perf_counter()
            proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if proc.returncode not in (0, 1, 3):  # 1: some shards failed, 3: some still run
                raise RuntimeError(f"{argv} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
            return Sample(seconds, {"exit_code": proc.returncode})

        return runner

    return prepare


def status_argv(directory: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "launcher", "status", directory, *extra]
