"""L1: a cold ``python launch.py ... -m`` submitting N shards to SLURM, until they are queued.

Ours (``hydra/launcher=slurm``) submits one array and exits: its time is the
process's. hydra-submitit-launcher with Hydra's BasicSweeper over
``shard.idx=range(0,N)`` submits one array through submitit's ``map_array``
and then blocks until every job has ended, so its clock stops when
``map_array`` is done: when it has moved the last job's pickle to its
``_submitted.pkl`` name, after ``sbatch`` returned (read from that folder's
mtime); the process is then stopped. Both submit with ``--hold``, so no job
ever runs on the machine, and every job is cancelled by its run's unique
job name after the run, until ``squeue`` lists none of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.harness import Sample
from bench.startup import BENCH_CONF, REPO
from launcher.launchers.probe import no_controller as no_cluster  # noqa: F401 (suites)

PEER = "hydra-submitit-launcher"
TIMEOUT_S = 900.0  # the peer takes ~3.5 min for 1000 shards on 2 quiet cores
POLL_S = 0.1
START_CLUSTER = 'scripts/slurm/cluster.sh start && eval "$(scripts/slurm/cluster.sh env)"'


def _argv(n: int, tmp: str, *launcher: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "launch.py"),
        f"hydra.searchpath=[file://{BENCH_CONF}]",
        "task=bench_one",
        f"shard.num={n}",
        *launcher,
        "+hydra.launcher.additional_parameters.hold=true",  # queued, never run
        f"hydra.sweep.dir={tmp}/sweep",
        "-m",
    ]


def _env() -> dict[str, str]:
    """This environment, with the repository importable (``task=bench_one``) ahead of the rest."""
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def queued(name: str) -> int:
    """Array tasks named ``name`` that ``squeue`` lists (pending or running)."""
    r = subprocess.run(
        ["squeue", "-h", "-r", "-n", name, "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return len(r.stdout.split())


def cancel(name: str, timeout_s: float = 60.0) -> None:
    """``scancel`` every job named ``name`` and wait until ``squeue`` lists none of them."""
    subprocess.run(["scancel", "-n", name], capture_output=True, check=True, timeout=60)
    deadline = time.monotonic() + timeout_s
    while queued(name):
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs named {name} still queued {timeout_s:.0f}s after scancel")
        time.sleep(0.2)


def ours(n: int, name: str, tmp: str) -> float:
    """Seconds from exec to exit of our submit-and-return sweep."""
    argv = _argv(n, tmp, "hydra/launcher=slurm", f"hydra.launcher.job_name={name}")
    t0 = time.perf_counter()
    r = subprocess.run(
        argv, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    seconds = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"ours exited {r.returncode}:\n{(r.stdout + r.stderr)[-2000:]}")
    return seconds


def _submitted_at(folder: Path, n: int) -> float | None:
    """When submitit moved the last job's pickle into place: ``map_array``'s last step."""
    for job in folder.glob(f"*_{n - 1}"):
        if (job / f"{job.name}_submitted.pkl").exists():
            return job.stat().st_mtime
    return None


def peer(n: int, name: str, tmp: str) -> float:
    """Seconds from exec until submitit has submitted all ``n`` jobs; then it is stopped."""
    argv = _argv(
        n, tmp, "hydra/sweeper=basic", f"shard.idx=range(0,{n})",
        "hydra/launcher=submitit_slurm", f"hydra.launcher.name={name}",
    )  # fmt: skip
    log_path = Path(tmp) / "peer.log"  # a file, not a pipe: it logs a line per job
    folder = Path(tmp) / "sweep" / ".submitit"
    with open(log_path, "wb") as log:
        t0 = time.time()  # the wall clock, to compare with a file's mtime
        proc = subprocess.Popen(
            argv, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            while (done := _submitted_at(folder, n)) is None:
                if proc.poll() is not None or time.time() - t0 > TIMEOUT_S:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"{PEER} did not submit {n} jobs (exit {proc.poll()}):\n{tail}"
                    )
                time.sleep(POLL_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # its session: submitit's squeue/sacct too
            proc.wait()
    return done - t0


def contender(run: Callable[[int, str, str], float], n: int) -> Callable[[], Callable[[], Sample]]:
    """A contender's ``prepare``: each run submits under a fresh job name, checks that all ``n``
    array tasks are queued, then cancels them whatever happened."""

    def prepare() -> Callable[[], Sample]:
        def runner() -> Sample:
            name = f"bench-l1-{uuid.uuid4().hex[:12]}"
            with tempfile.TemporaryDirectory(prefix="bench-l1-") as tmp:
                try:
                    seconds = run(n, name, tmp)
                    if (count := queued(name)) != n:
                        raise RuntimeError(f"{count} array tasks queued as {name}, expected {n}")
                finally:
                    cancel(name)
            return Sample(seconds, {"shards": n})

        return runner

    return prepare
