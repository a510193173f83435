"""The workloads and, for each, its contenders and sizes (quick or full).

A :class:`Workload` builds its contenders for a mode; building is also where
the peers' chunk sizes are tuned, before any measured repetition. A workload
that cannot run here (L1 without a SLURM cluster) says why in ``Built.skip``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import fixtures, peers, planning, startup, throughput
from bench.harness import Contender, Sample, timed
from bench.memory import MIB, peak_rss
from bench.throughput import WORKERS, Throughput, available, contenders, info, opt_in
from bench.workloads import (
    DONE_EVERY,
    ONE,
    Naps,
    ResumeByBlock,
    ResumeInMemory,
    ResumeOnDisk,
    Spins,
    Squares,
    SquaresByChunk,
    done_set,
    file_items,
    numbers,
)
from launcher.task import Task


@dataclass
class Mode:
    quick: bool
    reps: int | None = None  # None: the workload's default for the mode

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


@dataclass
class Built:
    contenders: list[Contender]
    info: dict[str, Any] = field(default_factory=dict)
    reps: int | None = None  # a workload-specific repetition count (S1: 10)
    cpu_bound: bool = True  # False: other processes do not move the figure (M1), never retry
    skip: str | None = None  # why this workload cannot run here: it is reported, not run


@dataclass
class Workload:
    name: str
    title: str
    unit: str
    higher_is_better: bool
    build: Callable[[Mode], Built]


# -- W1-W4: throughput ---------------------------------------------------------------------------


def w1(mode: Mode) -> Built:
    n = mode.pick(20_000, 200_000)
    t = Throughput(
        n, "square", lambda: Squares(n), ["--workload", "square", "--items", str(n)],
        lambda: numbers(n), slow_cap=mode.pick(None, 20_000),
    )  # fmt: skip
    return Built(contenders(t, tune=not mode.quick), info(t))


def w2(mode: Mode) -> Built:
    n = mode.pick(2_000, 20_000)
    t = Throughput(
        n, "spin", lambda: Spins(n), ["--workload", "spin", "--items", str(n)], lambda: numbers(n)
    )
    return Built(contenders(t, tune=not mode.quick), info(t))


def w3(mode: Mode) -> Built:
    n = mode.pick(300, 2_000)
    t = Throughput(
        n, "nap", lambda: Naps(n), ["--workload", "nap", "--items", str(n)], lambda: numbers(n)
    )
    return Built(contenders(t, tune=not mode.quick), info(t))


def resume_set(mode: Mode, task: Callable[[int, frozenset[int]], Task]) -> Throughput:
    """W4a's items and done set; Pool filters in the parent with the same set."""
    n = mode.pick(20_000, 100_000)
    done = done_set(n)
    args = ["--workload", "resume-set", "--items", str(n)]
    return Throughput(
        n, "square", lambda: task(n, done), args,
        lambda: numbers(n), pending=lambda it: it["x"] not in done,
    )  # fmt: skip


def w4a(mode: Mode) -> Built:
    t = resume_set(mode, ResumeInMemory)
    return Built(contenders(t, tune=not mode.quick), info(t))


def w4b(mode: Mode) -> Built:
    n = mode.pick(20_000, 100_000)
    root = fixtures.resume_outputs(n)
    exists = os.path.exists
    args = ["--workload", "resume-files", "--items", str(n), "--out-root", root]
    t = Throughput(
        n, "square_file", lambda: ResumeOnDisk(root, n), args,
        lambda: file_items(root, n), pending=lambda it: not exists(it["output"]),
    )  # fmt: skip
    in_worker = Throughput(n, "square_unless_exists", t.task, args, t.items)
    extra = throughput.stdlib(
        in_worker, "pool/in-worker", ONE["square_unless_exists"], peers.pool_imap, not mode.quick,
        "Pool.imap_unordered, os.path.exists in the workers",
    )  # fmt: skip
    return Built(contenders(t, not mode.quick, [extra]), {**info(t), "outputs": root})


# -- W1-opt, W4a-opt: the opt-in hooks against the same tuned Pool -------------------------------


def w1_opt(mode: Mode) -> Built:
    n = mode.pick(20_000, 200_000)
    args = ["--workload", "square", "--items", str(n)]
    t = Throughput(n, "square", lambda: SquaresByChunk(n), args, lambda: numbers(n))
    return Built(opt_in(t, not mode.quick, "process_chunk(items)"), info(t))


def w4a_opt(mode: Mode) -> Built:
    t = resume_set(mode, ResumeByBlock)
    what = "unfinished(items), the done set planning_only"
    return Built(opt_in(t, not mode.quick, what), info(t))


