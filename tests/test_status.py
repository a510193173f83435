"""Local sweeps (no SLURM) and ``python -m launcher status``: one process per shard,
a concurrency cap, only-missing relaunch, the per-shard table, failures, summary.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from launcher.launchers import local
from launcher.status import Facts, infer
from launcher.status.jobfiles import JobRecord
from launcher.status.slurm import SlurmView
from tests.conftest import REPO, files, need_slurm, report, status


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
    python = os.path.basename(sys.executable)  # status in the command the sweep was run with
    assert f"Status:    {python} {REPO / 'launch.py'} status {sweep}" in r.stdout, r.stdout
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
        "held": 0,
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
    assert all(
        row["note"].startswith("done before, at ") and row["note"].endswith(f"in {first}/{i}")
        for i, row in ((r["shard"], r) for r in earlier)
    )
    # and the first sweep's status counts its failed shards done by this relaunch
    second, again = launch.job_dir, summary(first)
    relaunched = [row for row in again["shards"] if row["shard"] in (0, 3)]
    assert [row["state"] for row in relaunched] == ["done", "done"], relaunched
    assert all(f"done later in {second}/{row['shard']}" in row["note"] for row in relaunched)
    assert again["totals"]["shards"]["done"] == 4

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
    assert watched.stdout.rstrip().splitlines()[-3] == "shards: 3 (3 done)"
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
    codes, stopped_by = local.run_queue(str(tmp_path), queue, parallelism=3)
    assert peak[0] == 3
    assert codes == {(0, i): i % 2 for i in range(7)} and stopped_by is None
    exits = (tmp_path / ".launcher" / "exits.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["shard"] for x in exits) == list(range(7))


# -- the state of one shard: a table of cases for the pure inference ----------------------------

REPORT_OK = JobRecord(total=10, processed=10, state="completed", exit_code=0, ended_at="T1")
INTERRUPTED = JobRecord(
    total=20, processed=12, state="interrupted", exit_code=140, stop_reason="signal 12"
)
BEAT = JobRecord(total=10, processed=4, state="running", host="elsewhere", pid=1)
GONE_HOURS_AGO = {"progress": BEAT, "heartbeat_age_s": 7200.0}


def squeue(state: str, reason: str = "") -> SlurmView:
    return SlurmView(state, "squeue", reason)


def sacct(state: str, exit: str = "0:0") -> SlurmView:
    return SlurmView(state, "sacct", exit=exit)


CASES = [  # (name, facts, state, final, words in the note)
    ("nothing yet", {}, "pending", False, ""),
    ("fresh heartbeat", {"progress": BEAT, "heartbeat_age_s": 1.0}, "running", False, ""),
    (
        "a slow heartbeat is not stale before a few of its own intervals",
        {"progress": BEAT, "heartbeat_age_s": 30.0, "heartbeat_s": 60.0},
        "running",
        False,
        "",
    ),
    (
        "a 5 s heartbeat silent for 30 s is stale",
        {"progress": BEAT, "heartbeat_age_s": 30.0, "heartbeat_s": 5.0},
        "stale",
        False,
        "no heartbeat for 30s (one every 5s)",
    ),
    (
        "its process on this host is gone",
        {"progress": BEAT, "heartbeat_age_s": 1.0, "process_alive": False},
        "failed",
        True,
        "process 1 on elsewhere is gone",
    ),
    (
        "a final heartbeat without a report",
        {"progress": replace(BEAT, state="completed")},
        "failed",
        True,
        "report.json is missing",
    ),
    ("report completed", {"report": REPORT_OK}, "done", True, "done at T1"),
    (
        "report with failed items",
        {"report": replace(REPORT_OK, failed=3, exit_code=1)},
        "failed",
        True,
        "exit 1: 3 item(s) failed",
    ),
    (
        "report says completed with exit 2",
        {"report": replace(REPORT_OK, exit_code=2, error="InputError: no items")},
        "failed",
        True,
        "exit 2: InputError",
    ),
    (
        "a damaged report is not running",
        {"report_problem": "report.json is not valid JSON", "progress": BEAT},
        "failed",
        True,
        "report.json is not valid JSON: cannot tell how the job ended",
    ),
    (
        "a local exit code 0 without a report",
        {"exit_code": 0},
        "failed",
        True,
        "exit 0 without writing report.json",
    ),
    (
        "a damaged heartbeat only",
        {"progress_problem": "progress.json is empty"},
        "stale",
        False,
        "progress.json is empty",
    ),
    (
        "the local scheduler died",
        {"scheduler_gone": True},
        "failed",
        True,
        "never started",
    ),
    ("queued", {"slurm": squeue("PENDING", "Priority")}, "pending", False, "waiting (Priority)"),
    (
        "held by the user",
        {"slurm": squeue("PENDING", "JobHeldUser")},
        "held",
        False,
        "held by SLURM: JobHeldUser",
    ),
    ("requeue-held", {"slurm": squeue("REQUEUE_HOLD")}, "held", False, "REQUEUE_HOLD"),
    (
        "preempted and requeued says what happened",
        {"slurm": squeue("PENDING", "BeginTime"), "report": INTERRUPTED},
        "pending",
        False,
        "requeued: its last run stopped (SIGUSR2: time limit or preemption) with 12/20 done",
    ),
    (
        "seconds after scancel: ending, not requeued (None)",
        {"slurm": squeue("COMPLETING"), "progress": BEAT, "heartbeat_age_s": 1.0},
        "running",
        False,
        "ending (SLURM: COMPLETING)",
    ),
    (
        "RUNNING with a silent heartbeat",
        {"slurm": squeue("RUNNING"), **GONE_HOURS_AGO},
        "stale",
        False,
        "SLURM says RUNNING",
    ),
    (
        "sacct lags: PENDING for an element that left the queue with a report",
        {"slurm": sacct("PENDING"), "queue_answered": True, "report": REPORT_OK},
        "done",
        True,
        "done at T1",
    ),
    (
        "sacct lags, no record yet",
        {"slurm": sacct("PENDING"), "queue_answered": True, "slurm_backend": True, "quiet_s": 2},
        "pending",
        False,
        "squeue no longer lists it",
    ),
    (
        "left the queue long ago without a report",
        {"slurm": sacct("RUNNING"), "queue_answered": True, "slurm_backend": True, "quiet_s": 60},
        "failed",
        True,
        "left the SLURM queue",
    ),
    (
        "slurmdbd down, squeue down: sacct's word is all there is",
        {"slurm": sacct("PENDING"), "queue_answered": False},
        "pending",
        False,
        "",
    ),
    (
        "COMPLETED with a report",
        {"slurm": sacct("COMPLETED"), "report": REPORT_OK},
        "done",
        True,
        "",
    ),
    (
        "COMPLETED without a report",
        {"slurm": sacct("COMPLETED")},
        "failed",
        True,
        "left no report.json",
    ),
    (
        "TIMEOUT",
        {"slurm": sacct("TIMEOUT", "0:15"), "report": INTERRUPTED},
        "failed",
        True,
        "SLURM: TIMEOUT (exit 0:15)",
    ),
    (
        "failed here, done in a later relaunch",
        {
            "report": replace(REPORT_OK, exit_code=1, failed=1),
            "done_later": replace(REPORT_OK, job_dir="/later"),
        },
        "done",
        True,
        "done later in /later",
    ),
]


@pytest.mark.parametrize(
    "facts, state, final, note", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_state_of_a_shard_is_inferred_from_its_facts(facts, state, final, note):
    verdict = infer(Facts(**facts))
    assert (verdict.state, verdict.final) == (state, final), verdict
    assert note in verdict.note
    assert "None" not in verdict.note


# -- real jobs, then their records damaged ---------------------------------------------------------


def rewrite(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.timeout(120)
def test_a_job_killed_with_kill_9_is_failed_at_once_and_watch_ends(tmp_path):
    job = tmp_path / "job"
    argv = [
        sys.executable,
        str(REPO / "launch.py"),
        f"hydra.searchpath=[file://{REPO / 'tests' / 'conf'}]",
        *squares(tmp_path / "out", "task.n=400", "task.slow_s=0.2", "run.heartbeat_s=30"),
        "run.progress=off",
        f"hydra.run.dir={job}",
    ]
    proc = subprocess.Popen(argv, cwd=REPO, start_new_session=True)
    watch = None
    try:
        deadline = time.monotonic() + 60
        while not (job / "progress.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert json.loads((job / "progress.json").read_text())["heartbeat_s"] == 30
        assert status(job).returncode == 3  # running: not finished
        watch = subprocess.Popen(
            [sys.executable, "-m", "launcher", "status", str(job), "--watch", "0.2"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        proc.kill()  # kill -9: no report, and the heartbeat says 30 s between beats
        proc.wait()
        out, _ = watch.communicate(timeout=30)  # ends at once, not after 4 x 30 s
    finally:
        for p in (proc, watch):
            if p is not None and p.poll() is None:
                p.kill()
        os.killpg(proc.pid, 9) if _group_alive(proc.pid) else None
    assert watch.returncode == 1, out
    assert f"process {proc.pid} on " in out and "is gone and left no report.json" in out
    assert "failed" in out.splitlines()[-2]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True


def test_a_slow_heartbeat_is_trusted_and_a_damaged_report_says_what_is_wrong(launch, tmp_path):
    r = launch(*squares(tmp_path / "out", "task.n=5", "run.heartbeat_s=60"))
    assert r.returncode == 0, r.stdout + r.stderr
    job = launch.job_dir
    beat = json.loads((job / "progress.json").read_text())
    assert beat["heartbeat_s"] == 60 and beat["state"] == "completed"
    report_text = (job / "report.json").read_text()

    # the same job seen while it ran: 30 s since its last beat, its process alive here
    (job / "report.json").unlink()
    rewrite(job / "progress.json", state="running", updated_unix=time.time() - 30, pid=os.getpid())
    assert [row["state"] for row in summary(job)["shards"]] == ["running"]
    assert status(job).returncode == 3
    rewrite(job / "progress.json", heartbeat_s=None)  # an older heartbeat: 5 s assumed
    assert [row["state"] for row in summary(job)["shards"]] == ["stale"]

    for damage, words in [
        (report_text[: len(report_text) // 2], "report.json is not valid JSON"),
        ("", "report.json is empty"),
        ("[1, 2]", "report.json: should be a JSON object, found list"),
        (json.dumps({"processed": "many"}), "field 'processed' should be int, found 'many'"),
    ]:
        (job / "report.json").write_text(damage)
        r = status(job)
        assert r.returncode == 1, r.stdout + r.stderr
        assert words in r.stdout and "cannot tell how the job ended" in r.stdout
        assert r.stdout.splitlines()[2].split()[1] == "failed"
        assert "Traceback" not in r.stdout + r.stderr
        (row,) = json.loads(status(job, "--json").stdout)["shards"]
        assert (row["state"], row["final"]) == ("failed", True)


def test_a_torn_failures_line_is_skipped_and_named(launch, tmp_path):
    fault = tmp_path / "fault"
    fault.touch()
    r = launch(
        *squares(tmp_path / "out", "task.n=9", "task.fail_mod=4", f"task.fault_file={fault}")
    )
    assert r.returncode == 1, r.stdout + r.stderr
    failures = launch.job_dir / "failures.jsonl"
    with failures.open("a") as f:
        f.write('{"item": "000009", "err')  # a job killed mid-write
    r = status(launch.job_dir, "--failed")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "ValueError: 3 item(s) in 1 shard(s)" in r.stdout  # items 0, 4, 8
    assert f"{failures} (1 damaged line(s) skipped: 4)" in r.stdout
    digest = json.loads(status(launch.job_dir, "--json", "--failed").stdout)["failures"]
    assert digest["damaged"] == {str(failures): [4]}


def test_a_sweep_whose_outputs_or_records_are_gone_or_damaged(launch, tmp_path):
    out = tmp_path / "out"
    r = launch(*squares(out, "task.n=8", "shard.num=2"), multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = launch.job_dir
    assert status(sweep).returncode == 0

    # a sweep dir where summary.json cannot be written (read-only, or in the way)
    (sweep / "summary.json").unlink()
    (sweep / "summary.json").mkdir()
    r = status(sweep)
    assert r.returncode == 0 and "shards: 2 (2 done)" in r.stdout, r.stderr
    (sweep / "summary.json").rmdir()

    # outputs deleted, completion markers with them: done once, no longer proven
    shutil.rmtree(out)
    r = status(sweep)
    assert r.returncode == 3, r.stdout
    assert "2 done shard(s) no longer have their completion marker" in r.stdout
    assert "done at " in r.stdout and "its completion marker is gone" in r.stdout
    assert json.loads(status(sweep, "--json").stdout)["totals"]["unmarked"] == 2

    record = sweep / ".launcher" / "sweep.json"
    good = json.loads(record.read_text())
    for damage, words in [
        (record.read_text()[:100], "is not valid JSON"),
        (json.dumps({**good, "arrays": [{"elements": ["x"]}]}), "arrays[0]: elements[0]"),
        (json.dumps({**good, "arrays": 3}), "field 'arrays' should be list"),
    ]:
        record.write_text(damage)
        r = status(sweep)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"{record} is damaged" in r.stderr and words in r.stderr
        assert "Traceback" not in r.stderr
        assert "shards: 2 (2 done)" in r.stdout, r.stdout  # what the shards' records say
        assert "shown from the shards' own records" in r.stderr


def test_help_documents_the_exit_codes():
    r = status(Path("-"), "--help")
    assert r.returncode == 0
    assert "exit codes:" in r.stdout and "3  no shard failed" in r.stdout
    assert "--table" in r.stdout and "--grid" in r.stdout


# -- big sweeps: a grid ----------------------------------------------------------------------------


def big_sweep(tmp_path: Path, shards: int = 200) -> Path:
    from bench.status_read import write_sweep

    return Path(write_sweep(str(tmp_path / "sweep"), shards))


def on_a_terminal(*args: str, **env: str) -> str:
    """``status`` with stdout on a pseudo-terminal, as a person runs it."""
    import pty

    master, slave = pty.openpty()
    env = {k: v for k, v in {**os.environ, "TERM": "xterm", **env}.items() if v is not None}
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher", "status", *args],
        cwd=REPO,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    return b"".join(chunks).decode()


def test_a_big_sweep_is_a_grid_with_a_legend_and_the_table_stays_available(tmp_path):
    sweep = big_sweep(tmp_path)  # of every 100: 90 done, 5 running, 4 failed, 1 pending
    r = status(sweep)
    assert r.returncode == 1, r.stderr  # 8 failed shards
    lines = r.stdout.splitlines()
    grid = [x for x in lines if x.lstrip()[:1].isdigit()]
    cells = "".join(x.split(" ", 1)[1].replace(" ", "") for x in (y.lstrip() for y in grid))
    assert len(cells) == 200 and "\033[" not in r.stdout  # a pipe: no colour
    assert cells[:100] == "#" * 90 + ">" * 5 + "X" * 4 + "."
    assert "legend: . pending 2  > running 10  # done 180  X failed 8" in r.stdout
    assert "  failed shard 95: exit 1: 3 item(s) failed" in r.stdout
    assert "shards: 200 (2 pending, 10 running, 180 done, 8 failed)" in r.stdout

    table = status(sweep, "--table").stdout.splitlines()
    assert table[1].split() == ["shard", "state", "done/total", "failed", "items/s", "ETA", "note"]
    assert len([x for x in table if x.split()[:1] and x.split()[0].isdigit()]) == 200

    as_json = json.loads(status(sweep, "--json").stdout)
    assert set(as_json) == {"dir", "backend", "updated_at", "argv", "arrays", "totals", "shards"}
    assert len(as_json["shards"]) == 200 and as_json["totals"]["shards"]["failed"] == 8

    small = big_sweep(tmp_path / "small", shards=10)
    assert "legend:" not in status(small).stdout  # small sweeps: the table
    assert "legend:" in status(small, "--grid").stdout


def test_the_grid_is_coloured_on_a_terminal_unless_no_color(tmp_path):
    sweep = big_sweep(tmp_path)
    coloured = on_a_terminal(str(sweep), NO_COLOR=None)
    assert "\033[32m#\033[0m" in coloured and "\033[1;31mX\033[0m" in coloured
    plain = on_a_terminal(str(sweep), NO_COLOR="1")
    assert "\033[" not in plain and "legend: . pending 2" in plain


# -- SLURM's view, on the real cluster -------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_a_held_slurm_element_is_held_with_slurms_reason(launch, tmp_path):
    need_slurm()
    r = launch(
        *squares(tmp_path / "out", "task.n=4", "shard.num=2"),
        "hydra/launcher=slurm",
        "hydra.launcher.wait=false",
        "+hydra.launcher.additional_parameters.hold=true",
        multirun=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = launch.job_dir
    record = json.loads((sweep / ".launcher" / "sweep.json").read_text())
    jobs = {e["slurm_id"].split("_")[0] for a in record["arrays"] for e in a["elements"]}
    try:
        shown = status(sweep)
        assert shown.returncode == 3, shown.stdout + shown.stderr
        rows = summary(sweep)["shards"]
        assert [row["state"] for row in rows] == ["held", "held"]
        assert all("held by SLURM: JobHeldUser" in row["note"] for row in rows)
        assert "shards: 2 (2 held)" in shown.stdout
    finally:
        subprocess.run(["scancel", *jobs], check=False)
