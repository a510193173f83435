"""Peak memory of a process tree: RSS summed over a process and all its descendants.

Sampled every ~50 ms with psutil, as ``ps`` would see it: a parent and its
forked workers count their shared pages twice, the way the issue's reference
figures were taken. Each contender runs in a fresh child process
(``python -m bench.memchild``) so the benchmark's own heap and whatever an
earlier contender left behind are not counted.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from typing import Any

import psutil

MIB = 1024 * 1024


def tree_rss(root: psutil.Process) -> int:
    total = 0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def peak_rss(
    argv: list[str], interval_s: float = 0.05, timeout_s: float = 900
) -> tuple[int, float]:
    """Run ``argv``; return (peak summed RSS in bytes, wall seconds). Raise if it fails."""
    with tempfile.TemporaryFile() as err:
        return _sample(argv, err, interval_s, timeout_s)


def _sample(argv: list[str], err: Any, interval_s: float, timeout_s: float) -> tuple[int, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, tree_rss(root))
        if time.perf_counter() - t0 > timeout_s:
            proc.kill()
            raise TimeoutError(f"{argv} ran longer than {timeout_s}s")
        time.sleep(interval_s)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"{argv} failed with {proc.returncode}:\n{tail}")
    return peak, seconds
