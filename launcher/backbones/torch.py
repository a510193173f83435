"""The torch backbone: a DataLoader feeding a model on one device, writes overlapped.

The planner's pending items become batches through a batch sampler that pulls
them lazily, so memory stays flat and done items are never loaded. DataLoader
workers run ``load_data`` (a file that fails to load fails alone), the main
thread runs the model under ``inference_mode`` (optionally autocast), and a
bounded thread pool runs postprocessing, so the device works on batch k+1
while batch k is written (neuraxle's queued pipeline idea).

The same promises as mp: a DataLoader worker that dies or hangs costs only
its item (:mod:`launcher.backbones.loading`); ``run.item_timeout_s`` bounds
loading and each model step; a stop signal ends a wait for a batch at once and
gives a step in flight ``run.grace_s``, a deadline; and the items the job's own
process is working on are named in a record that outlives a crash
(:mod:`launcher.backbones.inflight`).
"""

from __future__ import annotations

import enum
import gc
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

from launcher.backbones.grouping import size_grouped
from launcher.backbones.inflight import InFlight, crashed_here, take_left_behind
from launcher.backbones.loading import Loading
from launcher.backbones.prefetch import CLOSE_WAIT_S, Prefetch
from launcher.backbones.threads import ModelThreads
from launcher.batching import (
    ItemDataset,
    ItemTimeout,
    Loaded,
    collate,
    infer,
    postprocess,
    to_device,
)
from launcher.driving import Driven
from launcher.errors import ConfigError
from launcher.machine import available_cpus
from launcher.plan import Plan
from launcher.run_state import RunState
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
    num_workers: int | None = None  # DataLoader workers; None: measured (loading.py)
    pin_memory: bool | None = None  # None: when the device is CUDA
    prefetch_factor: int = 2
    persistent_workers: bool = False
    amp: Amp = Amp.off
    postprocess_workers: int = 2  # threads writing results while the model runs
    cpu_threads: int | None = None  # the model's threads on the CPU; None: measured (threads.py)

    BOUNDS: ClassVar[dict[str, str]] = {
        "batch_size": ">= 1",
        "num_workers": ">= 0",
        "prefetch_factor": ">= 1",
        "postprocess_workers": ">= 1",
        "cpu_threads": ">= 1",
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


class _Heap:
    """The garbage collector over one run. Off while torch's modules import and the model
    loads: each full collection walks a heap growing to millions of objects, and an import
    of torch and transformers triggers several (~0.5 s of an embedding job's start, bench
    T2/T3). Then what is alive is frozen for the run, so that no later collection walks it
    (collecting it instead took two passes of ~0.1 s each), and given back to the collector
    when the run ends. Left alone when the caller turned collection off or froze objects."""

    def __init__(self) -> None:
        self.managed = gc.isenabled() and not gc.get_freeze_count()
        if self.managed:
            gc.disable()

    def settled(self) -> None:
        """The model is loaded: freeze what is alive, and collect again."""
        if self.managed and not gc.isenabled():
            gc.freeze()
            gc.enable()

    def close(self) -> None:
        if self.managed:
            gc.enable()
            gc.unfreeze()


def _ignore_sigint(worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process coordinates Ctrl-C


PARENT_CHECK_S = 1.0  # how often a DataLoader worker checks that its job still lives


def _exit_with_parent() -> None:
    """End this DataLoader worker once its job's process is gone (kill -9): a worker blocked
    writing a batch into a pipe nobody reads never gets back to torch's own parent check,
    and would live on forever holding the job's files open. A thread watches the parent."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_loader_worker(worker_id: int) -> None:
    _ignore_sigint(worker_id)
    _exit_with_parent()


class _Interrupted(BaseException):
    """Raised in the model's thread by a stop signal: while it waits for a batch (nothing
    in flight), on a second signal, or when ``run.grace_s`` is over."""

    def __init__(self, abandoned: bool) -> None:
        self.abandoned = abandoned


class _Stop:
    """SIGTERM/SIGINT during a run: the run state's own handler records the signal; then a wait
    for a batch ends at once, and items in flight get ``run.grace_s``, a deadline kept by
    interrupting this thread (a loader stuck in a worker or in ``load_data`` never returns
    by itself)."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.waiting = False  # the model's thread is waiting for a batch
        self.closing = False  # leaving: nothing is interrupted any more
        self.timer: threading.Timer | None = None
        self.handlers: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.handlers[sig] = signal.signal(sig, self.on_signal)
        return self

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.closing:
            return
        if self.state.signal is not None:
            raise _Interrupted(abandoned=True)
        job_handler = self.handlers.get(signum)
        if callable(job_handler):
            job_handler(signum, frame)
        self.state.signal = signum
        self.timer = threading.Timer(self.state.grace_s, self.overdue, args=(signum,))
        self.timer.daemon = True
        self.timer.start()
        if self.waiting:
            raise _Interrupted(abandoned=False)

    def overdue(self, signum: int) -> None:
        if not self.closing:
            log.error(
                "items still in flight after run.grace_s=%ss: abandoning them", self.state.grace_s
            )
            signal.pthread_kill(threading.main_thread().ident, signum)  # wakes a sleep too

    def __exit__(self, *exc: Any) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)


