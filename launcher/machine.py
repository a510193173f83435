"""Facts about the machine this process runs on, read where the launcher sizes its work."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on (honours taskset and SLURM's cpus-per-task)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
