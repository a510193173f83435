"""``hydra/launcher=local``: every shard in its own process here, at most P at once.

Each element runs ``python -m launcher.launchers.element --local SPEC SHARD``
in a session of its own, with stdout/stderr in ``<sweep>/logs/``; a signal
to the launcher (Ctrl-C, SIGTERM) is passed on once to the elements running,
which stop gracefully, and nothing new starts. With ``wait=false`` the same
queue runs in a detached process and the command returns at once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from launcher.launchers import arrays as arr
from launcher.launchers.base import Launched, ShardLauncher, counts
from launcher.launchers.config import LocalConfig
from launcher.layout import ERR, OUT, SweepDir, element_log
from launcher.machine import available_cpus
from launcher.records import dir_identity, now_iso

log = logging.getLogger("launcher")

POLL_S = 0.05


def default_parallelism(cfg: Any) -> int:
    """As many shards at once as fit the CPUs here, given each one's backbone workers."""
    workers = cfg.backbone.get("num_workers") or available_cpus()
    return max(1, available_cpus() // max(1, int(workers)))


@dataclass
class LocalLaunch(Launched):
    """The queue of elements to run here, and how many at once."""

    queue: list[dict[str, Any]] = field(default_factory=list)
    parallelism: int = 1
    progress_s: float | None = None  # a totals line this often while waiting (run.log_interval_s)


class LocalLauncher(ShardLauncher):
    backend = "local"
    options_class = LocalConfig
    wait_default: ClassVar[bool] = True

    def _queue(self, arrays: list[arr.Array], directory: str) -> list[dict[str, Any]]:
        entries = []
        for a in arrays:
            for e in a.todo:
                name = f"local-{a.index}_{'job' if e.shard is None else ''}"
                name += str(e.job_num if e.shard is None else e.shard)
                e.extra["log"] = element_log(name)
                entries.append(
                    {"array": a.index, "shard": e.shard, "spec": a.spec_path, "log": e.extra["log"]}
                )
        return entries

    def parallelism(self, arrays: list[arr.Array]) -> int:
        return self.opts.array_parallelism or default_parallelism(arrays[0].config)

    def start(self, arrays: list[arr.Array], directory: str) -> LocalLaunch:
        queue = self._queue(arrays, directory)
        p = self.parallelism(arrays)
        todo, skipped = counts(arrays)
        how = "running" if self.waits else "started in the background"
        done = f", {skipped} already done" if skipped else ""
        headline = f"Local: {todo} shard(s) in {len(arrays)} array(s) {how}, {p} at once{done}."
        launched = LocalLaunch(
            {"parallelism": p},
            headline,
            queue=queue,
            parallelism=p,
            progress_s=arrays[0].config.run.log_interval_s,
        )
        if self.waits:
            return launched
        with open(SweepDir(directory).local_queue, "w", encoding="utf-8") as f:
            json.dump({"parallelism": p, "cwd": os.getcwd(), "queue": queue}, f)
        os.makedirs(SweepDir(directory).logs, exist_ok=True)
        with open(SweepDir(directory).scheduler_log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "launcher.launchers.local", directory],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        launched.record["scheduler"] = {"pid": proc.pid, "host": os.uname().nodename}
        return launched

    def wait(self, launched: Launched, directory: str) -> dict[tuple[int, int | None], int]:
        assert isinstance(launched, LocalLaunch)
        codes, launched.stopped_by = run_queue(
            directory, launched.queue, launched.parallelism, launched.progress_s
        )
        return codes

    def describe_backend(self, arrays: list[arr.Array], directory: str) -> list[str]:
        return [f"  local processes, {self.parallelism(arrays)} at once"]


def run_queue(
    directory: str,
    queue: list[dict[str, Any]],
    parallelism: int,
    progress_s: float | None = None,
) -> tuple[dict[tuple[int, int | None], int], int | None]:
    """Run the elements, ``parallelism`` at once; exit code by (array, shard), and the
    signal that stopped the sweep, if one did. Every ``progress_s`` seconds, log the
    sweep's totals (as ``status`` shows them).

    Elements a stop signal kept from starting get an exit line too (128 + the signal,
    ``started: false``): ``status`` shows them as not started, and ``--watch`` ends."""
    from launcher.status.render import progress_line

    next_progress = time.monotonic() + (progress_s or 0)
    os.makedirs(SweepDir(directory).logs, exist_ok=True)
    todo = deque(queue)
    running: dict[subprocess.Popen, dict[str, Any]] = {}
    codes: dict[tuple[int, int | None], int] = {}
    stop: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        stop.append(signum)
        for proc in running:
            proc.send_signal(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    exits = open(SweepDir(directory).exits, "a", encoding="utf-8")  # noqa: SIM115
    identity = dir_identity(directory)
    gone = False
    try:
        while todo or running:
            if todo and not gone and dir_identity(directory) != identity:
                gone = True  # the elements not started yet could not find their spec or logs
                print(
                    f"shard-launcher: {sweep_gone_paragraph(directory, len(todo))}", file=sys.stderr
                )
            while todo and not stop and not gone and len(running) < parallelism:
                entry = todo.popleft()
                running[_spawn(directory, entry)] = entry
            for proc in [p for p in running if p.poll() is not None]:
                entry = running.pop(proc)
                codes[(entry["array"], entry["shard"])] = proc.returncode
                line = {"array": entry["array"], "shard": entry["shard"]}
                line.update(exit_code=proc.returncode, ended_at=now_iso())
                exits.write(json.dumps(line) + "\n")
                exits.flush()
            if (stop or gone) and not running:
                break
            if progress_s and time.monotonic() >= next_progress and (todo or running):
                next_progress = time.monotonic() + progress_s
                if line := progress_line(directory):
                    log.info("sweep: %s", line)
            time.sleep(POLL_S)
        for entry in todo if stop and not gone else ():
            line = {"array": entry["array"], "shard": entry["shard"], "exit_code": 128 + stop[0]}
            line.update(started=False, ended_at=now_iso())
            exits.write(json.dumps(line) + "\n")
        exits.flush()
    finally:
        exits.close()
        for s, handler in old.items():
            signal.signal(s, handler)
    for entry in todo:  # never started: stopped by a signal, or the sweep dir went away
        codes[(entry["array"], entry["shard"])] = 128 + stop[0] if stop else 1
    return codes, stop[0] if stop else None


def sweep_gone_paragraph(directory: str, waiting: int) -> str:
    """Why shards that had not started yet never will: their sweep dir went away."""
    return (
        f"the sweep dir {directory} was moved or deleted while its shards ran; the {waiting} "
        "shard(s) not started yet are not started (they would not find their config or logs) "
        "and count as failed. Move a sweep dir only once its shards have ended; to finish, run "
        "the same command again with hydra.sweep.dir=NEW: done items are skipped."
    )


def _spawn(directory: str, entry: dict[str, Any]) -> subprocess.Popen:
    shard = "-" if entry["shard"] is None else str(entry["shard"])
    argv = [sys.executable, "-u", "-m", "launcher.launchers.element", "--local", entry["spec"]]
    log_path = SweepDir(directory).at(entry["log"])
    with open(log_path + OUT, "ab") as out, open(log_path + ERR, "ab") as err:
        return subprocess.Popen(
            [*argv, shard], stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )


def main() -> None:
    """The detached scheduler of a ``wait=false`` local sweep."""
    directory = sys.argv[1]
    with open(SweepDir(directory).local_queue, encoding="utf-8") as f:
        spec = json.load(f)
    os.chdir(spec["cwd"])
    codes, _ = run_queue(directory, spec["queue"], spec["parallelism"])
    failed = sum(1 for c in codes.values() if c)
    print(f"{now_iso()} local sweep ended: {len(codes) - failed} ok, {failed} failed", flush=True)


if __name__ == "__main__":
    main()
