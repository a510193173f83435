"""Tasks for the object-storage tests: each text input, upper-cased, to ``<key>.up``."""

from __future__ import annotations

import time
from typing import Any

import launcher.io
from launcher import InputMode, OutputMode, Task, TorchTask, atomic_write


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


class UpperTorch(TorchTask):
    """:class:`Upper` as a TorchTask: DataLoader workers read the inputs, the job's process
    writes the outputs (no model: the batch's texts upper-cased)."""

    def load_model(self, device: Any) -> None:
        self.model = str.upper

    def load_data(self, key: str, input: str, output: str) -> dict[str, Any]:
        with launcher.io.open(input) as f:
            return {"text": f.read()}

    def inference(self, device: Any, batch_size: int, text: list[bytes], **_: Any) -> list[bytes]:
        return [t.upper() for t in text]

    def postprocess_each(
        self, batch_idx: int, batch_size: int, output: str, result: bytes, **_: Any
    ) -> None:
        with atomic_write(output) as f:
            f.write(result)
