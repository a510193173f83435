"""Stop requests that reach the process some other way than the job's own signal handlers.

SLURM's USR2 (time limit near, preemption) is blocked and waited for by a thread of
the array element (:mod:`launcher.launchers.element`); the running job registers its
graceful stop here while it runs, and the watcher asks through :func:`request`, so
neither needs to find the other through the signal module's handler table. The
list of hooks is the process's, as its signals are; it says who listens, and
carries no result (exit codes are returned, see :mod:`launcher.outcome`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

StopHook = Callable[[int], None]  # told the signal number that asked for the stop

_hooks: list[StopHook] = []
_lock = threading.Lock()


def register(hook: StopHook) -> None:
    """Have ``hook`` hear stop requests until :func:`unregister`."""
    with _lock:
        _hooks.append(hook)


def unregister(hook: StopHook) -> None:
    with _lock:
        _hooks.remove(hook)


def request(signum: int) -> bool:
    """Ask every registered hook to stop; False when nothing was running to hear it."""
    with _lock:
        hooks = list(_hooks)
    for hook in hooks:
        hook(signum)
    return bool(hooks)
