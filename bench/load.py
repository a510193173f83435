"""How busy the CPUs were with *other* processes while a contender ran.

On a shared 2-core machine one stray test run halves a contender's speed, so
every measurement carries the CPU time the rest of the machine used during it:
all busy time from ``/proc/stat`` minus the CPU time of this benchmark's own
process tree. Dead descendants are counted through their parents'
``cutime``/``cstime`` (a forkserver reaps its workers, we reap the forkserver),
so the tree's total is exact across processes that come and go mid-run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_CPUS = 0.15  # other processes using more than this many CPUs on average flag a run
SLACK_S = 0.03  # CPU times are counted in 10 ms ticks, per process: short runs get this much slack


def _proc_stat() -> tuple[float, float]:
    """(busy, steal) CPU-seconds summed over all CPUs since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def _tree_cpu(root: psutil.Process) -> float:
    """CPU-seconds of ``root`` and its descendants, reaped ones included."""
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue  # gone between listing and reading: its parent's cutime has it
        total += t.user + t.system + t.children_user + t.children_system
    return total


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class Load:
    """What the rest of the machine did during one measured run."""

    wall_s: float
    own_cpus: float  # average CPUs used by this process tree
    other_cpus: float  # average CPUs used by everything else
    steal_cpus: float  # average CPUs the hypervisor took
    loadavg_1m: float  # at the end of the run

    @property
    def flagged(self) -> bool:
        limit = QUIET_CPUS + SLACK_S / self.wall_s
        return self.other_cpus > limit or self.steal_cpus > limit

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "wall_s": round(self.wall_s, 4),
            "own_cpus": round(self.own_cpus, 3),
            "other_cpus": round(self.other_cpus, 3),
            "steal_cpus": round(self.steal_cpus, 3),
            "loadavg_1m": round(self.loadavg_1m, 2),
            "flagged": self.flagged,
        }


class CpuWatch:
    """``with CpuWatch() as w: ...`` then ``w.load``: the others' CPU use over the block."""

    def __init__(self, root: psutil.Process | None = None) -> None:
        self.root = root or psutil.Process()
        self.load: Load | None = None

    def __enter__(self) -> CpuWatch:
        self._busy0, self._steal0 = _proc_stat()
        self._own0 = _tree_cpu(self.root)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.perf_counter() - self._t0, 1e-9)
        own = _tree_cpu(self.root) - self._own0
        busy, steal = _proc_stat()
        other = max(0.0, busy - self._busy0 - own)
        self.load = Load(
            wall, own / wall, other / wall, (steal - self._steal0) / wall, os.getloadavg()[0]
        )


def others_busy(window_s: float = 1.0) -> float:
    """Average CPUs used by other processes over the next ``window_s`` seconds."""
    with CpuWatch() as w:
        time.sleep(window_s)
    assert w.load is not None
    return w.load.other_cpus


def wait_for_quiet(max_wait_s: float, window_s: float = 1.0) -> float:
    """Wait (up to ``max_wait_s``) until other processes leave the CPUs; return their last use."""
    deadline = time.monotonic() + max_wait_s
    busy = others_busy(window_s)
    while busy > QUIET_CPUS and time.monotonic() < deadline:
        busy = others_busy(window_s)
    return busy
