"""File trees for the resume (W4b) and planning (P1) workloads, built once and cached.

A million files take a minute to create, so trees live outside the checkout
(``$BENCH_CACHE`` or ``/tmp/shard-launcher-bench``) and are reused while their
``READY`` marker exists. Files are empty: what is measured is listing and
``stat``, never reading, and the page cache is warm (we cannot drop it
without root, and a cold-cache figure would mostly measure the disk).
"""

from __future__ import annotations

import os
import shutil
import sys

from bench.workloads import DONE_EVERY

PER_DIR = 1000
READY = "READY"


def cache_root() -> str:
    return os.environ.get("BENCH_CACHE") or "/tmp/shard-launcher-bench"


def _touch(path: str) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def _build(root: str, make: callable) -> str:
    if os.path.exists(os.path.join(root, READY)):
        return root
    print(f"  building {root} (once; cached for later runs)", file=sys.stderr, flush=True)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    make(root)
    _touch(os.path.join(root, READY))
    return root


def resume_outputs(n: int) -> str:
    """W4b: outputs ``DDDD/XXXXXXX.out`` for the 90% of items with ``x % 10 != 0``."""

    def make(root: str) -> None:
        for d in range(-(-n // PER_DIR)):
            os.makedirs(os.path.join(root, f"{d:04d}"))
        for x in range(n):
            if x % DONE_EVERY:
                _touch(os.path.join(root, f"{x // PER_DIR:04d}", f"{x:07d}.out"))

    return _build(os.path.join(cache_root(), f"w4b-{n}"), make)


def planning_tree(n: int, done_fraction: float = 0.9) -> tuple[str, str]:
    """P1: ``in/dDDDD/fXXXXXXX.txt`` inputs; ``out/...txt.out`` for the first 90% in sorted order.

    A job killed at 90% leaves exactly this, and it makes the time to the
    first pending item the time to plan through the 90% that is done.
    """
    done = int(n * done_fraction)

    def make(root: str) -> None:
        for d in range(-(-n // PER_DIR)):
            os.makedirs(os.path.join(root, "in", f"d{d:04d}"))
            os.makedirs(os.path.join(root, "out", f"d{d:04d}"))
        for x in range(n):
            rel = f"d{x // PER_DIR:04d}/f{x:07d}.txt"
            _touch(os.path.join(root, "in", rel))
            if x < done:
                _touch(os.path.join(root, "out", rel + ".out"))

    root = _build(os.path.join(cache_root(), f"p1-{n}"), make)
    return os.path.join(root, "in"), os.path.join(root, "out")
