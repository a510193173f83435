"""O1: listing and done-checking objects on an S3 server (moto's, on 127.0.0.1).

Ours is the launcher's :class:`~launcher.plan.Plan` over ``s3://`` input and
output prefixes: one paginated listing of the inputs, one of the outputs, the
done check answered from it. The peer is what a script does without a planner:
the same listing of the inputs, then ``fs.exists(output)`` per item, which is
one HEAD request per object once nothing is cached. Both plan everything; the
value is the seconds it took.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from bench.harness import Sample
from bench.ours import WHOLE
from bench.workloads import PlanOnly
from launcher import AppendExtension, ByExtensions
from launcher.driving import Driven
from launcher.plan import Plan
from launcher.stats import Stats

BUCKET = "bench"
DONE_EVERY = 10  # one item in ten is pending: 90% of outputs present, as in P1


def server(n: int) -> tuple[Any, int]:
    """A local S3 server holding ``n`` inputs and the outputs of 90% of them; this process
    is pointed at it (``AWS_ENDPOINT_URL``). Returns the server and the pending count."""
    import fsspec

    from tests.s3_server import S3Server

    s3 = S3Server()
    os.environ.update(s3.env())
    fs = fsspec.filesystem("s3")
    fs.mkdir(BUCKET)
    objects = {f"{BUCKET}/in/{i:06d}.txt": b"" for i in range(n)}
    objects.update({f"{BUCKET}/out/{i:06d}.txt.out": b"" for i in range(n) if i % DONE_EVERY})
    for start in range(0, len(objects), 2000):
        fs.pipe(dict(list(objects.items())[start : start + 2000]))
    return s3, -(-n // DONE_EVERY)


def ours(expect_pending: int) -> Callable[[], Sample]:
    def runner() -> Sample:
        t0 = time.perf_counter()
        task = PlanOnly(
            input_dir=f"s3://{BUCKET}/in",
            output_dir=f"s3://{BUCKET}/out",
            input=ByExtensions([".txt"]),
            output=AppendExtension(".out"),
        )
        plan = Plan(Driven.of(task), WHOLE, Stats())
        pending = 0
        while batch := plan.take(4096):
            pending += len(batch)
        return _sample(time.perf_counter() - t0, pending, expect_pending)

    return runner


def head_loop(expect_pending: int) -> Callable[[], Sample]:
    def runner() -> Sample:
        import fsspec

        fs = fsspec.filesystem("s3")
        fs.invalidate_cache()
        t0 = time.perf_counter()
        pending = 0
        for key in fs.find(f"{BUCKET}/in"):
            if not key.endswith(".txt"):
                continue
            name = key.rpartition("/")[2]
            if not fs.exists(f"{BUCKET}/out/{name}.out"):
                pending += 1
        return _sample(time.perf_counter() - t0, pending, expect_pending)

    return runner


def _sample(seconds: float, pending: int, expect: int) -> Sample:
    if pending != expect:
        raise RuntimeError(f"O1: found {pending} pending items, expected {expect}")
    return Sample(seconds, {"plan_all_s": round(seconds, 4)})
