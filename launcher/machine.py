"""Facts about the machine this process runs on: CPUs to size work by, and which of its
processes still live (lock holders, schedulers, writers of temporaries)."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on (honours taskset and SLURM's cpus-per-task)."""
    return len(cpu_ids())


def cpu_ids() -> frozenset[int]:
    """The ids of the CPUs this process may run on."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return frozenset(range(os.cpu_count() or 1))


def busy_cpu_seconds(cpus: frozenset[int]) -> float:
    """Seconds the CPUs ``cpus`` have spent busy since boot (any process's work, or taken by
    the hypervisor; not idle nor waiting for I/O), from ``/proc/stat``; 0 where it is
    missing (a measure only)."""
    try:
        with open("/proc/stat", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0.0
    busy = 0
    for line in lines[1:]:
        if not line.startswith(b"cpu"):
            break
        name, *ticks = line.split()
        if int(name[3:]) in cpus:
            values = list(map(int, ticks[:8]))  # user nice system idle iowait irq softirq steal
            busy += sum(values) - values[3] - values[4]  # steal too: the host took the CPU
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process of this host has used so far; 0 once it is gone
    or where ``/proc`` is missing (a measure, never a reason to fail)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_exists(pid: object) -> bool:
    """Whether a process of this host with that pid exists, running or ended and not yet
    reaped (a pid we may not signal does)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def pid_alive(pid: object) -> bool:
    """Whether a process of this host with that pid still runs: a zombie is no writer."""
    return pid_exists(pid) and not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended and only waits to be reaped: a killed job's workers stay so
    until a slow init reaps them, and must not pass for writers still at work."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), to tell it from
    an earlier process that had its pid (a container restarted); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None
