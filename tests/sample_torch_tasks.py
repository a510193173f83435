"""TorchTasks for the tests: a real (tiny) torch model over real files."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import torch

from launcher import TorchTask, atomic_write


class SumModel(TorchTask):
    """Each ``.txt`` input holds 4 numbers; the model (a fixed Linear layer) sums them.

    This class is the ``each`` process option (inference + postprocess_each);
    :class:`SumModelBatch` (inference + postprocess) and :class:`SumModelProcess`
    (the whole step) are the other two, and :func:`sum_model` picks one by
    ``mode``. A file that is not 4 numbers fails to load; a row holding 13
    makes inference raise; a row summing to 99 makes postprocess raise.
    ``thread_log`` gets ``load:THREAD`` and ``write:THREAD`` lines, the threads
    that loaded and wrote each item, kept in memory until teardown
    (``write_outputs=false``: a postprocess that only notes its thread, i.e.
    costs next to nothing). With a ``thread_log`` each item also loads ``frozen``
    (whether the process loading it had objects frozen out of its garbage
    collections) and ``had_model`` (whether that process's copy of the task had
    a model), logged per item as ``frozen:`` and ``loader-had-model:`` lines;
    ``model-threads:`` and ``teardown-threads:`` are torch's threads in
    ``load_model`` and at teardown, ``teardown-frozen:`` whether objects were
    still frozen then.
    """

    def __init__(
        self,
        *args: Any,
        slow_s: float = 0.0,
        load_spin_s: float = 0.0,
        thread_log: str | None = None,
        write_outputs: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.slow_s = slow_s
        self.load_spin_s = load_spin_s
        self.thread_log = thread_log
        self.write_outputs = write_outputs
        self.threads: list[str] = []
        self._frozen: bool | None = None

    def load_model(self, device: torch.device) -> None:
        self.model = torch.nn.Linear(4, 1, bias=False).to(device)
        torch.nn.init.ones_(self.model.weight)
        self.device_seen = str(device)
        self.threads.append(f"model-threads:{torch.get_num_threads()}")

    def load_data(self, key: str, input: str, output: str) -> dict[str, Any]:
        self.threads.append(f"load:{threading.current_thread().name}")
        spin_until = time.thread_time() + self.load_spin_s
        while time.thread_time() < spin_until:  # a loader that keeps a CPU busy
            pass
        with open(input, encoding="utf-8") as f:
            values = [float(v) for v in f.read().split()]
        if len(values) != 4:
            raise ValueError(f"{key}: expected 4 numbers, got {len(values)}")
        if self.thread_log:
            return {
                "x": torch.tensor(values),
                "frozen": self.frozen(),
                "had_model": hasattr(self, "model"),
            }
        return {"x": torch.tensor(values)}

    def frozen(self) -> bool:
        """Whether this process had objects frozen when it loaded its first item: asked once
        (``gc.get_freeze_count`` walks every frozen object, ~15 ms here, which would make
        the loaders look CPU-bound)."""
        if self._frozen is None:
            self._frozen = gc.get_freeze_count() > 0
        return self._frozen

    def inference(self, device: torch.device, batch_size: int, x: torch.Tensor, **_: Any):
        if (x == 13).any():
            raise RuntimeError("the model cannot take 13")
        time.sleep(self.slow_s)
        return self.model(x.to(device))[:, 0]

    def write(self, output: str, value: torch.Tensor) -> None:
        if float(value) == 99:
            raise OSError("disk refused 99")
        time.sleep(self.slow_s / 4)
        if self.write_outputs:
            with atomic_write(output, "w") as f:
                f.write(f"{float(value):g}\n")
        self.threads.append(f"write:{threading.current_thread().name}")

    def teardown(self) -> None:
        self.threads.append(f"teardown-frozen:{gc.get_freeze_count() > 0}")
        self.threads.append(f"teardown-threads:{torch.get_num_threads()}")
        if self.thread_log:
            with open(self.thread_log, "w", encoding="utf-8") as f:
                f.write("".join(f"{name}\n" for name in self.threads))

    def postprocess_each(
        self,
        batch_idx: int,
        batch_size: int,
        output: str,
        result,
        frozen: Any = None,
        had_model: Any = None,
        **_: Any,
    ):
        if frozen is not None:
            self.threads.append(f"frozen:{frozen}")
            self.threads.append(f"loader-had-model:{had_model}")
        self.write(output, result)


class SumModelBatch(SumModel):
    def postprocess(self, batch_size: int, results, **batch: Any) -> None:
        for output, value in zip(batch["output"], results, strict=True):
            self.write(output, value)


class SumModelProcess(SumModel):
    def process(self, device: torch.device, batch: dict[str, Any]) -> None:
        for output, value in zip(batch["output"], self.inference(device, 0, **batch), strict=True):
            self.write(output, value)


class SizedSum(SumModel):
    """:class:`SumModel` declaring each item's size: its file's number modulo ``sizes``
    (so item ``0007.txt`` has size ``7 % sizes``); each model step logs ``batch:`` and the
    sizes of its items, in order."""

    def __init__(self, *args: Any, sizes: int = 5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sizes = sizes

    def item_size(self, key: str, **_: Any) -> float:
        return int(key.split(".")[0]) % self.sizes

    def inference(self, device: torch.device, batch_size: int, x: torch.Tensor, **batch: Any):
        sizes = ((x[:, 0] - 100).long() % self.sizes).tolist()
        self.threads.append("batch:" + ",".join(map(str, sizes)))
        return super().inference(device, batch_size, x, **batch)


MODES = {"each": SumModel, "batch": SumModelBatch, "process": SumModelProcess, "sized": SizedSum}


def sum_model(mode: str = "each", **kwargs: Any) -> SumModel:
    """``task=sum_model``: ``task.mode`` picks the process option, which is the class."""
    return MODES[mode](**kwargs)


class HostileSum(SumModel):
    """:class:`SumModel` whose ``load_data`` misbehaves on the inputs that ask for it.

    A file holding one word instead of numbers: ``kill`` SIGKILLs the process loading it,
    ``segv`` segfaults it, ``exit`` calls ``os._exit(3)``, ``hang`` sleeps for an hour,
    ``odd`` loads a tensor of 5 numbers (its batch-mates have 4), ``nox`` loads no ``x`` at
    all (its sum comes from ``y``), ``stall`` loads fine but makes inference sleep for an
    hour on any batch holding it. ``results`` shifts what inference returns: ``drop`` one
    result fewer than items, ``extra`` one more.
    """

    def __init__(self, *args: Any, results: str = "ok", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.results = results

    def load_data(self, key: str, input: str, output: str) -> dict[str, Any]:
        import ctypes
        import os
        import signal

        with open(input, encoding="utf-8") as f:
            word = f.read().strip()
        if word == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif word == "segv":
            ctypes.string_at(0)
        elif word == "exit":
            os._exit(3)
        elif word == "hang":
            time.sleep(3600)
        elif word == "odd":
            return {"x": torch.tensor([100.0, 1, 2, 3, 0])}
        elif word == "nox":
            return {"y": torch.tensor([100.0, 1, 2, 3])}
        elif word == "stall":
            return {"x": torch.tensor([-1.0, 1, 2, 3])}
        return super().load_data(key, input, output)

    def inference(self, device: torch.device, batch_size: int, **batch: Any):
        x = batch["x"] if "x" in batch else batch["y"]
        if isinstance(x, torch.Tensor) and (x[:, 0] == -1).any():
            time.sleep(3600)
        out = self.model(x[:, :4].to(device))[:, 0]
        if self.results == "drop":
            return out[:-1]
        if self.results == "extra":
            return torch.cat([out, out[:1]])
        return out


def hostile_sum(**kwargs: Any) -> HostileSum:
    return HostileSum(**kwargs)


class DatasetSum(TorchTask):
    """Items from :meth:`get_dataset` (``n`` rows); writes ``<output_dir>/<index>.sum``
    and has no output mode. ``check=loaded`` adds a done check that asks for ``x``, a field
    of the loaded sample."""

    def __init__(self, output_dir: str, n: int = 8) -> None:
        super().__init__(output_dir=output_dir)
        self.n = n

    def get_dataset(self) -> list[dict[str, Any]]:
        return [{"x": torch.tensor([float(i), 1, 2, 3])} for i in range(self.n)]

    def load_model(self, device: torch.device) -> None:
        self.device_seen = str(device)

    def inference(self, device: torch.device, batch_size: int, x: torch.Tensor, **_: Any):
        return x.sum(dim=1)

    def postprocess_each(self, batch_idx: int, batch_size: int, index: int, result, **_: Any):
        with atomic_write(f"{self.output_dir}/{index}.sum", "w") as f:
            f.write(f"{float(result):g}\n")


class DatasetSumLoadedCheck(DatasetSum):
    def is_each_executed(self, key: str, index: int, x: Any) -> bool:
        return False


def dataset_sum(check: str = "none", **kwargs: Any) -> DatasetSum:
    return (DatasetSumLoadedCheck if check == "loaded" else DatasetSum)(**kwargs)
