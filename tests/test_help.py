"""``--help`` lists what a user can choose."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import launcher
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


def run_in(cwd, *args: str) -> subprocess.CompletedProcess:
    """``python -m launcher ARGS`` from ``cwd``, this checkout's package imported."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "launcher", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_projects_own_conf_is_listed_and_the_fast_page_stays_hydras(tmp_path):
    (tmp_path / "conf" / "task").mkdir(parents=True)
    (tmp_path / "conf" / "task" / "mine.yaml").write_text("_target_: tasks.mine.Mine\n")
    for group in ("db", "task/nested", "hydra/job_logging"):  # Hydra lists the first two
        (tmp_path / "conf" / group).mkdir(parents=True)
        (tmp_path / "conf" / group / "pg.yaml").write_text("host: x\n")
    fast = run_in(tmp_path, "--help")
    assert fast.returncode == 0, fast.stderr
    assert re.search(r"^task: .*\bmine\b.*\bthumbnail\b", fast.stdout, re.M)
    assert re.search(r"^db: pg$", fast.stdout, re.M)
    assert re.search(r"^task/nested: pg$", fast.stdout, re.M)
    assert fast.stdout == run_in(tmp_path, "--help", "hydra.job.name=job").stdout


def test_version_names_ours_and_hydras():
    from importlib.metadata import version

    r = run_in(REPO, "--version")
    assert r.returncode == 0
    assert (
        r.stdout.strip() == f"shard-launcher {launcher.__version__} (Hydra {version('hydra-core')})"
    )


def test_task_help_shows_the_tasks_keys_with_their_defaults(tmp_path):
    r = run_in(REPO, "task=thumbnail", "--help")
    assert r.returncode == 0, r.stderr
    keys = r.stdout.split("== task=thumbnail", 1)[1]
    for line in ("size: 128", "format: jpeg", "quality: 85", "_target_: launcher.examples"):
        assert line in keys
    assert "backbone: auto, mp, torch" in r.stdout  # the page itself comes first
    r = run_in(REPO, "--help", "task=wordcount")  # the checkout's own conf/task/
    assert r.returncode == 0 and "input_dir: ???" in r.stdout, r.stderr
    r = run_in(tmp_path, "task=nosuch", "--help")
    assert r.returncode == 2 and "task/nosuch" in r.stderr and r.stdout == ""


def test_multirun_flag_anywhere_among_the_overrides(tmp_path):
    sweep = tmp_path / "sweep"
    for flag_at in (0, 2, 4):
        args = ["task=thumbnail", "shard.num=3", "hydra/launcher=local", f"hydra.sweep.dir={sweep}"]
        args.insert(flag_at, "-m" if flag_at != 2 else "--multirun")
        r = run_in(tmp_path, *args, "hydra.launcher.dry_run=true")
        assert r.returncode == 0, r.stderr
        assert "launch 3 shard(s): 0-2" in r.stdout + r.stderr


def test_another_config_dir_with_config_dir_or_searchpath(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    (books / "a.txt").write_text("three words here")
    elsewhere = tmp_path / "elsewhere"  # no conf/ here: the checkout's is named explicitly
    elsewhere.mkdir()
    run = [f"task.input_dir={books}", "run.progress=off"]
    for i, how in enumerate(
        (["-cd", str(REPO / "conf")], [f"hydra.searchpath=[file://{REPO}/conf]"])
    ):
        out = tmp_path / f"out{i}"
        r = run_in(elsewhere, *how, "task=wordcount", *run, f"task.output_dir={out}")
        assert r.returncode == 0, r.stdout + r.stderr
        assert (out / "a.txt.count").read_text() == "3\n"
    r = run_in(elsewhere, "--config-dir", str(REPO / "conf"), "--help")
    assert re.search(r"^task: .*\bwordcount\b", r.stdout, re.M), r.stdout + r.stderr
