"""Throughput workloads (W1-W4): every contender on the same items, peers' chunk sizes tuned.

A :class:`Throughput` says what the workload hands everyone (the items, the
per-item work, our task, kagurazaka's flags, the parent-side filter a peer
applies when resuming); :func:`contenders` turns it into the contender list,
tuning the stdlib peers' chunk sizes first when asked to.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench import peers
from bench.harness import Contender, Sample, timed
from bench.ours import run_job, warm_forkserver
from bench.workloads import ONE, WORK, Item
from launcher.task import Task

WORKERS = 2
TUNE_CANDIDATES = (16, 64, 256, 1024, 4096, 16384)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def available(peer: str) -> bool:
    """False, with a printed note, for a PyPI peer that is not installed here."""
    if peer in peers.PYPI_PEERS and peers.missing(peer):
        _say(f"  note: {peer} is not importable here; skipping it")
        return False
    return True


# -- chunk tuning for the stdlib peers ------------------------------------------------------------


def tune_chunk(
    label: str, run_with: Callable[[int], None], n: int, tune: bool
) -> tuple[int, dict[str, float]]:
    """The fastest chunk size among the classic heuristic and powers of 4.

    Without ``tune`` (quick mode) it takes the heuristic ``len / (4 * workers)``. Candidates
    run from ``n / 2000`` (fewer, larger messages) to twice the heuristic (past
    that, the last chunks leave a worker idle); each runs twice, alternating,
    and keeps its best time (once when a run takes over a second).
    """
    heuristic = peers.chunk_heuristic(n, WORKERS)
    if not tune:
        return heuristic, {}
    cands = sorted({heuristic, *(c for c in TUNE_CANDIDATES if n / 2000 <= c <= 2 * heuristic)})
    best: dict[int, float] = {}
    for round_ in range(2):
        for c in cands:
            t0 = time.perf_counter()
            run_with(c)
            best[c] = min(best.get(c, float("inf")), time.perf_counter() - t0)
        if round_ == 0 and min(best.values()) > 1.0:
            break  # slow items: one round separates the candidates well enough
    chosen = min(best, key=best.__getitem__)
    tried = ", ".join(f"{c}: {t:.3f}s" for c, t in best.items())
    _say(f"  tuned {label}: chunksize {chosen} ({tried})")
    return chosen, {str(c): round(t, 4) for c, t in best.items()}


# -- contenders ------------------------------------------------------------------------------------


@dataclass
class Throughput:
    """What one throughput workload hands every contender."""

    n: int  # items generated (items/s is over these, for everyone)
    work: str  # key of bench.workloads.WORK / ONE
    task: Callable[[], Task]  # our task
    kagurazaka: list[str]  # kagurazaka task flags
    items: Callable[[], Iterator[Item]]
    pending: Callable[[Item], bool] | None = None  # a peer's parent-side filter (W4)
    slow_cap: int | None = None  # the slow PyPI peers run on the first slow_cap items only


def _peer_items(t: Throughput, cap: int | None = None) -> Iterator[Item]:
    items = t.items()
    if cap is not None and cap < t.n:
        items = itertools.islice(items, cap)
    if t.pending is not None:
        items = (it for it in items if t.pending(it))
    return items


def _peer_count(t: Throughput, cap: int | None = None) -> int:
    return sum(1 for _ in _peer_items(t, cap))


def _ours(t: Throughput, start_method: str) -> Contender:
    def prepare() -> Callable[[], Sample]:
        task = t.task()
        if start_method == "forkserver":
            warm_forkserver(task)
        return lambda: timed(t.n, lambda: _ours_run(task, start_method, t.n))

    note = "launcher mp backbone, default config" if start_method == "forkserver" else "diagnostic"
    return Contender(
        "ours" if start_method == "forkserver" else f"ours[{start_method}]", prepare, note
    )


def _ours_run(task: Task, start_method: str, n: int) -> int:
    stats = run_job(task, workers=WORKERS, start_method=start_method).stats
    if stats.total != n:
        raise RuntimeError(f"our plan saw {stats.total} items, expected {n}")
    return stats.total


def stdlib(
    t: Throughput, name: str, fn: Callable, runner: Callable, tune: bool, note: str
) -> Contender:
    pending = _peer_count(t)

    def run_with(chunk: int) -> None:
        runner(fn, _peer_items(t), chunk, WORKERS)

    chunk, tried = tune_chunk(name, run_with, pending, tune)

    def prepare() -> Callable[[], Sample]:
        def run() -> int:
            handled = runner(fn, _peer_items(t), chunk, WORKERS)
            if handled != pending:
                raise RuntimeError(f"{name} handled {handled} of {pending} pending items")
            return t.n

        def sample() -> Sample:
            s = timed(t.n, run)
            s.extra.update(chunksize=chunk)
            return s

        return sample

    return Contender(name, prepare, f"{note}, chunksize {chunk}", {"chunk_tuning_s": tried})


def _serial(t: Throughput) -> Contender:
    fn = ONE[t.work]
    pending = _peer_count(t)

    def prepare() -> Callable[[], Sample]:
        def run() -> int:
            handled = peers.serial(fn, _peer_items(t))
            if handled != pending:
                raise RuntimeError(f"serial handled {handled} of {pending}")
            return t.n

        return lambda: timed(t.n, run)

    return Contender("serial", prepare, "plain loop in the parent; ideal = serial x workers")


def _slow_peer(t: Throughput, name: str, runner: Callable) -> Contender:
    cap = t.slow_cap if t.slow_cap and t.slow_cap < t.n else None
    n = cap or t.n
    pending = _peer_count(t, cap)
    fn = WORK[t.work]

    def prepare() -> Callable[[], Sample]:
        def run() -> int:
            handled = runner(fn, _peer_items(t, cap), WORKERS)
            if handled != pending:
                raise RuntimeError(f"{name} handled {handled} of {pending}")
            return n

        return lambda: timed(n, run)

    note = "progress bar off" + (f"; on the first {cap} items (items/s over those)" if cap else "")
    return Contender(name, prepare, note)


def _kagurazaka(t: Throughput) -> Contender:
    cap = t.slow_cap if t.slow_cap and t.slow_cap < t.n else None
    n = cap or t.n
    argv = list(t.kagurazaka)
    argv[argv.index("--items") + 1] = str(n)

    def prepare() -> Callable[[], Sample]:
        def sample() -> Sample:
            seconds = peers.kagurazaka_run(argv, WORKERS)
            return Sample(n / seconds, {"seconds": round(seconds, 4)})

        return sample

    where = "is_executed in workers (its design)" if t.pending else "chunksize 1 (its default)"
    on = f"; on the first {cap} items" if cap else ""
    return Contender("kagurazaka", prepare, f"mp backbone, fork, {where}{on}")


def contenders(t: Throughput, tune: bool, extra: list[Contender] | None = None) -> list[Contender]:
    """Ours (and ours[fork]), Pool, any ``extra``, ProcessPoolExecutor, the PyPI peers, serial."""
    filt = ", parent-filtered" if t.pending else ""
    cs = [
        _ours(t, "forkserver"),
        _ours(t, "fork"),
        stdlib(t, "pool", ONE[t.work], peers.pool_imap, tune, f"Pool.imap_unordered{filt}"),
        *(extra or []),
        stdlib(t, "ppe", ONE[t.work], peers.ppe_map, tune, "ProcessPoolExecutor.map"),
    ]
    pypi = {
        "kagurazaka": lambda: _kagurazaka(t),
        "pqdm": lambda: _slow_peer(t, "pqdm", peers.pqdm_run),
        "mtasklite": lambda: _slow_peer(t, "mtasklite", peers.mtasklite_run),
    }
    cs += [make() for name, make in pypi.items() if available(name)]
    cs.append(_serial(t))
    return cs


def opt_in(t: Throughput, tune: bool, what: str) -> list[Contender]:
    """An opt-in's row: ours with the task using it, and the tuned Pool its target names."""
    ours = _ours(t, "forkserver")
    ours.note = f"launcher mp backbone, default config, the task implements {what}"
    filt = ", parent-filtered" if t.pending else ""
    pool = stdlib(t, "pool", ONE[t.work], peers.pool_imap, tune, f"Pool.imap_unordered{filt}")
    return [ours, pool]


def info(t: Throughput) -> dict[str, int]:
    return {"items": t.n, "workers": WORKERS, "pending_for_peers": _peer_count(t)}
