"""T1: the torch backbone against a hand-written DataLoader loop, same model, same data.

T1a: postprocessing costs nothing, so this measures the backbone's overhead
(planning, the lazy batch sampler, records) against ``for batch in loader:
model(batch)``; ``hand-loop[threads]`` is that loop with torch's threads set as
the backbone sets them on the CPU, to tell that setting from the rest. T1b:
postprocessing a batch costs as much as inferring it (both sleep, as device
work and file writes do, releasing the GIL), so this measures the overlap of
the backbone's postprocess thread pool against a sequential loop.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Sample
from launcher import TorchTask

FEATURES = 256
BATCH = 64


def _model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, FEATURES), torch.nn.ReLU(), torch.nn.Linear(FEATURES, 10)
    ).eval()


def _sample(i: int) -> Any:
    import torch

    return torch.full((FEATURES,), float(i % 97) / 97.0)


class Vectors(TorchTask):
    """``n`` items; each loads a vector, the model classifies it, postprocessing may sleep."""

    def __init__(self, n: int, step_s: float = 0.0) -> None:
        super().__init__()
        self.n = n
        self.step_s = step_s

    def generate_tasks(self):
        return ({"key": str(i), "i": i} for i in range(self.n))

    def load_model(self, device: Any) -> None:
        self.model = _model().to(device)

    def load_data(self, i: int, **_: Any) -> dict[str, Any]:
        return {"x": _sample(i)}

    def inference(self, device: Any, batch_size: int, x: Any, **_: Any) -> Any:
        if self.step_s:
            time.sleep(self.step_s)
        return self.model(x).argmax(1)

    def postprocess(self, batch_size: int, results: Any, **batch: Any) -> None:
        if self.step_s:
            time.sleep(self.step_s)


class _Dataset:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return _sample(i)


def ours(n: int, step_s: float, workers: int) -> Sample:
    from bench.ours import run_job
    from launcher.backbones.torch import TorchBackbone, TorchConfig

    cfg = TorchConfig(device="cpu", batch_size=BATCH, num_workers=workers, postprocess_workers=2)
    result = run_job(Vectors(n, step_s), backbone=TorchBackbone(cfg))
    return Sample(n / result.seconds)


def hand_loop(n: int, step_s: float, workers: int) -> Sample:
    """What a user writes without the launcher: load, infer, postprocess, in turn."""
    import torch
    from torch.utils.data import DataLoader

    t0 = time.perf_counter()
    model = _model()
    loader = DataLoader(_Dataset(n), batch_size=BATCH, num_workers=workers)
    with torch.inference_mode():
        for x in loader:
            if step_s:
                time.sleep(step_s)
            model(x).argmax(1)
            if step_s:
                time.sleep(step_s)
    return Sample(n / (time.perf_counter() - t0))


def hand_loop_sized(n: int, step_s: float, workers: int) -> Sample:
    """The hand loop with torch's threads set as the backbone sets them on the CPU by
    default for this model (the CPUs the loader worker leaves: measured, it needs a CPU to
    keep up with so small a model): the same loop, threads aside."""
    import torch

    from launcher.machine import available_cpus

    before = torch.get_num_threads()
    torch.set_num_threads(min(before, max(1, available_cpus() - workers)))
    try:
        return hand_loop(n, step_s, workers)
    finally:
        torch.set_num_threads(before)
