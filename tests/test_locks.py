"""Issue 20, locks: a lock naming our own pid is stale, an unreadable lock of a live job is
never taken over, and two shard splits of one task never run into one output at once.
Real jobs through ``launch.py``; the ground truth is a ledger of the items each ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO, files, launch_argv, report, start
from tests.test_trust import hostile, wait_for


def processed(ledger: Path) -> Counter:
    """How many times each item was processed, by any job."""
    return Counter(line.split()[0] for line in ledger.read_text().splitlines())


def test_a_lock_naming_our_own_pid_is_stale(tmp_path):
    """A container restarted after kill -9 reuses pids: the dead job's lock names ours."""
    out, job_dir = tmp_path / "out", tmp_path / "job"
    lock = out / ".launcher" / "locks" / "shard-0-of-1.lock"
    lock.parent.mkdir(parents=True)
    argv = launch_argv(*hostile(out), job_dir=job_dir)
    take = (
        "import json, os, sys; "
        f"open({str(lock)!r}, 'w').write(json.dumps("
        "{'host': os.uname().nodename, 'pid': os.getpid(), 'slurm': {}})); "
        "os.execv(sys.executable, sys.argv[1:])"  # the same pid runs the job
    )
    r = subprocess.run([sys.executable, "-c", take, *argv], cwd=REPO, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert report(job_dir)["processed"] == 8
    assert not lock.exists()


def running_until_gate(tmp_path: Path, *extra: str):
    """A first job holding its lock: item 3 waits while ``gate`` exists."""
    out, ledger, gate = tmp_path / "out", tmp_path / "ledger", tmp_path / "gate"
    gate.touch()
    args = hostile(out, "task.n=10", f"task.ledger={ledger}", f"task.gate={gate}")
    first = start(tmp_path / "first", *args, "backbone.num_workers=2", *extra)
    wait_for(lambda: out.exists() and len(files(out)) >= 1, first)
    return first, args, ledger, gate


def test_an_unreadable_lock_of_a_live_job_is_never_taken_over(launch, tmp_path):
    first, args, ledger, gate = running_until_gate(tmp_path, "run.heartbeat_s=30")
    (lock,) = (tmp_path / "out" / ".launcher" / "locks").glob("*.lock")
    lock.write_text('{"host": "n')  # unreadable: torn, or another user's
    os.utime(lock, (time.time() - 20,) * 2)  # refreshed 20 s ago: heartbeats are 30 s apart
    r = launch(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "lock cannot be read" in r.stdout + r.stderr
    gate.unlink()
    assert first.wait(timeout=120) == 0, first.communicate()[0]
    assert processed(ledger) == Counter(f"{i:04d}" for i in range(10))


def test_two_shard_splits_of_one_task_never_run_into_one_output_at_once(launch, tmp_path):
    first, args, ledger, gate = running_until_gate(tmp_path)  # shard.num=1
    r = launch(*args, "shard.num=2", "shard.idx=1")
    text = r.stdout + r.stderr
    assert r.returncode == 2 and "under another shard split" in text, text
    gate.unlink()
    assert first.wait(timeout=120) == 0, first.communicate()[0]
    assert processed(ledger) == Counter(f"{i:04d}" for i in range(10))
    assert not list((tmp_path / "out" / ".launcher" / "locks").iterdir())
    r = launch(*args, "shard.num=2", "shard.idx=1")  # once it ended: runs
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.timeout(240)
def test_a_relaunch_is_refused_while_shards_outlive_their_killed_launcher(tmp_path):
    out, ledger, sweep = tmp_path / "out", tmp_path / "ledger", tmp_path / "sweep"
    args = ["task=squares", f"task.output_dir={out}", "task.n=16", "task.slow_s=1",
            f"task.ledger={ledger}", "shard.num=2", "backbone.num_workers=1",
            "hydra/launcher=local", f"hydra.sweep.dir={sweep}", "-m"]  # fmt: skip
    first = subprocess.Popen(launch_argv(*args), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) >= 2, first)
    os.kill(first.pid, signal.SIGKILL)  # the launcher alone: its shards run on
    first.wait()
    state = sweep / ".launcher"
    before = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    r = subprocess.run(launch_argv(*args), cwd=REPO, capture_output=True, text=True, timeout=120)
    text = r.stdout + r.stderr
    assert r.returncode == 2 and "of an earlier launch can still run" in text, text
    assert {p: p.read_bytes() for p in state.rglob("*") if p.is_file()} == before
    reports = [sweep / str(i) / "report.json" for i in range(2)]
    deadline = time.monotonic() + 120
    while not all(p.exists() for p in reports) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [json.loads(p.read_text())["exit_code"] for p in reports] == [0, 0]
    assert processed(ledger) == Counter(f"{i:06d}" for i in range(16))
