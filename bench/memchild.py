"""M1's child process: ``python -m bench.memchild CONTENDER N CHUNK`` runs W1's work on a
generator of N items with one contender and exits; the parent samples its tree's RSS.

A fresh process per contender keeps the benchmark's own heap (and whatever an
earlier contender left behind) out of the figure.
"""

from __future__ import annotations

import sys

from bench import peers
from bench.ours import run_job
from bench.workloads import Squares, numbers, one_square, square

WORKERS = 2


def run(contender: str, n: int, chunk: int) -> int:
    if contender == "ours":
        return run_job(Squares(n), workers=WORKERS).stats.processed
    if contender == "pool":
        return peers.pool_imap(one_square, numbers(n), chunk, WORKERS)
    if contender == "ppe":
        return peers.ppe_map(one_square, numbers(n), chunk, WORKERS)
    if contender == "serial":
        return peers.serial(one_square, numbers(n))
    if contender == "pqdm":
        return peers.pqdm_run(square, numbers(n), WORKERS)
    if contender == "mtasklite":
        return peers.mtasklite_run(square, numbers(n), WORKERS)
    if contender == "kagurazaka":
        peers.kagurazaka_run(["--workload", "square", "--items", str(n)], WORKERS)
        return n
    raise SystemExit(f"unknown contender {contender!r}")


if __name__ == "__main__":
    name, count, chunksize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    done = run(name, count, chunksize)
    if done != count:
        raise SystemExit(f"{name} handled {done} of {count} items")
