"""How many threads a model on the CPU gets: the CPUs that nothing else is measured to need.

Threads that outnumber the free CPUs wait for each other at every parallel
step of a model (one of them is off its CPU while the others spin), so a CPU
that the DataLoader workers or other processes keep busy is better left to
them; an idle worker, though, costs nothing. How busy the workers are is the
task's business (tokenizing a batch of documents costs ~1% of encoding it),
and how busy the machine is, its users'. So the model starts with the CPUs its
loader workers leave (torch's own count at most; every CPU while batches load in
its own process), as a loader that must keep up with a small model needs its CPU
from the first batch (bench T1a: two threads beside one busy loader on two CPUs
ran a third slower until the first decision), and, over windows of model steps
(the first after ``PROBE_S``, then every ``WINDOW_S``), measures two needs: the
loader workers' CPU time per second of model steps (what they use to keep up
with the model; waits for a batch excluded), and the other processes' CPU time
per second on this process's CPUs. The model gets the CPUs left, rounded, at
least one: loaders measured idle give theirs back.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from launcher.machine import busy_cpu_seconds, cpu_ids, cpu_seconds

log = logging.getLogger(__name__)

PROBE_S = 1.0  # seconds of model steps before the first decision
WINDOW_S = 30.0  # then the decision is revisited this often
MIN_STEPS = 2  # steps in a window, at least


@dataclass
class _Window:
    start: float
    pids: tuple[int, ...]
    loaders: float  # the loader workers' CPU seconds so far
    own: float  # this process's
    busy: float  # every process's on this process's CPUs


class ModelThreads:
    """The model's threads on the CPU for one run: :meth:`stepped` after each model step."""

    def __init__(
        self, fixed: int | None, loader_pids: Callable[[], tuple[int, ...]], loaders: int
    ) -> None:
        """``loaders``: the loader workers the run starts with (0: loading in process)."""
        import torch

        self.torch = torch
        self.cpus = cpu_ids()
        self.loader_pids = loader_pids  # the loader workers' process ids, now
        self.most = fixed or min(torch.get_num_threads(), len(self.cpus))
        self.threads = fixed or self._left_by(loaders)
        self.deciding = fixed is None and len(self.cpus) > 1
        self.window: _Window | None = None
        self.length = PROBE_S
        self.steps = 0  # steps in the window, and their seconds
        self.step_s = 0.0
        torch.set_num_threads(self.threads)

    def _open(self, now: float) -> None:
        pids = self.loader_pids()
        self.window = _Window(
            now, pids, sum(map(cpu_seconds, pids)), _own_cpu(), busy_cpu_seconds(self.cpus)
        )
        self.steps, self.step_s = 0, 0.0

    def stepped(self, step_s: float) -> None:
        """After a model step of ``step_s`` seconds (the first one, a warm-up, opens the
        first window); at the end of a window, decide and open the next."""
        now = time.perf_counter()
        if self.window is None:
            self._open(now)
            return
        w, pids = self.window, self.loader_pids()
        if pids != w.pids:
            # Another loader (loading moved to workers, or a worker replaced): as at the
            # start, the model gets the CPUs its workers leave, and their need is measured
            # as soon. A loader that ended (the last batch) changes nothing.
            if pids and len(pids) != len(w.pids):
                self._use(self._left_by(len(pids)))
            self.length = PROBE_S
            self._open(now)
            return
        self.steps += 1
        self.step_s += step_s
        if now - w.start < self.length or self.steps < MIN_STEPS:
            return
        wall = now - w.start
        loaders = sum(map(cpu_seconds, pids)) - w.loaders
        others = (busy_cpu_seconds(self.cpus) - w.busy - (_own_cpu() - w.own) - loaders) / wall
        need = min(loaders / max(self.step_s, 1e-3), len(pids))
        threads = max(1, min(self.most, int(len(self.cpus) - max(others, 0.0) - need + 0.5)))
        if threads != self.threads or self.length == PROBE_S:
            log.info(
                "loader workers need %.2f CPUs to keep up with the model, other processes "
                "use %.2f of the %d CPUs: the model gets %d thread(s)",
                need,
                max(others, 0.0),
                len(self.cpus),
                threads,
            )
        self._use(threads)
        self.length = WINDOW_S
        self._open(now)

    def _left_by(self, loaders: int) -> int:
        """The threads ``loaders`` busy loader workers leave the model, at least one."""
        return max(1, min(self.most, len(self.cpus) - loaders))

    def _use(self, threads: int) -> None:
        if threads != self.threads:
            self.threads = threads
            self.torch.set_num_threads(threads)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system
