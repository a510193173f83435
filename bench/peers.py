"""The peers, each driven the way its documentation shows, with its progress bar off.

Every runner takes the same item iterator and returns how many items it
handed to the work function, so the harness can check that nobody skipped
work. The PyPI peers are imported lazily: a missing one is reported by
:func:`missing` and its contender is skipped, never faked.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench.workloads import Item

# peer -> the modules it needs (``import kagurazaka`` imports torch, undeclared)
PYPI_PEERS = {
    "kagurazaka": ("kagurazaka", "torch"),
    "pqdm": ("pqdm",),
    "mtasklite": ("mtasklite",),
    "hydra-submitit-launcher": ("hydra_plugins.hydra_submitit_launcher",),  # L1, a Hydra plugin
}


def missing(peer: str) -> bool:
    """True when an optional peer cannot be imported here (checked without importing it)."""
    return any(importlib.util.find_spec(m) is None for m in PYPI_PEERS.get(peer, (peer,)))


def chunk_heuristic(n: int, workers: int) -> int:
    """The classic ``Pool.map`` chunk size: ``len / (4 * workers)``, rounded up."""
    return max(1, -(-n // (4 * workers)))


def _counted(items: Iterable[Item], box: list[int]) -> Iterator[Item]:
    for item in items:
        box[0] += 1
        yield item


# -- stdlib -------------------------------------------------------------------------------------


def pool_imap(
    fn: Callable[[Item], None], items: Iterable[Item], chunksize: int, workers: int
) -> int:
    """``multiprocessing.Pool.imap_unordered`` with the default start method (fork on Linux)."""
    with multiprocessing.Pool(workers) as pool:
        return sum(1 for _ in pool.imap_unordered(fn, items, chunksize=chunksize))


def ppe_map(fn: Callable[[Item], None], items: Iterable[Item], chunksize: int, workers: int) -> int:
    """``concurrent.futures.ProcessPoolExecutor.map`` with ``chunksize``."""
    with ProcessPoolExecutor(workers) as ex:
        return sum(1 for _ in ex.map(fn, items, chunksize=chunksize))


def serial(fn: Callable[[Item], None], items: Iterable[Item]) -> int:
    """A plain loop in this process: the per-item floor (ideal = its rate x workers)."""
    n = 0
    for item in items:
        fn(item)
        n += 1
    return n


# -- PyPI peers ---------------------------------------------------------------------------------


def pqdm_run(fn: Callable[..., None], items: Iterable[Item], workers: int) -> int:
    """pqdm 0.2.0's process pool: one future per item, called with the item as kwargs."""
    from pqdm.processes import pqdm

    results = pqdm(items, fn, n_jobs=workers, argument_type="kwargs", disable=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise RuntimeError(f"pqdm: {len(errors)} items failed, first: {errors[0]!r}")
    return len(results)


def mtasklite_run(fn: Callable[..., None], items: Iterable[Item], workers: int) -> int:
    """mtasklite 0.3.5's pqdm (bounded, ordered: its defaults), items as kwargs."""
    from mtasklite.processes import pqdm

    n = 0
    with pqdm(items, fn, n_jobs=workers, argument_type="kwargs", disable=True) as results:
        for r in results:
            if isinstance(r, BaseException):
                raise RuntimeError(f"mtasklite: an item failed: {r!r}")
            n += 1
    return n


def kagurazaka_run(argv: list[str], workers: int, chunksize: int | None = None) -> float:
    """kagurazaka 0.1.1's mp backbone (``kagurazaka.backbone.mp.process``) on our bench task.

    Returns the seconds ``process`` took. ``import kagurazaka`` imports torch
    (seconds, and hundreds of MiB that every later fork would copy), so the call
    runs in a forked sandbox process that imports it first, untimed; the
    benchmark process itself never imports torch. kagurazaka keeps the task in
    a module global, so it only works with ``fork`` (the Linux default). It
    always draws a tqdm bar: stdout and stderr go to a sink. Task flags must not
    be prefixes of ``--num_process``/``--chunksize`` (argparse abbreviations).
    """
    args = ["--num_process", str(workers), *argv]
    if chunksize is not None:
        args += ["--chunksize", str(chunksize)]
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_kagurazaka_sandbox, args=(args, send), daemon=False)
    proc.start()
    send.close()
    try:
        ok, value = recv.recv()
    except EOFError:
        ok, value = False, "the sandbox process died"
    proc.join()
    if not ok:
        raise RuntimeError(f"kagurazaka failed: {value}")
    return value


def _kagurazaka_sandbox(args: list[str], send: Any) -> None:
    import time
    import traceback

    try:
        from kagurazaka.backbone import mp

        from bench.kagurazaka_task import BenchTask

        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            t0 = time.perf_counter()
            mp.process(BenchTask, args)
            seconds = time.perf_counter() - t0
        send.send((True, seconds))
    except BaseException:  # noqa: BLE001 - reported to the parent
        send.send((False, traceback.format_exc()))


def kagurazaka_cli() -> list[str]:
    """The command that runs kagurazaka's own CLI (its ``kagurazaka`` console script)."""
    import shutil
    import sys

    exe = shutil.which("kagurazaka")
    if exe and os.path.dirname(exe) == os.path.dirname(sys.executable):
        return [exe]
    return [sys.executable, "-c", "import sys; from kagurazaka.main import main; main()"]