class TorchBackbone:
    def __init__(self, cfg: TorchConfig) -> None:
        self.cfg = cfg

    def describe(self) -> dict[str, Any]:
        """As configured; what a run decides (device, workers, threads) is in its facts."""
        cfg = self.cfg
        return {
            "name": "torch",
            "device": cfg.device,
            "batch_size": cfg.batch_size,
            "num_workers": "auto" if cfg.num_workers is None else cfg.num_workers,
            "amp": self._amp(),
            "postprocess_workers": cfg.postprocess_workers,
            "cpu_threads": cfg.cpu_threads,
        }

    def _amp(self) -> str:
        """``backbone.amp`` by name: an ``Amp`` from the schema, a string from ``launcher.run``."""
        amp = self.cfg.amp
        return amp.name if isinstance(amp, enum.Enum) else amp

    def _loader_workers(self, state: RunState, device: Any) -> tuple[int, int]:
        """The DataLoader workers to start with, and those to move loading to once loading
        in the model's process is measured to cost too much (0: never).

        ``backbone.num_workers`` when set. Otherwise on the CPU loading starts in the
        model's process: tokenizing a batch or finding a page's lines costs ~1% of the
        model's step there, and a worker process beside the model's threads costs more
        than that (a fork, a copy of each batch, a CPU shared with the model: T2, T3 in
        bench/README.md); loading that is measured to take a larger share moves to
        workers (:class:`~launcher.backbones.loading.Loading`). On CUDA, and wherever
        ``run.item_timeout_s`` must be able to stop a load, workers from the start."""
        n = self.cfg.num_workers
        if n is not None:
            return n, 0
        most = max(1, min(8, available_cpus() - 1))
        if state.item_timeout_s or device.type != "cpu":
            return most, 0
        return 0, most

    def prepare(self, driven: Driven) -> None:
        """Nothing to start ahead: the DataLoader starts its workers when iterated."""

    def run(self, driven: Driven, plan: Plan, state: RunState) -> None:
        task = driven.task
        self._check(task, state)
        record = state.inflight_record
        left = take_left_behind(record)
        if not plan.has_pending():
            return  # everything is done already: import and load nothing
        heap = _Heap()
        try:
            self._run(driven, plan, state, heap, left)
        finally:
            heap.close()

    def _run(
        self, driven: Driven, plan: Plan, state: RunState, heap: _Heap, left: dict[str, Any] | None
    ) -> None:
        task = driven.task
        device = resolve_device(self.cfg.device)
        state.backbone_facts["device"] = str(device)
        log.info("torch backbone on %s", device)
        workers, spare = self._loader_workers(state, device)
        dataset = ItemDataset(task, task.get_dataset())
        loading = Loading(
            lambda sampler, n, prefetch, timeout: self._loader(
                task, dataset, device, sampler, n, prefetch, timeout
            ),
            size_grouped(driven, plan, self.cfg.batch_size),
            driven,
            state,
            self.cfg.batch_size,
            workers,
            self.cfg.prefetch_factor,
            inflight := InFlight(state.inflight_record),
            isolate=crashed_here(state.earlier_failures, left) if workers < 1 else set(),
            spare=spare,
        )
        try:
            with self._model_threads(device, loading, state) as threads:
                self._execute(driven, device, state, loading, inflight, threads, heap)
        finally:
            state.backbone_facts["num_workers"] = loading.workers

    @contextmanager
    def _model_threads(
        self, device: Any, loading: Loading, state: RunState
    ) -> Iterator[ModelThreads | None]:
        """On the CPU, the model's threads: ``backbone.cpu_threads``, else the CPUs the loader
        workers leave, then every CPU less those they and other processes are measured to
        need (:mod:`launcher.backbones.threads`).
        Set for the run; ``load_model`` may set its own; the job's setting comes back after."""
        import torch

        before = torch.get_num_threads()
        threads = None
        if device.type == "cpu":
            threads = ModelThreads(self.cfg.cpu_threads, loading.worker_pids, loading.workers)
        try:
            yield threads
        finally:
            if threads is not None:
                state.backbone_facts["cpu_threads"] = threads.threads
            torch.set_num_threads(before)

    def _check(self, task: Task, state: RunState) -> None:
        """Refuse what this backbone cannot run, before anything loads."""
        if not isinstance(task, TorchTask):
            raise ConfigError(
                f"backbone=torch needs a launcher.TorchTask; {type(task).__name__} is a plain Task "
                "(use backbone=mp or backbone=auto)."
            )
        if state.item_timeout_s and self.cfg.num_workers == 0:
            raise ConfigError(
                f"run.item_timeout_s={state.item_timeout_s} needs DataLoader workers on "
                "backbone=torch (a load_data stuck in the job's own process cannot be stopped): "
                "set backbone.num_workers to 1 or more, or leave run.item_timeout_s unset."
            )
        if state.item_timeout_s:
            log.info(
                "run.item_timeout_s=%ss bounds load_data in the DataLoader workers and each "
                "model step (batch_size times that for a whole batch); postprocessing is not timed",
                state.item_timeout_s,
            )

    def _execute(
        self,
        driven: Driven,
        device: Any,
        state: RunState,
        loading: Loading,
        inflight: InFlight,
        threads: ModelThreads | None,
        heap: _Heap,
    ) -> None:
        """Load the model while the loaders start, then run the pipeline; on every way out
        close the loaders and the in-flight record, and give SIGALRM back."""
        import torch

        alarm = signal.getsignal(signal.SIGALRM)  # the model steps' time limit takes it
        with _Stop(state) as stop:
            batches = None
            try:
                # workers fork here, on this thread (a fork from a thread can inherit a held
                # lock), and start loading while the model loads
                loading.start()
                batches = Prefetch(iter(loading))
                state.stage(f"loading the model on {device}")
                driven.task.load_model(device)
                heap.settled()
                with torch.inference_mode(), self._autocast(device):
                    _Pipeline(
                        driven, device, state, self.cfg.postprocess_workers, stop, inflight
                    ).run(batches, non_blocking=device.type == "cuda", threads=threads)
            except _Interrupted as exc:
                if exc.abandoned:
                    state.abort(
                        "stopped by a second signal or run.grace_s: items in flight abandoned"
                    )
            finally:
                stop.closing = True
                loading.close()
                if batches is not None:
                    batches.close(0.0 if state.signal else CLOSE_WAIT_S)
                inflight.close()
                signal.signal(signal.SIGALRM, alarm)

    def _autocast(self, device: Any) -> AbstractContextManager:
        """``backbone.amp``: the model steps autocast to bf16 or fp16, or run as they are."""
        amp = self._amp()
        if amp == "off":
            return nullcontext()
        import torch

        return torch.autocast(device.type, dtype=AMP_DTYPES[amp](torch))

    def _loader(
        self,
        task: TorchTask,
        dataset: ItemDataset,
        device: Any,
        sampler: Any,
        workers: int,
        prefetch: int,
        timeout: float,
    ) -> Any:
        from torch.utils.data import DataLoader

        pin = device.type == "cuda" if self.cfg.pin_memory is None else self.cfg.pin_memory
        kwargs: dict[str, Any] = {
            "batch_sampler": sampler,
            "collate_fn": collate,
            "num_workers": workers,
            "pin_memory": pin,
        }
        if workers:
            kwargs.update(
                prefetch_factor=prefetch,
                persistent_workers=self.cfg.persistent_workers,
                worker_init_fn=_init_loader_worker,
                timeout=timeout,
            )
        return task.get_dataloader(dataset, **kwargs) or DataLoader(dataset, **kwargs)


