"""A task for the object-storage tests: each text input, upper-cased, to ``<key>.up``."""

from __future__ import annotations

import time

import launcher.io
from launcher import InputMode, OutputMode, Task, atomic_write


class Upper(Task):
    """Reads its input and writes it upper-cased, through URLs or paths alike; ``slow_s``
    makes each item take that long (time for a test to kill the job mid-run)."""

    def __init__(
        self,
        input_dir: str,
        output_dir: str,
        input: InputMode,
        output: OutputMode,
        slow_s: float = 0.0,
    ) -> None:
        super().__init__(input_dir, output_dir, input, output)
        self.slow_s = slow_s

    def process(self, key: str, input: str, output: str) -> None:
        with launcher.io.open(input) as f:
            data = f.read()
        time.sleep(self.slow_s)
        with atomic_write(output) as f:
            f.write(data.upper())
