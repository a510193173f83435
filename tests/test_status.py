"""Local sweeps (no SLURM) and ``python -m launcher status``: one process per shard,
a concurrency cap, only-missing relaunch, the per-shard table, failures, summary.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.launchers import local
from launcher.status import shard_row
from tests.conftest import REPO, files, report, status


def squares(out: Path, *extra: str) -> list[str]:
    return ["task=squares", f"task.output_dir={out}", "backbone.num_workers=1", *extra]


def summary(directory: Path) -> dict:
    return json.loads(status(directory, "--json").stdout)


def launched(sweep: Path) -> list[int]:
    rec = json.loads((sweep / ".launcher" / "sweep.json").read_text())
    return [e["shard"] for a in rec["arrays"] for e in a["elements"] if e["launched"]]


def test_a_local_sweep_runs_each_shard_in_its_own_process(launch, tmp_path):
    out = tmp_path / "out"
    args = squares(out, "task.n=60", "shard.num=4", "hydra.launcher.array_parallelism=2")
    r = launch(*args, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = launch.job_dir
    assert "4 shard(s) in 1 array(s) running, 2 at once" in r.stdout
    assert f"-m launcher status {sweep}" in r.stdout
    reports = [report(sweep / str(i)) for i in range(4)]
    assert [rep["shard"]["idx"] for rep in reports] == [0, 1, 2, 3]
    assert len({rep["pid"] for rep in reports}) == 4
    assert all((sweep / "logs" / f"local-0_{i}.out").exists() for i in range(4))
    assert len(files(out)) == 60
    s = summary(sweep)
    assert s["backend"] == "local" and s["totals"]["finished"]
    assert s["totals"]["shards"] == {
        "total": 4,
        "pending": 0,
        "running": 0,
        "done": 4,
        "failed": 0,
        "stale": 0,
    }
    assert s["totals"]["items"]["done"] == s["totals"]["items"]["total"] == 60
    table = status(sweep).stdout
    assert "shards: 4 (4 done)" in table and "items: 60/60 done, 0 failed" in table
    assert json.loads((sweep / "summary.json").read_text())["totals"] == s["totals"]


def test_failures_then_a_rerun_launches_only_the_missing_shards(launch, tmp_path):
    out, fault = tmp_path / "out", tmp_path / "fault"
    fault.touch()
    args = squares(
        out,
        "task.n=20",
        "task.fail_mod=11",  # items 0 and 11 fail: shards 0 and 3
        f"task.fault_file={fault}",
        "shard.num=4",
        "hydra.launcher.array_parallelism=4",
    )
    r = launch(*args, multirun=True)
    assert r.returncode == 1, r.stdout + r.stderr
    first = launch.job_dir
    s = summary(first)
    failed = sorted(row["shard"] for row in s["shards"] if row["state"] == "failed")
    assert failed == [0, 3]
    assert status(first).returncode == 1
    digest = status(first, "--failed").stdout
    assert "ValueError: 2 item(s) in 2 shard(s)" in digest
    assert "first: item 000000 (shard-0-of-4): bad item 0" in digest
    assert str(first / "0" / "failures.jsonl") in digest
    err = (first / "logs" / "local-0_0.err").read_text()
    assert "Traceback" in err and "ValueError: bad item 0" in err
    as_json = json.loads(status(first, "--json", "--failed").stdout)
    assert as_json["failures"]["errors"]["ValueError"]["count"] == 2

    fault.unlink()
    r = launch(*args, "hydra.launcher.dry_run=true", multirun=True)
    assert r.returncode == 0 and "launch 2 shard(s): 0,3" in r.stdout
    assert "skip 2 shard(s) completed before: 1-2" in r.stdout
    assert not (launch.job_dir / ".launcher").exists()

    r = launch(*args, multirun=True)  # the same command again
    assert r.returncode == 0, r.stdout + r.stderr
    assert launched(launch.job_dir) == [0, 3]
    merged = summary(launch.job_dir)
    assert merged["totals"]["shards"]["done"] == 4
    assert merged["totals"]["items"]["done"] == merged["totals"]["items"]["total"] == 20
    assert len(files(out)) == 20
    earlier = [row for row in merged["shards"] if not row["launched"]]
    assert all(row["note"].startswith(f"done before, in {first}") for row in earlier)

    r = launch(*args, multirun=True)
    assert r.returncode == 0 and "Nothing to launch: all 4 shard(s) already completed" in r.stdout
    r = launch(*args, "hydra.launcher.skip_done=false", multirun=True)
    assert r.returncode == 0 and launched(launch.job_dir) == list(range(4))


def test_other_sweep_parameters_give_one_array_each_numbered_like_hydra(launch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    r = launch(*squares(a, "task.n=20", "shard.num=2"), f"task.output_dir={a},{b}", multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads((launch.job_dir / ".launcher" / "sweep.json").read_text())
    assert [
        f"task.output_dir={out}" in arr["overrides"] for out in (a, b) for arr in rec["arrays"]
    ] == [
        True,
        False,
        False,
        True,
    ]
    # Hydra's order: shard.idx varies slowest, as in hydra.sweeper.params
    for num, (idx, out) in enumerate([(0, a), (0, b), (1, a), (1, b)]):
        rep = report(launch.job_dir / str(num))
        assert (rep["shard"]["idx"], rep["state_dir"]) == (idx, str(out / ".launcher"))
    assert len(files(a)) == len(files(b)) == 20


def test_wait_false_returns_at_once_and_watch_follows_the_sweep_to_its_end(launch, tmp_path):
    args = squares(tmp_path / "out", "task.n=30", "shard.num=3", "task.slow_s=0.02")
    r = launch(*args, "hydra.launcher.wait=false", multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "started in the background" in r.stdout
    watched = subprocess.run(
        [sys.executable, "-m", "launcher", "status", str(launch.job_dir), "--watch", "0.3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert watched.stdout.rstrip().splitlines()[-2] == "shards: 3 (3 done)"
    assert "pending" in watched.stdout or "running" in watched.stdout  # it watched progress


def test_auto_runs_locally_without_sbatch_and_says_so(launch, tmp_path):
    env = {"PATH": os.path.dirname(sys.executable)}
    r = launch(
        *squares(tmp_path / "out", "shard.num=2"),
        "hydra/launcher=auto",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.dry_run=true",
        multirun=True,
        env=env,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "no sbatch on PATH, running shards locally" in out
    assert "hydra.launcher.partition is SLURM-only: ignored here" in out
    assert "Dry run (local)" in out and "launch 2 shard(s): 0-1" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["shard.num=2", "shard.idx=5"], "shard.idx=5 is out of range for shard.num=2"),
        (["hydra.launcher.partiton=gpu"], "partiton"),
    ],
)
def test_a_bad_sweep_is_refused_before_launching(launch, tmp_path, args, message):
    r = launch(*squares(tmp_path / "out"), *args, multirun=True)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert message in out and "Traceback" not in out
    assert not (launch.job_dir / ".launcher" / "sweep.json").exists()


def test_status_of_one_run_and_of_a_sweep_without_a_record(launch, tmp_path):
    r = launch(*squares(tmp_path / "one", "task.n=7"))
    assert r.returncode == 0
    one = summary(launch.job_dir)
    assert [row["state"] for row in one["shards"]] == ["done"]
    assert one["totals"]["items"]["done"] == 7
    assert not (launch.job_dir / "summary.json").exists()  # a run dir is not a sweep
    r = launch(
        *squares(tmp_path / "two", "task.n=8", "shard.num=2"),
        "hydra/launcher=basic",
        multirun=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    s = summary(launch.job_dir)
    assert s["backend"] == "in-process"
    assert [(row["shard"], row["state"]) for row in s["shards"]] == [(0, "done"), (1, "done")]
    assert status(tmp_path / "nowhere").returncode == 2


def test_shard_states_from_files_pending_running_stale_done_failed(tmp_path):
    now = time.time()
    assert shard_row(str(tmp_path / "none"), 5.0, now=now)["state"] == "pending"
    job = tmp_path / "job"
    job.mkdir()
    beat = {"state": "running", "total": 10, "skipped": 2, "processed": 3, "failed": 0}
    beat.update(planned=True, items_per_s=1.5, eta_s=3.3, updated_unix=now - 2)
    (job / "progress.json").write_text(json.dumps(beat))
    row = shard_row(str(job), 5.0, now=now)
    assert (row["state"], row["done"], row["total"], row["eta_s"]) == ("running", 5, 10, 3.3)
    assert shard_row(str(job), 5.0, now=now + 120)["state"] == "stale"
    # SLURM's view wins over the files while the element is queued or running
    assert (
        shard_row(str(job), 5.0, {"state": "PENDING", "reason": "Priority"})["state"] == "pending"
    )
    rep = {**beat, "state": "completed", "exit_code": 0, "processed": 8}
    (job / "report.json").write_text(json.dumps(rep))
    assert shard_row(str(job), 5.0, now=now + 120)["state"] == "done"
    (job / "report.json").write_text(json.dumps({**rep, "exit_code": 1}))
    row = shard_row(str(job), 5.0, now=now)
    assert row["state"] == "failed" and row["note"].startswith("exit 1")
    assert shard_row(str(job), 5.0, {"state": "TIMEOUT", "exit": "0:15"})["note"] == (
        "SLURM: TIMEOUT (exit 0:15)"
    )


def test_the_local_queue_never_runs_more_than_its_cap(tmp_path, monkeypatch):
    procs: list[subprocess.Popen] = []
    peak = [0]

    def spawn(directory: str, entry: dict) -> subprocess.Popen:
        alive = sum(p.poll() is None for p in procs)
        peak[0] = max(peak[0], alive + 1)
        code = f"import time, sys; time.sleep(0.2); sys.exit({entry['shard'] % 2})"
        procs.append(subprocess.Popen([sys.executable, "-c", code]))
        return procs[-1]

    monkeypatch.setattr(local, "_spawn", spawn)
    (tmp_path / ".launcher").mkdir()
    queue = [{"array": 0, "shard": i, "spec": "-", "log": f"logs/{i}"} for i in range(7)]
    codes = local.run_queue(str(tmp_path), queue, parallelism=3)
    assert peak[0] == 3
    assert codes == {(0, i): i % 2 for i in range(7)}
    exits = (tmp_path / ".launcher" / "exits.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["shard"] for x in exits) == list(range(7))
