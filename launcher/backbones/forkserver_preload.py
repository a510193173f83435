"""Imported only inside the forkserver process, through ``set_forkserver_preload``.

SLURM (scancel, preemption, time limit) sends SIGTERM to every process of a
job. A forkserver that dies of it takes its workers' status pipes with it, so
the parent would see every worker as dead at once, kill them, and lose the
items in flight instead of letting them finish within ``run.grace_s``.
Ignoring SIGTERM here keeps the forkserver alive; it still exits when the
parent does. Workers install their own SIGTERM handler.
"""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
