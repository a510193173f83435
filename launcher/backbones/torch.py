"""The torch backbone: a DataLoader feeding a model on one device, writes overlapped.

The planner's pending items become batches through a batch sampler that pulls
them lazily, so memory stays flat and done items are never loaded. DataLoader
workers run ``load_data`` (a file that fails to load fails alone), the main
thread runs the model under ``inference_mode`` (optionally autocast), and a
bounded thread pool runs postprocessing, so the device works on batch k+1
while batch k is written (neuraxle's queued pipeline idea).
"""

from __future__ import annotations

import enum
import logging
import signal
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

from launcher.backbones.mp import available_cpus
from launcher.backbones.prefetch import Prefetch
from launcher.batching import (
    ItemDataset,
    Loaded,
    batch_size_of,
    collate,
    infer,
    postprocess,
    step_kind,
    to_device,
)
from launcher.errors import ConfigError
from launcher.job import Job
from launcher.plan import Plan
from launcher.task import Item, Task, TorchTask

log = logging.getLogger(__name__)

Amp = enum.Enum("Amp", ["off", "bf16", "fp16"])
INLINE_S = 0.0005  # postprocessing quicker than this per call is not worth a thread handoff
PROBES = 3
REPROBE_EVERY = 256
AMP_DTYPES = {"bf16": lambda torch: torch.bfloat16, "fp16": lambda torch: torch.float16}


@dataclass
class TorchConfig:
    """``backbone.*`` for ``backbone=torch``."""

    name: str = "torch"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = 16
    num_workers: int | None = None  # DataLoader workers; None: CPUs - 1, at most 8
    pin_memory: bool | None = None  # None: when the device is CUDA
    prefetch_factor: int = 2
    persistent_workers: bool = False
    amp: Amp = Amp.off
    postprocess_workers: int = 2  # threads writing results while the model runs

    BOUNDS: ClassVar[dict[str, str]] = {
        "batch_size": ">= 1",
        "num_workers": ">= 0",
        "prefetch_factor": ">= 1",
        "postprocess_workers": ">= 1",
    }


def resolve_device(name: str) -> Any:
    """``auto`` picks CUDA when available, else the CPU; an unavailable CUDA is a config error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"backbone.device={name!r}: expected auto, cpu, cuda or cuda:N."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"backbone.device={name!r} but CUDA is not available on this machine."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"backbone.device={name!r} but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    return device


def _ignore_sigint(worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process coordinates Ctrl-C


class _PlanBatches:
    """A batch sampler whose "indices" are the plan's pending items, pulled on demand."""

    def __init__(self, plan: Plan, batch_size: int, job: Job) -> None:
        self.plan = plan
        self.batch_size = batch_size
        self.job = job

    def __iter__(self):
        while not self.job.stopping:
            items = self.plan.take(self.batch_size)
            if not items:
                return
            yield items


class TorchBackbone:
    def __init__(self, cfg: TorchConfig) -> None:
        self.cfg = cfg
        self.device: Any = None

    def describe(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "name": "torch",
            "device": str(self.device) if self.device is not None else cfg.device,
            "batch_size": cfg.batch_size,
            "num_workers": self._num_workers(),
            "amp": cfg.amp.name if isinstance(cfg.amp, enum.Enum) else cfg.amp,
            "postprocess_workers": cfg.postprocess_workers,
        }

    def _num_workers(self) -> int:
        n = self.cfg.num_workers
        return max(1, min(8, available_cpus() - 1)) if n is None else n

    def run(self, task: Task, plan: Plan, job: Job) -> None:
        if not isinstance(task, TorchTask):
            raise ConfigError(
                f"backbone=torch needs a launcher.TorchTask; {type(task).__name__} is a plain Task "
                "(use backbone=mp or backbone=auto)."
            )
        if job.item_timeout_s:
            log.warning("run.item_timeout_s is not enforced by backbone=torch")
        if not plan.has_pending():
            return  # everything is done already: import and load nothing
        self.device = resolve_device(self.cfg.device)
        log.info("torch backbone on %s", self.device)
        import torch

        loader = self._loader(task, plan, job)
        # workers fork here, on this thread (a fork from a thread can inherit a held lock),
        # and start loading while the model loads
        batches = Prefetch(iter(loader))
        try:
            job.stage(f"loading the model on {self.device}")
            task.load_model(self.device)
            amp = self.cfg.amp.name if isinstance(self.cfg.amp, enum.Enum) else self.cfg.amp
            autocast = (
                torch.autocast(self.device.type, dtype=AMP_DTYPES[amp](torch))
                if amp != "off"
                else nullcontext()
            )
            with torch.inference_mode(), autocast:
                _Pipeline(task, self.device, job, self.cfg.postprocess_workers).run(
                    batches, non_blocking=self.device.type == "cuda"
                )
        finally:
            batches.close()

    def _loader(self, task: TorchTask, plan: Plan, job: Job) -> Any:
        from torch.utils.data import DataLoader

        workers = self._num_workers()
        pin = self.device.type == "cuda" if self.cfg.pin_memory is None else self.cfg.pin_memory
        dataset = ItemDataset(task, task.get_dataset())
        kwargs: dict[str, Any] = {
            "batch_sampler": _PlanBatches(plan, self.cfg.batch_size, job),
            "collate_fn": collate,
            "num_workers": workers,
            "pin_memory": pin,
        }
        if workers:
            kwargs.update(
                prefetch_factor=self.cfg.prefetch_factor,
                persistent_workers=self.cfg.persistent_workers,
                worker_init_fn=_ignore_sigint,
            )
        return task.get_dataloader(dataset, **kwargs) or DataLoader(dataset, **kwargs)


