"""How many threads a model on the CPU gets: the CPUs that nothing else is measured to need.

Threads that outnumber the free CPUs wait for each other at every parallel
step of a model (one of them is off its CPU while the others spin), so a CPU
that the DataLoader workers or other processes keep busy is better left to
them; an idle worker, though, costs nothing. How busy the workers are is the
task's business (tokenizing a batch of documents costs ~1% of encoding it),
and how busy the machine is, its users'. So the model starts with every CPU
(torch's own count at most) and, over windows of model steps (the first after
``PROBE_S``, then every ``WINDOW_S``), measures two needs: the loader workers'
CPU time per second of model steps (what they use to keep up with the model;
waits for a batch excluded), and the other processes' CPU time per second on
this process's CPUs. The model gets the CPUs left, rounded, at least one.
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

    def __init__(self, fixed: int | None, loader_pids: Callable[[], tuple[int, ...]]) -> None:
        import torch

        self.torch = torch
        self.cpus = cpu_ids()
        self.loader_pids = loader_pids  # the loader workers' process ids, now
        self.most = fixed or min(torch.get_num_threads(), len(self.cpus))
        self.threads = self.most
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
        self.steps += 1
        self.step_s += step_s
        if now - self.window.start < self.length or self.steps < MIN_STEPS:
            return
        w, pids = self.window, self.loader_pids()
        if pids != w.pids:  # a new loader: its CPU time starts again
            self._open(now)
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
        if threads != self.threads:
            self.threads = threads
            self.torch.set_num_threads(threads)
        self.length = WINDOW_S
        self._open(now)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system
