"""TorchTasks for the tests: a real (tiny) torch model over real files."""

from __future__ import annotations

import time
from typing import Any

import torch

from launcher import TorchTask, atomic_write


class SumModel(TorchTask):
    """Each ``.txt`` input holds 4 numbers; the model (a fixed Linear layer) sums them.

    ``mode`` picks the process option: ``each`` (inference + postprocess_each),
    ``batch`` (inference + postprocess) or ``process`` (the whole step).
    A file that is not 4 numbers fails to load; a row holding 13 makes
    inference raise; a row summing to 99 makes postprocess raise.
    """

    def __init__(self, *args: Any, mode: str = "each", slow_s: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = mode
        self.slow_s = slow_s

    def load_model(self, device: torch.device) -> None:
        self.model = torch.nn.Linear(4, 1, bias=False).to(device)
        torch.nn.init.ones_(self.model.weight)
        self.device_seen = str(device)

    def load_data(self, key: str, input: str, output: str) -> dict[str, Any]:
        with open(input, encoding="utf-8") as f:
            values = [float(v) for v in f.read().split()]
        if len(values) != 4:
            raise ValueError(f"{key}: expected 4 numbers, got {len(values)}")
        return {"x": torch.tensor(values)}

    def inference(self, device: torch.device, batch_size: int, x: torch.Tensor, **_: Any):
        if (x == 13).any():
            raise RuntimeError("the model cannot take 13")
        time.sleep(self.slow_s)
        return self.model(x.to(device))[:, 0]

    def write(self, output: str, value: torch.Tensor) -> None:
        if float(value) == 99:
            raise OSError("disk refused 99")
        time.sleep(self.slow_s / 4)
        with atomic_write(output, "w") as f:
            f.write(f"{float(value):g}\n")

    def postprocess_each(self, batch_idx: int, batch_size: int, output: str, result, **_: Any):
        self.write(output, result)

    def postprocess(self, batch_size: int, results, **batch: Any) -> None:
        if self.mode != "batch":
            return super().postprocess(batch_size, results, **batch)
        for output, value in zip(batch["output"], results, strict=True):
            self.write(output, value)

    def process(self, device: torch.device, batch: dict[str, Any]) -> None:
        if self.mode != "process":
            return super().process(device, batch)
        for output, value in zip(batch["output"], self.inference(device, 0, **batch), strict=True):
            self.write(output, value)
