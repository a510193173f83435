"""``--help`` lists what a user can choose."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_help_lists_groups_and_run_options():
    r = subprocess.run(
        [sys.executable, "launch.py", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0
    assert re.search(r"^task: .*\bthumbnail\b", r.stdout, re.M)
    for text in (
        "backbone: auto, mp, torch",
        "shard: hard, soft",
        "run.item_timeout_s",
        "run.retry_failed",
        "Exit codes",
    ):
        assert text in r.stdout


def test_python_dash_m_launcher_runs_the_same_app():
    r = subprocess.run(
        [sys.executable, "-m", "launcher", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0 and re.search(r"^task: .*\bthumbnail\b", r.stdout, re.M)


def test_the_fast_help_is_the_page_hydra_prints():
    def page(*extra: str) -> str:
        cmd = [sys.executable, "launch.py", "--help", *extra]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout

    assert page() == page("hydra.job.name=job")  # any override sends --help through Hydra
