"""Imported inside the forkserver process, through ``set_forkserver_preload``.

SLURM (scancel, preemption, time limit) sends SIGTERM to every process of a
job. A forkserver that dies of it takes its workers' status pipes with it, so
the parent would see every worker as dead at once, kill them, and lose the
items in flight instead of letting them finish within ``run.grace_s``.
Ignoring SIGTERM here keeps the forkserver alive; it still exits when the
parent does. Workers install their own SIGTERM handler.

It also imports what every worker needs to unpickle its start arguments (the
shared status arrays pull in ctypes): imported here once, each forked worker
has them already instead of importing them before it can start.
"""

import multiprocessing.connection  # noqa: F401 - the workers' pipes
import multiprocessing.popen_forkserver  # noqa: F401
import multiprocessing.sharedctypes  # noqa: F401 - the workers' status arrays (ctypes)
import signal
import traceback


def _imported_by_the_forkserver() -> bool:
    """Whether multiprocessing's fork server is importing this module as a preload: any
    other importer (a test collecting every module, a doc builder) keeps its SIGTERM, and
    so do the processes it starts later (an ignored signal is inherited across exec)."""
    return any(
        frame.f_globals.get("__name__") == "multiprocessing.forkserver"
        for frame, _ in traceback.walk_stack(None)
    )


if _imported_by_the_forkserver():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