# -- W5: a few slow items on many workers ---------------------------------------------------------


def w5(mode: Mode) -> Built:
    """Every worker busy until the end: the ideal is one item's time (``n`` = ``workers``)."""
    from bench.ours import run_job, warm_forkserver
    from bench.workloads import Dozes, one_doze, slow_items

    workers = n = 16
    seconds = mode.pick(0.25, 2.0)

    def wall(run: Callable[[], int]) -> Sample:
        s = timed(n, run)
        return Sample(s.extra["seconds"], {"items": n})

    def ours() -> Callable[[], Sample]:
        task = Dozes(n, seconds)
        warm_forkserver(task)
        return lambda: wall(lambda: run_job(task, workers=workers).stats.total)

    def pool() -> Callable[[], Sample]:
        return lambda: wall(lambda: peers.pool_imap(one_doze, slow_items(n, seconds), 1, workers))

    cs = [
        Contender("ours", ours, f"launcher mp backbone, {workers} workers, default config"),
        Contender("pool", pool, f"Pool.imap_unordered, {workers} workers, chunksize 1"),
    ]
    info = {"items": n, "workers": workers, "item_s": seconds, "ideal_s": seconds}
    return Built(cs, info, reps=mode.reps or mode.pick(2, 3), cpu_bound=False)


# -- M1: memory -----------------------------------------------------------------------------------


def m1(mode: Mode) -> Built:
    n = mode.pick(100_000, 2_000_000)
    caps = {  # the slow peers on fewer items: less memory for them, never more
        "kagurazaka": mode.pick(100_000, 500_000),
        "pqdm": mode.pick(10_000, 500_000),
        "mtasklite": mode.pick(10_000, 200_000),
    }
    chunk = peers.chunk_heuristic(mode.pick(20_000, 200_000), WORKERS)  # W1's heuristic, not n's

    def contender(name: str) -> Contender:
        count = min(n, caps.get(name, n))

        def prepare() -> Callable[[], Sample]:
            argv = [sys.executable, "-m", "bench.memchild", name, str(count), str(chunk)]

            def sample() -> Sample:
                peak, seconds = peak_rss(argv)
                return Sample(round(peak / MIB, 1), {"items": count, "seconds": round(seconds, 3)})

            return sample

        note = f"{count} items" + (f", chunksize {chunk}" if name in ("pool", "ppe") else "")
        return Contender(name, prepare, note)

    names = ["ours", "pool", "ppe", "kagurazaka", "pqdm", "mtasklite", "serial"]
    names = [x for x in names if available(x)]
    info = {"items": n, "caps": caps}
    reps = mode.reps or mode.pick(1, 2)
    return Built([contender(x) for x in names], info, reps=reps, cpu_bound=False)


# -- S1: startup ----------------------------------------------------------------------------------


def s1_help(mode: Mode) -> Built:
    cs = [
        Contender("ours", startup.command(startup.ours_help), "python launch.py --help"),
        Contender(
            "hydra-minimal", startup.command(startup.hydra_help), "smallest @hydra.main, --help"
        ),
        Contender("python", startup.command(startup.python_pass), "python -c pass"),
    ]
    return Built(cs, {}, reps=mode.reps or mode.pick(3, 10))


def s1_job(mode: Mode) -> Built:
    cs = [
        Contender("ours", startup.command(startup.ours_job), "launch.py task=bench_one, 2 workers"),
        Contender(
            "hydra-minimal", startup.command(startup.hydra_job), "smallest @hydra.main, 1 item"
        ),
    ]
    if available("kagurazaka"):
        cs.append(
            Contender("kagurazaka", startup.command(startup.kagurazaka_job), "its CLI, 1 item")
        )
    cs.append(Contender("python", startup.command(startup.python_pass), "python -c pass"))
    return Built(cs, {}, reps=mode.reps or mode.pick(3, 10))


# -- P1: planning ---------------------------------------------------------------------------------


def p1(mode: Mode) -> Built:
    n = mode.pick(20_000, 1_000_000)
    in_root, out_root = fixtures.planning_tree(n)
    pending = n - int(n * 0.9)
    cs = [
        Contender("ours", lambda: planning.ours(in_root, out_root, pending), "Plan + output mode"),
        Contender(
            "exists-scan",
            lambda: planning.scan(in_root, out_root, pending),
            "walk + os.path.exists",
        ),
    ]
    return Built(
        cs, {"files": n, "pending": pending, "tree": in_root}, reps=mode.reps or mode.pick(3, 5)
    )


