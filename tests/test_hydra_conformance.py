"""Hydra's launcher conformance suites (tests/installed/test_hydra_launchers.py) run from
each install a user makes, editable (the README's first command) and a built wheel, by the
pytest of that install's fresh venv, in a folder outside the checkout, with no
``PYTHONPATH``: the suites' apps find our launchers only through the install."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, need_slurm
from tests.installs import Venv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SUITES = REPO / "tests" / "installed" / "test_hydra_launchers.py"


def run_suites(venv: Venv, tmp_path: Path, which: str) -> str:
    """Run the suites whose class names match ``which``; pytest's summary line."""
    shutil.copy(SUITES, tmp_path)
    r = venv(
        tmp_path,
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        which,
        SUITES.name,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    summary = r.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary, summary
    return summary


def test_local_launcher_suites_pass_from_the_install(venv: Venv, tmp_path: Path) -> None:
    run_suites(venv, tmp_path, "Local")


@pytest.mark.slurm
def test_slurm_launcher_suites_pass_from_the_install(venv: Venv, tmp_path: Path) -> None:
    need_slurm()
    run_suites(venv, tmp_path, "Slurm")