def _step_limit(per_item_s: float) -> Callable[[int], AbstractContextManager]:
    """A model step over n items gets ``n * run.item_timeout_s``: SIGALRM, in this (the
    model's) thread, raises :class:`ItemTimeout` there, and the batch is retried item by
    item (a step stuck inside one native call is stopped when that call returns)."""

    def overrun(signum: int, frame: Any) -> None:
        raise ItemTimeout(
            f"the model step ran over run.item_timeout_s={per_item_s}s per item and was stopped"
        )

    signal.signal(signal.SIGALRM, overrun)

    @contextmanager
    def limit(n: int) -> Iterator[None]:
        signal.setitimer(signal.ITIMER_REAL, per_item_s * n)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    return limit


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

    def __init__(
        self,
        driven: Driven,
        device: Any,
        state: RunState,
        threads: int,
        stop: _Stop,
        inflight: InFlight,
    ) -> None:
        self.driven = driven
        self.task = driven.task
        self.stop = stop
        self.inflight = inflight
        self.device = device
        self.state = state
        self.kind = driven.step
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="postprocess")
        self.max_pending = max(1, threads) * 2
        self.pending: deque[tuple[Future, list[Item], list[str]]] = deque()  # items, keys
        self.placement = Placement()
        self.limit = _step_limit(state.item_timeout_s) if state.item_timeout_s else None

    def submit(self, *args: Any) -> Future:
        if not self.placement.here():
            return self.pool.submit(postprocess, self.task, *args)
        t0 = time.perf_counter()
        done: Future = Future()
        done.set_result(postprocess(self.task, *args))
        self.placement.took(time.perf_counter() - t0)
        return done

    def run(self, batches: Prefetch, non_blocking: bool, threads: ModelThreads | None) -> None:
        abandoned = False
        try:
            for loaded in self.waiting(batches):
                probing, deciding = batches.probing, threads is not None and threads.deciding
                if probing or deciding:
                    wall, cpu = time.perf_counter(), time.thread_time() if probing else 0.0
                    self.step(loaded, non_blocking)
                    took = time.perf_counter() - wall
                    if probing:
                        batches.observe(took, time.thread_time() - cpu)
                    if deciding:
                        threads.stepped(took)
                else:
                    self.step(loaded, non_blocking)
                self.collect(block=len(self.pending) >= self.max_pending)
                self.state.tick()
                if self.state.stopping:
                    break
        except _Interrupted as exc:
            abandoned = exc.abandoned
            raise
        finally:
            try:
                while self.pending and not abandoned:
                    self.collect(block=True)
            except _Interrupted:  # run.grace_s ran out while postprocessing finished
                abandoned = True
                raise
            finally:
                self.pool.shutdown(wait=not abandoned, cancel_futures=True)

    def waiting(self, batches: Prefetch) -> Iterator[Loaded]:
        """The batches, with the wait for each marked: a stop signal ends a wait at once."""
        it = iter(batches)
        while True:
            self.stop.waiting = True
            try:
                if self.state.stopping:
                    return
                loaded = next(it, None)
            finally:
                self.stop.waiting = False
            if loaded is None:
                return
            yield loaded

    def fail(self, item: Item, f: tuple[str, str, str]) -> None:
        self.state.failed(self.task.item_key(item), *f)

    def step(self, loaded: Loaded, non_blocking: bool) -> None:
        for item, f in loaded.failed:
            self.fail(item, f)
        keyed = [(items, self.driven.item_keys(items), part) for items, part in loaded.parts]
        self.note_inflight([key for _, keys, _ in keyed for key in keys])
        for items, keys, part in keyed:
            batch = to_device(part, self.device, non_blocking)
            groups, failed = infer(self.task, self.device, batch, self.kind, self.limit)
            for i, f in failed:
                self.fail(items[i], f)
            for positions, group, results in groups:
                future = self.submit(group, results, self.kind)
                if len(positions) == len(items):  # the whole part: its lists as they are
                    self.pending.append((future, items, keys))
                else:
                    self.pending.append(
                        (future, [items[i] for i in positions], [keys[i] for i in positions])
                    )

    def note_inflight(self, new: list[str] | None = None) -> None:
        """Name the items in a model step (``new``) or waiting for postprocessing."""
        held: list[str] = []
        for _, _, keys in self.pending:
            held += keys
        self.inflight.set("model", held + new if new else held)

    def collect(self, block: bool) -> None:
        collected = False
        while self.pending and (block or self.pending[0][0].done()):
            collected = True
            future, items, _ = self.pending.popleft()
            block = False
            failed = future.result()
            for pos, f in failed:
                self.fail(items[pos], f)
            self.state.done(len(items) - len(failed), items)
        if collected:
            self.note_inflight()
