"""Helpers to run real jobs as subprocesses and read what they leave behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.launchers.probe import no_controller

REPO = Path(__file__).resolve().parent.parent
TEST_CONF = Path(__file__).resolve().parent / "conf"


class Launch:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.n = 0

    def __call__(
        self,
        *args: str,
        multirun: bool = False,
        timeout: float = 120,
        env: dict | None = None,
        cwd: Path = REPO,
    ) -> subprocess.CompletedProcess:
        """Run ``launch.py`` with the test configs on the search path, in a fresh job dir."""
        self.n += 1
        self.job_dir = self.tmp / f"job{self.n}"
        argv = [
            sys.executable,
            str(REPO / "launch.py"),
            f"hydra.searchpath=[file://{TEST_CONF}]",
            "run.progress=log",
            *args,
        ]
        if multirun:
            if not any(a.startswith("hydra/launcher=") for a in args):
                argv.append("hydra/launcher=local")  # not SLURM, even where sbatch is on PATH
            argv += [f"hydra.sweep.dir={self.job_dir}", "-m"]
        else:
            argv.append(f"hydra.run.dir={self.job_dir}")
        return subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )


def need_slurm() -> None:
    """Skip, with the reason, where no SLURM controller answers; ``.ci/run`` starts one and
    sets ``REQUIRE_SLURM=1``, which turns that skip into a failure."""
    reason = no_controller()
    if reason is None:
        return
    message = (
        f"no SLURM cluster ({reason}); start one with "
        '`scripts/slurm/cluster.sh start && eval "$(scripts/slurm/cluster.sh env)"`'
    )
    if os.environ.get("REQUIRE_SLURM") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def launch(tmp_path: Path) -> Launch:
    return Launch(tmp_path)


def start(job_dir: Path, *args: str) -> subprocess.Popen:
    """``launch.py`` started as :class:`Launch` runs it, in ``job_dir``, for tests that signal
    or watch the job while it runs (output and errors together on ``stdout``)."""
    argv = [
        sys.executable,
        str(REPO / "launch.py"),
        f"hydra.searchpath=[file://{TEST_CONF}]",
        "run.progress=log",
        *args,
        f"hydra.run.dir={job_dir}",
    ]
    return subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def report(job_dir: Path) -> dict:
    return json.loads((job_dir / "report.json").read_text())


def failures(job_dir: Path) -> list[dict]:
    path = job_dir / "failures.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def files(root: Path) -> dict[str, bytes]:
    """Visible files under ``root`` by relative path (hidden temporaries, state excluded)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = p.read_bytes()
    return out


def status(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m launcher status DIR ...``, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "launcher", "status", str(directory), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
