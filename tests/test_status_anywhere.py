"""Issue 20, status and the sweep from elsewhere: a sweep submitted with a relative
``task.output_dir`` reads the same from any working directory, and a local sweep stopped
by SIGTERM says so (exit 143, shards never started shown so). Real local sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, launch_argv
from tests.test_trust import wait_for


def test_status_of_a_sweep_with_relative_outputs_is_the_same_from_anywhere(tmp_path):
    submit, sweep = tmp_path / "project", tmp_path / "sweep"
    submit.mkdir()
    args = [
        "task=squares",
        "task.output_dir=outputs/squares",
        "task.n=20",
        "shard.num=2",
        "hydra/launcher=local",
        "hydra.launcher.wait=true",
        f"hydra.sweep.dir={sweep}",
        "-m",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the test task, from another directory
    r = subprocess.run(launch_argv(*args), cwd=submit, capture_output=True, text=True,
                       timeout=180, env=env)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((submit / "outputs" / "squares").glob("*.txt"))) == 20
    answers = []
    for where in (submit, REPO, tmp_path):
        s = subprocess.run([sys.executable, "-m", "launcher", "status", str(sweep), "--json"],
                           cwd=where, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert s.returncode == 0, (where, s.stdout + s.stderr)
        answers.append(json.loads(s.stdout))
    states = [[row["state"] for row in a["shards"]] for a in answers]
    assert states == [["done", "done"]] * 3


@pytest.mark.timeout(240)
def test_sigterm_to_a_local_sweep_exits_143_and_status_shows_the_shards_never_started(tmp_path):
    out, ledger, sweep = tmp_path / "out", tmp_path / "ledger", tmp_path / "sweep"
    args = ["task=squares", f"task.output_dir={out}", "task.n=40", "task.slow_s=0.3",
            f"task.ledger={ledger}", "shard.num=4", "backbone.num_workers=1",
            "hydra/launcher=local", "hydra.launcher.array_parallelism=1",
            f"hydra.sweep.dir={sweep}", "-m"]  # fmt: skip
    proc = subprocess.Popen(
        launch_argv(*args),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) >= 2, proc)
    os.kill(proc.pid, signal.SIGTERM)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, text
    watch = subprocess.run(
        [sys.executable, "-m", "launcher", "status", str(sweep), "--watch", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert watch.returncode == 1, watch.stdout + watch.stderr  # it ended: nothing runs
    s = subprocess.run([sys.executable, "-m", "launcher", "status", str(sweep), "--json"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip
    rows = json.loads(s.stdout)["shards"]
    assert rows[0]["note"].startswith("exit 143: SIGTERM"), rows[0]
    stopped = "not started: the sweep was stopped (SIGTERM"
    assert all(r["note"].startswith(stopped) for r in rows[1:]), rows
    assert not (sweep / "1").exists()
