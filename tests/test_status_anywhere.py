"""Issue 20, status from anywhere: a sweep submitted with a relative ``task.output_dir``
reads the same from any working directory. A real local sweep through ``launch.py``."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, launch_argv


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
    r = subprocess.run(launch_argv(*args), cwd=submit, capture_output=True, text=True,
                       timeout=180)  # fmt: skip
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
