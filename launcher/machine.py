"""Facts about the machine this process runs on: CPUs to size work by, and which of its
processes still live (lock holders, schedulers, writers of temporaries)."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on (honours taskset and SLURM's cpus-per-task)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def pid_alive(pid: object) -> bool:
    """Whether a process of this host with that pid exists (a pid we may not signal does)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), to tell it from
    an earlier process that had its pid (a container restarted); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None
