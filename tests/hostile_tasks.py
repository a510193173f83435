"""Tasks that misbehave the way careless user code does, one fault per run (``fault=``)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from launcher import Task, atomic_write


class Hostile(Task):
    """``n`` items ``{"key", "x", "output"}`` writing ``x`` to ``<output_dir>/<key>.txt``.

    ``fault`` picks the misbehaviour; ``at`` is the item it hits (by ``x``).
    ``ledger`` gets one line ``key pid`` per processed item, ``begun`` one per item begun;
    item ``at`` waits while the file ``gate`` exists.
    """

    def __init__(
        self,
        output_dir: str,
        n: int = 8,
        fault: str = "none",
        at: int = 3,
        sleep_s: float = 0.0,
        ledger: str | None = None,
        pidfile: str | None = None,
        begun: str | None = None,
        gate: str | None = None,
    ) -> None:
        super().__init__(output_dir=output_dir)
        self.n = n
        self.fault = fault
        self.at = at
        self.sleep_s = sleep_s
        self.ledger = ledger
        self.pidfile = pidfile
        self.begun = begun
        self.gate = gate

    def generate_tasks(self) -> Iterator[Any]:
        fault = self.fault
        if fault == "slow_listing":
            time.sleep(120)
        if fault == "listing_raises_first":
            raise ValueError("the listing broke before its first item")
        for x in range(self.n):
            key = f"{x:04d}"
            item = {"key": key, "x": x, "output": os.path.join(self.output_dir, key + ".txt")}
            if x == self.at:
                if fault == "dup_key":
                    item["key"] = "0000"
                elif fault == "collide":
                    item["output"] = os.path.join(self.output_dir, "0000.txt")
                elif fault == "outside":
                    item["output"] = os.path.join(self.output_dir, "..", "escaped.txt")
                elif fault == "non_dict":
                    item = [key, x]
                elif fault == "none_item":
                    item = None
                elif fault == "unpicklable_item":
                    item["fn"] = lambda: None
                elif fault == "listing_raises":
                    raise RuntimeError("the listing broke midway")
            yield item

    def setup(self) -> None:
        if self.fault == "setup_raises":
            raise RuntimeError("setup could not reach the database")
        if self.fault == "slow_setup":
            time.sleep(120)
        if self.fault == "thread":
            threading.Thread(target=time.sleep, args=(120,), name="leftover").start()

    def teardown(self) -> None:
        if self.fault == "teardown_raises":
            raise RuntimeError("teardown could not close the database")

    def process(self, key: str, x: int, output: str, **extra: Any) -> None:
        if self.fault == "all_fail_but_at" and x != self.at:
            raise ValueError(f"item {key} is broken")
        fault = self.fault if x == self.at else "none"
        if self.begun:
            with open(self.begun, "a") as f:
                f.write(f"{key}\n")
        if fault == "exit0":
            os._exit(0)
        if fault == "huge_message":
            raise ValueError("x" * 20_000_000)
        if fault == "keyboard_interrupt":
            raise KeyboardInterrupt
        if fault == "sys_exit":
            raise SystemExit(3)
        if fault == "bad_str":
            raise Unprintable()
        if fault == "fork_child":
            if os.fork() == 0:  # a long-lived child holding every fd its worker had
                with open(self.pidfile, "a") as f:
                    f.write(f"{os.getpid()}\n")
                time.sleep(120)
                os._exit(0)
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "dies_once":  # a crash that does not come back (memory pressure, say)
            died = os.path.join(os.path.dirname(output), f".{key}.died")
            if not os.path.exists(died):
                open(died, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
        if fault == "worker_thread":
            threading.Thread(target=time.sleep, args=(120,), name="leftover").start()
        while x == self.at and self.gate and os.path.exists(self.gate):
            time.sleep(0.05)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        with atomic_write(output, "w") as f:
            f.write(f"{x}\n")
        if self.ledger:
            fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{key} {os.getpid()}\n".encode())
            finally:
                os.close(fd)


class BadUnfinished(Hostile):
    """Even items are done, as ``unfinished`` answers in the way ``answer`` names:
    ``list`` (right), ``generator``, ``copies``, ``reversed``, ``duplicates``, ``foreign``,
    ``none``. Its ``handle`` (a lock: no worker could receive it) is named planning-only
    with a bare string, the missing comma of ``("handle",)``."""

    planning_only = "handle"  # ("handle"), the comma forgotten: one bare string

    def __init__(self, *args: Any, answer: str = "list", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answer = answer
        self.handle = threading.Lock()

    def unfinished(self, items: list) -> Any:
        pending = [it for it in items if it["x"] % 2]
        answer = self.answer
        if answer == "generator":
            return (it for it in pending)
        if answer == "copies":
            return [dict(it) for it in pending]
        if answer == "reversed":
            return pending[::-1]
        if answer == "duplicates":
            return pending + pending[:1]
        if answer == "foreign":
            return [*pending, {"key": "zzzz", "x": 99, "output": "elsewhere"}]
        if answer == "none":
            return None
        return pending


class Unprintable(Exception):
    """An exception whose message cannot even be made."""

    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class NoSuper(Task):
    """Written the ordinary way: ``__init__`` never calls ``super().__init__()``."""

    def __init__(self, output_dir: str, n: int = 8, **ignored: Any) -> None:
        self.out = output_dir
        self.n = n

    def generate_tasks(self) -> Iterator[dict]:
        return ({"key": f"{x:04d}", "x": x} for x in range(self.n))

    def process(self, key: str, x: int) -> None:
        with atomic_write(os.path.join(self.out, key + ".txt"), "w") as f:
            f.write(f"{x}\n")
