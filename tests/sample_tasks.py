"""Tasks used by the tests: real work on real files, with faults on demand."""

from __future__ import annotations

import os
import signal
import threading
import time

from launcher import AppendExtension, Task, atomic_write


class Squares(Task):
    """Item ``i`` writes ``i*i`` to ``<output_dir>/<key>.txt`` (and logs its key to a ledger).

    Faults: ``fail_mod`` makes every item with ``i % fail_mod == 0`` raise while
    ``fault_file`` exists; ``kill_key`` SIGKILLs its own worker; ``hang_key`` sleeps forever;
    ``unpicklable`` holds a lock, which no spawn or fork-server worker can receive;
    ``hold_file``: each item waits while that file exists (a test holds the shards running).
    """

    def __init__(
        self,
        output_dir: str,
        n: int = 100,
        fail_mod: int = 0,
        fault_file: str | None = None,
        kill_key: str | None = None,
        hang_key: str | None = None,
        slow_s: float = 0.0,
        ledger: str | None = None,
        unpicklable: bool = False,
        hold_file: str | None = None,
    ) -> None:
        super().__init__(output_dir=output_dir, output=AppendExtension(".txt"))
        self.n = n
        self.fail_mod = fail_mod
        self.fault_file = fault_file
        self.kill_key = kill_key
        self.hang_key = hang_key
        self.slow_s = slow_s
        self.ledger = ledger
        self.lock = threading.Lock() if unpicklable else None
        self.hold_file = hold_file

    def generate_tasks(self):
        for i in range(self.n):
            key = f"{i:06d}"
            yield {"key": key, "x": i, "output": os.path.join(self.output_dir, key + ".txt")}

    def process(self, key: str, x: int, output: str) -> None:
        if (
            self.fail_mod
            and x % self.fail_mod == 0
            and self.fault_file
            and os.path.exists(self.fault_file)
        ):
            raise ValueError(f"bad item {x}")
        if key == self.kill_key:
            os.kill(os.getpid(), signal.SIGKILL)
        if key == self.hang_key:
            time.sleep(3600)
        while self.hold_file and os.path.exists(self.hold_file):
            time.sleep(0.05)
        with atomic_write(output, "w") as f:
            f.write(f"{x}")
            if self.slow_s:
                f.flush()
                time.sleep(self.slow_s)
            f.write(f" {x * x}\n")
        if self.ledger:
            fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{key}\n".encode())
            finally:
                os.close(fd)


class SlowTeardown(Squares):
    """:class:`Squares` whose workers each write ``teardown-<pid>`` into ``output_dir``
    ``delay_s`` after their teardown begins."""

    def __init__(self, *args, delay_s: float = 0.5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s

    def teardown_worker(self) -> None:
        time.sleep(self.delay_s)
        with open(os.path.join(self.output_dir, f"teardown-{os.getpid()}"), "w") as f:
            f.write("done\n")
