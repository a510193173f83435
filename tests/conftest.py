"""Helpers to run real jobs as subprocesses and read what they leave behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from launcher.launchers.probe import no_controller

if TYPE_CHECKING:
    from tests.installs import Venv

REPO = Path(__file__).resolve().parent.parent
TEST_CONF = Path(__file__).resolve().parent / "conf"

# Tests of an installed shard-launcher, run from outside the checkout by the tests that
# install it (tests/test_hydra_conformance.py), never from here.
collect_ignore = ["installed"]


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
        if multirun:
            if not any(a.startswith("hydra/launcher=") for a in args):
                args = (*args, "hydra/launcher=local")  # not SLURM, even where sbatch is on PATH
            argv = launch_argv(*args, f"hydra.sweep.dir={self.job_dir}", "-m")
        else:
            argv = launch_argv(*args, job_dir=self.job_dir)
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


# Modules whose tests share one costly module-scoped fixture (a model's run): with
# pytest-xdist each runs on one worker, so the fixture is made once. test_install's built
# wheel and venvs serve its SLURM test too, so that whole module joins the SLURM group, with
# test_hydra_conformance, which uses the same venvs (session fixtures below).
MODULE_GROUPS = {
    "test_embed": "test_embed",
    "test_install": "slurm",
    "test_hydra_conformance": "slurm",
    "test_ocr": "test_ocr",
    "test_ocr_model": "test_ocr_model",
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for ``--dist loadgroup`` (pyproject's addopts): the SLURM tests share one
    cluster's queue and nodes, so they run one after another on one worker, as they do
    without xdist; each module of :data:`MODULE_GROUPS` runs whole in its group."""
    for item in items:
        module = item.nodeid.partition("::")[0].rpartition("/")[2].removesuffix(".py")
        if item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
        elif module in MODULE_GROUPS:
            item.add_marker(pytest.mark.xdist_group(MODULE_GROUPS[module]))


@pytest.fixture
def launch(tmp_path: Path) -> Launch:
    return Launch(tmp_path)


def launch_argv(*args: str, job_dir: Path | None = None) -> list[str]:
    """The command line of ``launch.py`` with the test configs on the search path, run in
    ``job_dir`` (Hydra's default run dir when None)."""
    run_dir = [f"hydra.run.dir={job_dir}"] if job_dir else []
    return [
        sys.executable,
        str(REPO / "launch.py"),
        f"hydra.searchpath=[file://{TEST_CONF}]",
        "run.progress=log",
        *args,
        *run_dir,
    ]


def start(job_dir: Path, *args: str) -> subprocess.Popen:
    """``launch.py`` started in the background as :class:`Launch` runs it, in ``job_dir``,
    for tests that signal or watch the job while it runs (output and errors together on
    ``stdout``). It leads a session of its own, so ``os.killpg(proc.pid, ...)`` signals it
    and its workers as SLURM would, and never the tests."""
    return subprocess.Popen(
        launch_argv(*args, job_dir=job_dir),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
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


@pytest.fixture(scope="session")
def install_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean copy of the checkout, which both installs are made from."""
    from tests.installs import clean_copy

    return clean_copy(tmp_path_factory.mktemp("install") / "src")


@pytest.fixture(scope="session")
def wheel(install_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of that copy, built once per session."""
    from tests.installs import build_wheel

    return build_wheel(install_source, tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session", params=["editable", "wheel"])
def venv(
    request: pytest.FixtureRequest, install_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> Venv:
    """A fresh venv with shard-launcher installed editable (the README's first command)
    or from the wheel: one of each per session."""
    from tests.installs import editable_venv, wheel_venv

    root = tmp_path_factory.mktemp(f"venv-{request.param}")
    if request.param == "editable":
        return editable_venv(root, install_source)
    return wheel_venv(root, install_source, request.getfixturevalue("wheel"))


@pytest.fixture(scope="session")
def s3_server():
    """One real S3 server (moto's, on 127.0.0.1) per test process, started here."""
    from tests.s3_server import S3Server

    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The S3 server, emptied, with this process (and the jobs it starts) pointed at it."""
    import fsspec

    s3_server.reset()
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    yield s3_server
    fs.invalidate_cache()