# -- P2: planning a big generator, time and memory -----------------------------------------------


def _p2(measure: str) -> Callable[[Mode], Built]:
    """P2 (seconds to plan everything) or P2-mem (peak RSS of that process): one fresh
    ``python -m bench.planchild`` per contender and repetition."""

    def build(mode: Mode) -> Built:
        from bench import planchild

        n = mode.pick(200_000, 10_000_000)
        expect = -(-n // DONE_EVERY)
        notes = {
            "ours": "Plan, is_executed(**item) per item",
            "ours[unfinished]": "Plan, the task's unfinished(items) per block",
            "loop": "for item in generator: if not done: count (inline test)",
        }

        def contender(name: str) -> Contender:
            def prepare() -> Callable[[], Sample]:
                def sample() -> Sample:
                    with tempfile.TemporaryDirectory(prefix="bench-p2-") as tmp:
                        out = os.path.join(tmp, "result.json")
                        argv = [sys.executable, "-m", "bench.planchild", name, str(n), out]
                        peak, wall = peak_rss(argv)
                        with open(out) as f:
                            got = json.load(f)
                    if got["pending"] != expect:
                        raise RuntimeError(f"P2 {name}: {got['pending']} pending, not {expect}")
                    mib, seconds = round(peak / MIB, 1), got["seconds"]
                    extra = {"items": n, "seconds": round(seconds, 3), "peak_mib": mib}
                    return Sample(seconds if measure == "s" else mib, extra)

                return sample

            return Contender(name, prepare, notes[name])

        cs = [contender(name) for name in planchild.CONTENDERS]
        info = {"items": n, "pending": expect}
        return Built(cs, info, reps=mode.reps or mode.pick(2, 3), cpu_bound=measure == "s")

    return build


# -- T1: the torch backbone ----------------------------------------------------------------------


def _t1(step_s: float, note: str) -> Callable[[Mode], Built]:
    def build(mode: Mode) -> Built:
        import torch  # noqa: F401 - imported untimed: ours' clock would count a first import

        from bench import torch_loop

        n = mode.pick(2_048, 20_480)
        workers = 1
        cs = [
            Contender(
                "ours", lambda: lambda: torch_loop.ours(n, step_s, workers), "torch backbone"
            ),
            Contender("hand-loop", lambda: lambda: torch_loop.hand_loop(n, step_s, workers), note),
            Contender(
                "hand-loop[threads]",
                lambda: lambda: torch_loop.hand_loop_sized(n, step_s, workers),
                f"{note}, torch's threads set as the backbone sets them",
            ),
        ]
        return Built(cs, {"items": n, "batch_size": torch_loop.BATCH, "step_s": step_s})

    return build


def _t1_cuda(write: bool) -> Callable[[Mode], Built]:
    def build(mode: Mode) -> Built:
        from bench import cuda_loop

        reason = cuda_loop.no_cuda()
        if reason:
            return Built([], skip=f"{reason}; CUDA figures stay unmeasured until a GPU runs them")
        n = mode.pick(1_024, 16_384)
        docs = cuda_loop.sentences(n)
        what = "writes one .npy per item" if write else "results dropped"
        cs = [
            Contender("ours", cuda_loop.contender(cuda_loop.ours, docs, write), "torch backbone"),
            Contender(
                "hand-loop",
                cuda_loop.contender(cuda_loop.hand_loop, docs, write),
                f"for batch in DataLoader: model(batch); {what}",
            ),
        ]
        info = {
            "items": n,
            "batch_size": cuda_loop.BATCH,
            "loader_workers": cuda_loop.WORKERS,
            "docs": docs,
            "write": write,
        }
        return Built(cs, info, reps=mode.reps or mode.pick(2, 5))

    return build


# -- T2, T3: the main jobs at default settings against a user's own script -----------------------


def _t2(where: str) -> Callable[[Mode], Built]:
    """T2 (``where`` = ``cpu``, ``1cpu`` or ``cuda``): ``task=embed`` against the
    SentenceTransformer.encode script, whole processes, documents of 6-160 words."""

    def build(mode: Mode) -> Built:
        from bench import cuda_loop, documents, user_jobs

        reason = cuda_loop.no_cuda() if where == "cuda" else None
        if reason:
            return Built([], skip=f"{reason}; CUDA figures stay unmeasured until a GPU runs them")
        n = mode.pick(200, 2_000) if where != "cuda" else mode.pick(2_000, 100_000)
        docs = documents.mixed_docs(n)
        ours, script = user_jobs.embed_ours(docs), user_jobs.embed_script(docs)
        if where == "1cpu":
            ours, script = user_jobs.on_cpu0(ours), user_jobs.on_cpu0(script)
        gpu = where == "cuda"
        cs = [
            Contender(
                "ours", user_jobs.command(ours, n, ".npy", gpu), "launch.py task=embed, defaults"
            ),
            Contender(
                "st-script",
                user_jobs.command(script, n, ".npy", gpu),
                "SentenceTransformer.encode(batch_size=32, normalize_embeddings=True) + np.save",
            ),
        ]
        return Built(
            cs, {"docs": n, "file": docs, "where": where}, reps=mode.reps or mode.pick(1, 3)
        )

    return build


def t2_inv(mode: Mode) -> Built:
    """T2-inv: the embed task's batch-invariant model calls against padding to the longest."""
    import torch  # noqa: F401 - imported untimed

    from bench import documents, invariance

    n = mode.pick(160, 640)
    docs = documents.mixed_docs(2_000)
    cs = [
        Contender(
            "ours", invariance.contender(invariance.invariant, docs, n), "batch-invariant calls"
        ),
        Contender(
            "pad-to-longest",
            invariance.contender(invariance.longest, docs, n),
            "one call per batch, padded to its longest (sentence-transformers)",
        ),
    ]
    return Built(cs, {"docs": n, "batch_size": invariance.BATCH}, reps=mode.reps or mode.pick(1, 3))


def _t3(where: str) -> Callable[[Mode], Built]:
    """T3: ``task=ocr`` against a plain loop over the package's recognizer, whole processes,
    the bundled pages several times over."""

    def build(mode: Mode) -> Built:
        from bench import cuda_loop, documents, user_jobs

        reason = cuda_loop.no_cuda() if where == "cuda" else None
        if reason:
            return Built([], skip=f"{reason}; CUDA figures stay unmeasured until a GPU runs them")
        copies = mode.pick(1, 3) if where != "cuda" else mode.pick(3, 30)
        pages = documents.pages(copies)
        n = len(os.listdir(pages))
        gpu = where == "cuda"
        cs = [
            Contender(
                "ours",
                user_jobs.command(user_jobs.ocr_ours(pages), n, ".txt", gpu),
                "launch.py task=ocr, defaults",
            ),
            Contender(
                "hand-loop",
                user_jobs.command(user_jobs.ocr_loop(pages), n, ".txt", gpu),
                "per page: load, find_lines, line_tensors, collate_lines, model, decode, write",
            ),
        ]
        return Built(cs, {"pages": n, "folder": pages}, reps=mode.reps or mode.pick(1, 3))

    return build


# -- ST1: reading a big sweep's status -----------------------------------------------------------


def st1(mode: Mode) -> Built:
    from bench import status_read

    n = 1_000  # the target's size, quick or not: the whole point of the row
    sweep = status_read.fresh_sweep(n)
    cs = [
        Contender("ours", status_read.command(status_read.status_argv(sweep)), "grid"),
        Contender(
            "ours[json]", status_read.command(status_read.status_argv(sweep, "--json")), "--json"
        ),
        Contender("python", status_read.command([sys.executable, "-c", "pass"]), "python -c pass"),
    ]
    return Built(cs, {"shards": n, "sweep": sweep}, reps=mode.reps or mode.pick(3, 10))


# -- ST2: the status page of a big sweep, timed in a browser --------------------------------------


def _st2(what: str) -> Callable[[Mode], Built]:
    def build(mode: Mode) -> Built:
        from bench import status_page
        from bench.browser import no_browser

        reason = no_browser()
        if reason:
            return Built([], skip=f"no browser: {reason}")
        sweep = status_page.fresh_sweep()
        cs = [Contender("ours", status_page.served(what, sweep), f"status --serve, {what}")]
        if what == "paint":
            cs.append(Contender("ours[html]", status_page.snapshot(sweep), "status --html file"))
        return Built(cs, {"shards": status_page.SHARDS}, reps=mode.reps or mode.pick(2, 5))

    return build


# -- O1: objects on an S3 server ----------------------------------------------------------------


def o1(mode: Mode) -> Built:
    try:
        from bench import objects
    except ImportError as e:
        return Built([], skip=f"no S3 test server ({e}); `pip install -e '.[test]'`")
    n = mode.pick(1_000, 10_000)
    _, pending = objects.server(n)
    cs = [
        Contender("ours", lambda: objects.ours(pending), "Plan over s3:// prefixes"),
        Contender("head-loop", lambda: objects.head_loop(pending), "listing + fs.exists per item"),
    ]
    return Built(cs, {"objects": n, "pending": pending}, reps=mode.reps or mode.pick(2, 3))


# -- L1: SLURM submission -------------------------------------------------------------------------


def l1(mode: Mode) -> Built:
    from bench import submit

    reason = submit.no_cluster()
    if reason:
        return Built([], skip=f"no SLURM cluster ({reason}); start one: `{submit.START_CLUSTER}`")
    n = mode.pick(20, 1_000)
    cs = [Contender("ours", submit.contender(submit.ours, n), "hydra/launcher=slurm, one sbatch")]
    if available(submit.PEER):
        note = "hydra/sweeper=basic shard.idx=range(0,N) hydra/launcher=submitit_slurm"
        cs.append(Contender(submit.PEER, submit.contender(submit.peer, n), note))
    return Built(cs, {"shards": n}, reps=mode.reps or mode.pick(2, 3))


WORKLOADS = [
    Workload("W1", "tiny items: x*x", "items/s", True, w1),
    Workload("W2", "CPU: ~0.2 ms of pure Python per item", "items/s", True, w2),
    Workload("W3", "I/O-ish: a 2 ms sleep per item", "items/s", True, w3),
    Workload(
        "W4a", f"resume, done-set in memory ({100 - 100 // DONE_EVERY}% done)", "items/s", True, w4a
    ),
    Workload("W4b", "resume, output files on disk (90% done)", "items/s", True, w4b),
    Workload("W1-opt", "tiny items, the task's process_chunk (opt-in)", "items/s", True, w1_opt),
    Workload(
        "W4a-opt", "resume, done-set, the task's unfinished (opt-in)", "items/s", True, w4a_opt
    ),
    Workload("W5", "slow items: 16 waits on 16 workers, wall time", "s", False, w5),
    Workload("M1", "memory: a generator of items, peak RSS of the process tree", "MiB", False, m1),
    Workload("S1-help", "startup: --help, cold process", "s", False, s1_help),
    Workload("S1-job", "startup: a one-item job, cold process", "s", False, s1_job),
    Workload(
        "P1", "planning: time to the first pending item, 90% of outputs present", "s", False, p1
    ),
    Workload("P2", "planning a generator, 90% done: time to plan it all", "s", False, _p2("s")),
    Workload("P2-mem", "planning a generator, 90% done: peak RSS", "MiB", False, _p2("MiB")),
    Workload(
        "T1a",
        "torch: a small CPU model, no postprocess cost",
        "items/s",
        True,
        _t1(0.0, "for batch in DataLoader: model(batch)"),
    ),
    Workload(
        "T1b",
        "torch: postprocess as slow as inference (5 ms each per batch)",
        "items/s",
        True,
        _t1(0.005, "sequential: infer, then postprocess"),
    ),
    Workload(
        "T1a-cuda",
        "torch on CUDA: MiniLM embeddings, results dropped",
        "items/s",
        True,
        _t1_cuda(write=False),
    ),
    Workload(
        "T1b-cuda",
        "torch on CUDA: MiniLM embeddings, one .npy written per item",
        "items/s",
        True,
        _t1_cuda(write=True),
    ),
    Workload(
        "T2",
        "task=embed vs a SentenceTransformer.encode script, whole process",
        "s",
        False,
        _t2("cpu"),
    ),
    Workload("T2-1cpu", "T2 under taskset -c 0", "s", False, _t2("1cpu")),
    Workload(
        "T2-inv", "embed: batch invariance's cost, model CPU seconds, 1 thread", "s", False, t2_inv
    ),
    Workload("T2-cuda", "T2 on CUDA, 100k documents", "s", False, _t2("cuda")),
    Workload(
        "T3", "task=ocr vs a hand loop over the recognizer, whole process", "s", False, _t3("cpu")
    ),
    Workload("T3-cuda", "T3 on CUDA", "s", False, _t3("cuda")),
    Workload(
        "O1", "objects: listing and done-checking on a local S3 server (90% done)", "s", False, o1
    ),
    Workload("L1", "SLURM submission: N shards from a cold launch.py -m", "s", False, l1),
    Workload("ST1", "status: reading a 1000-shard sweep, cold process", "s", False, st1),
    Workload(
        "ST2-paint",
        "status page, 10,000 shards: first paint in the browser",
        "s",
        False,
        _st2("paint"),
    ),  # fmt: skip
    Workload(
        "ST2-refresh",
        "status page, 10,000 shards: one refresh in the browser",
        "s",
        False,
        _st2("refresh"),
    ),  # fmt: skip
]