class Placement:
    """Where postprocessing runs: in the model's thread (timed) for the first calls and
    every ``REPROBE_EVERY``-th, and while the lower median of the last three timed calls
    is under ``INLINE_S`` (one slow call is not a trend); in the pool otherwise, since a
    handoff to a pool thread costs more than a call that cheap."""

    def __init__(self) -> None:
        self.calls = 0
        self.inline = False
        self.timings: deque[float] = deque(maxlen=3)

    def here(self) -> bool:
        """Whether the next call runs in this thread (then report its time to :meth:`took`)."""
        self.calls += 1
        return self.inline or self.calls <= PROBES or self.calls % REPROBE_EVERY == 0

    def took(self, seconds: float) -> None:
        self.timings.append(seconds)
        self.inline = sorted(self.timings)[(len(self.timings) - 1) // 2] < INLINE_S


class _Pipeline:
    """Model steps in this thread; postprocessing in a bounded pool, or here while it is
    cheap (:class:`Placement`); records in this thread."""

    def __init__(self, task: TorchTask, device: Any, job: Job, threads: int) -> None:
        self.task = task
        self.device = device
        self.job = job
        self.kind = step_kind(task)
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="postprocess")
        self.max_pending = max(1, threads) * 2
        self.pending: deque[tuple[Future, list[Item], int]] = deque()
        self.placement = Placement()

    def submit(self, *args: Any) -> Future:
        if not self.placement.here():
            return self.pool.submit(postprocess, self.task, *args)
        t0 = time.perf_counter()
        done: Future = Future()
        done.set_result(postprocess(self.task, *args))
        self.placement.took(time.perf_counter() - t0)
        return done

    def run(self, batches: Prefetch, non_blocking: bool) -> None:
        try:
            for loaded in batches:
                wall, cpu = time.perf_counter(), time.thread_time()
                self.step(loaded, non_blocking)
                batches.observe(time.perf_counter() - wall, time.thread_time() - cpu)
                self.collect(block=len(self.pending) >= self.max_pending)
                self.job.tick()
                if self.job.stopping:
                    break
        finally:
            while self.pending:
                self.collect(block=True)
            self.pool.shutdown()

    def fail(self, item: Item, f: tuple[str, str, str]) -> None:
        self.job.failed(self.task.item_key(item), *f)

    def step(self, loaded: Loaded, non_blocking: bool) -> None:
        for item, f in loaded.failed:
            self.fail(item, f)
        if not loaded.items:
            return
        batch = to_device(loaded.batch, self.device, non_blocking)
        groups, failed = infer(self.task, self.device, batch, self.kind)
        for i, f in failed:
            self.fail(loaded.items[i], f)
        whole = len(groups) == 1 and not failed
        for start, results in groups:
            n = batch_size_of(batch) if whole else 1
            items = loaded.items[start : start + n]
            future = self.submit(batch, start, results, self.kind, n)
            self.pending.append((future, items, start))

    def collect(self, block: bool) -> None:
        while self.pending and (block or self.pending[0][0].done()):
            future, items, start = self.pending.popleft()
            block = False
            failed = future.result()
            for pos, f in failed:
                self.fail(items[pos - start], f)
            self.job.done(len(items) - len(failed))
