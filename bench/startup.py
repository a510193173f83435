"""S1: wall time of a cold ``python`` process, from exec to exit.

``launch.py --help`` (Hydra composes the config to print the groups) and a
one-item job (compose, plan, two workers, records) are compared with the
floors any peer pays: an empty interpreter and a minimal ``@hydra.main`` app,
and with kagurazaka's CLI running the same one item on its mp backbone.
"Cold" means a new process each time; the OS page cache stays warm.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.harness import Sample
from bench.peers import kagurazaka_cli

REPO = Path(__file__).resolve().parent.parent
BENCH_CONF = REPO / "bench" / "conf"


def time_process(argv: list[str], timeout_s: float = 300) -> Sample:
    """Time ``argv`` inside ``bench.reaper``, which also reaps what it leaves behind."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    wrapped = [sys.executable, "-m", "bench.reaper", *argv]
    proc = subprocess.run(
        wrapped, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    if proc.returncode:
        raise RuntimeError(f"{argv} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return Sample(float(proc.stdout.strip().splitlines()[-1]))


def command(argv_of: Callable[[str], list[str]]) -> Callable[[], Callable[[], Sample]]:
    """A contender's ``prepare``: each repetition gets a fresh temporary job directory."""

    def prepare() -> Callable[[], Sample]:
        def runner() -> Sample:
            with tempfile.TemporaryDirectory(prefix="bench-s1-") as tmp:
                return time_process(argv_of(tmp))

        return runner

    return prepare


def python_pass(tmp: str) -> list[str]:
    return [sys.executable, "-c", "pass"]


def ours_help(tmp: str) -> list[str]:
    return [sys.executable, str(REPO / "launch.py"), "--help"]


def hydra_help(tmp: str) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "hydra_minimal.py"), "--help"]


def ours_job(tmp: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "launch.py"),
        f"hydra.searchpath=[file://{BENCH_CONF}]",
        "task=bench_one",
        "backbone.num_workers=2",
        "run.progress=off",
        f"hydra.run.dir={tmp}/job",
    ]


def hydra_job(tmp: str) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "hydra_minimal.py"), f"hydra.run.dir={tmp}/job"]


def kagurazaka_job(tmp: str) -> list[str]:
    task_file = REPO / "bench" / "kagurazaka_task.py"
    return [
        *kagurazaka_cli(),
        str(task_file),
        "BenchTask",
        "--backbone",
        "mp",
        "--num_process",
        "2",
        "--workload",
        "square",
        "--items",
        "1",
    ]
