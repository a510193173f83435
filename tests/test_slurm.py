"""Sweeps through a real SLURM cluster (``scripts/slurm/cluster.sh``): arrays, status,
failures, only-missing relaunch, requeue, refused requests.

Skipped, with the reason, where no cluster answers; ``.ci/run`` starts one and
sets ``REQUIRE_SLURM=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import files, need_slurm, report, status
from tests.sample_tasks import Squares

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]


class Gated(Squares):
    """Squares whose item ``gate_key`` waits while ``gate_file`` exists: a shard held running."""

    def __init__(self, gate_key: str | None = None, gate_file: str | None = None, **kw) -> None:
        super().__init__(**kw)
        self.gate_key = gate_key
        self.gate_file = gate_file

    def process(self, key: str, x: int, output: str) -> None:
        while key == self.gate_key and self.gate_file and os.path.exists(self.gate_file):
            time.sleep(0.05)
        super().process(key, x, output)


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    need_slurm()


def slurm(launch, *args: str, wait: bool = True, timeout: float = 150):
    return launch(
        *args,
        "hydra/launcher=slurm",
        f"hydra.launcher.wait={str(wait).lower()}",
        "backbone.num_workers=1",
        "backbone.start_method=fork",
        multirun=True,
        timeout=timeout,
    )


def summary(sweep: Path) -> dict:
    r = status(sweep, "--json")
    assert r.returncode in (0, 1, 3), r.stderr  # 3: not finished yet
    return json.loads(r.stdout)


def states(sweep: Path) -> dict[int, str]:
    return {row["shard"]: row["state"] for row in summary(sweep)["shards"]}


def wait_for(check, what: str, timeout: float = 90, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def record(sweep: Path) -> dict:
    return json.loads((sweep / ".launcher" / "sweep.json").read_text())


def slurm_id(sweep: Path, shard: int) -> str:
    (element,) = [e for a in record(sweep)["arrays"] for e in a["elements"] if e["shard"] == shard]
    return element["slurm_id"]


def queued(job_name: str) -> str:
    r = subprocess.run(["squeue", "-h", "-n", job_name], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def submitit_folder(sweep: Path) -> str:
    return str(sweep / ".launcher" / record(sweep)["submission"] / "submitit")


def squares(out: Path, *extra: str) -> list[str]:
    return ["task=squares", f"task.output_dir={out}", *extra]


def test_thumbnail_sweep_is_one_array_and_equals_a_single_local_run(launch, tmp_path):
    out = tmp_path / "thumbs"
    r = slurm(launch, "task=thumbnail", f"task.output_dir={out}", "shard.num=8")
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = launch.job_dir
    rec = record(sweep)
    (array,) = rec["arrays"]
    assert len(array["slurm_jobs"]) == 1  # one sbatch for the 8 shards
    job = array["slurm_jobs"][0]
    assert [e["slurm_id"] for e in array["elements"]] == [f"{job}_{i}" for i in range(8)]
    assert f"job {job}: shards 0-7" in r.stdout and "launch.py status" in r.stdout
    reports = [report(sweep / str(i)) for i in range(8)]
    assert sorted(rep["shard"]["idx"] for rep in reports) == list(range(8))
    assert {rep["slurm"]["array_job_id"] for rep in reports} == {job}
    assert sum(rep["processed"] for rep in reports) == 36
    single = tmp_path / "single"
    assert launch(f"task.output_dir={single}").returncode == 0
    assert files(out) == files(single)
    final = wait_for(
        lambda: (
            (s := summary(sweep))["totals"]["shards"]["done"] == 8
            and {row["slurm_state"] for row in s["shards"]} == {"COMPLETED"}
            and s
        ),
        "sacct to report COMPLETED",
    )
    assert final["totals"]["items"] == {
        "total": 36,
        "estimated_total": 36,
        "done": 36,
        "processed": 36,
        "skipped": 0,
        "failed": 0,
    }
    assert json.loads((sweep / "summary.json").read_text())["totals"] == final["totals"]


def test_a_failing_shard_is_failed_in_status_with_its_traceback_in_its_err_log(launch, tmp_path):
    fault = tmp_path / "fault"
    fault.touch()
    args = squares(tmp_path / "out", "task.n=16", "task.fail_mod=13", f"task.fault_file={fault}")
    r = slurm(launch, *args, "shard.num=8")
    assert r.returncode == 1, r.stdout + r.stderr  # wait=true: non-zero when a shard failed
    sweep = launch.job_dir
    assert "failed shards:" in r.stdout and "ValueError: bad item 0" in r.stdout
    # items 0 and 13 raise: shards 0 and 5 (modulo 8) fail, the others are done
    failed = wait_for(
        lambda: [row for row in summary(sweep)["shards"] if row["slurm_state"] == "FAILED"],
        "sacct to report FAILED",
    )
    assert sorted(row["shard"] for row in failed) == [0, 5]
    assert states(sweep) == {i: "failed" if i in (0, 5) else "done" for i in range(8)}
    err = Path(failed[0]["log"] + ".err").read_text()
    assert "Traceback (most recent call last)" in err and "ValueError: bad item 0" in err
    assert "exited with code 1" in err
    table = status(sweep)
    assert table.returncode == 1
    assert "failed" in table.stdout and "FAILED" in table.stdout
    digest = status(sweep, "--failed").stdout
    assert "ValueError: 2 item(s) in 2 shard(s)" in digest
    assert str(sweep / "0" / "failures.jsonl") in digest and f"{failed[0]['log']}.err" in digest


def test_status_pending_running_done_then_scancel_and_rerun_submits_only_that_shard(
    launch, tmp_path
):
    gate, ledger, out = tmp_path / "gate", tmp_path / "ledger", tmp_path / "out"
    gate.touch()
    args = [
        *squares(out, "task.n=24", f"task.ledger={ledger}", "shard.num=6"),
        "task._target_=tests.test_slurm.Gated",
        "+task.gate_key=000002",  # item 2 belongs to shard 2
        f"+task.gate_file={gate}",
        "hydra.launcher.array_parallelism=3",
    ]
    r = slurm(launch, *args, wait=False)
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = launch.job_dir
    # %3: three shards run, three wait; a pending shard shows as pending
    assert "pending" in wait_for(lambda: states(sweep).values(), "a first status")
    wait_for(lambda: states(sweep)[2] == "running", "shard 2 to run")

    def others_done() -> bool:
        return [i for i, st in states(sweep).items() if st == "done"] == [0, 1, 3, 4, 5]

    wait_for(others_done, "the other shards to be done")
    table = status(sweep).stdout
    assert "running" in table and "done" in table
    job = slurm_id(sweep, 2)
    subprocess.run(["scancel", job], check=True)
    wait_for(lambda: states(sweep)[2] == "failed", "shard 2 to show failed")
    wait_for(lambda: summary(sweep)["shards"][2]["slurm_state"] == "CANCELLED", "CANCELLED")

    gate.unlink()
    r = slurm(launch, *args, wait=True)  # the same command again
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Submitted 1 shard(s)" in r.stdout and "5 shard(s) already done" in r.stdout
    again = record(launch.job_dir)
    launched = [e["shard"] for a in again["arrays"] for e in a["elements"] if e["launched"]]
    assert launched == [2]
    merged = summary(launch.job_dir)
    assert merged["totals"]["shards"]["done"] == 6
    assert merged["totals"]["items"]["done"] == merged["totals"]["items"]["total"] == 24
    assert len(files(out)) == 24
    keys = ledger.read_text().split()
    assert len(keys) == len(set(keys)) == 24
    # the first sweep now counts shard 2 as done later, in the relaunch
    first = summary(sweep)
    assert first["totals"]["shards"]["done"] == 6
    assert "done later" in first["shards"][2]["note"]


@pytest.mark.parametrize("how", ["submitit-interrupt", "scontrol-requeue"])
def test_a_requeued_shard_resumes_and_processes_every_item_once(launch, tmp_path, how):
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    args = squares(out, "task.n=40", "task.slow_s=0.1", f"task.ledger={ledger}", "shard.num=2")
    r = slurm(launch, *args, "run.grace_s=5", wait=False)
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = launch.job_dir
    job = slurm_id(sweep, 0)
    wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) >= 8, "some outputs")
    if how == "submitit-interrupt":
        import submitit

        submitit.SlurmJob(submitit_folder(sweep), job)._interrupt()
    else:
        subprocess.run(["scontrol", "requeue", job], check=True)
    final = wait_for(
        lambda: (s := summary(sweep))["totals"]["finished"] and s, "the sweep to end", timeout=120
    )
    assert final["totals"]["shards"]["done"] == 2, status(sweep).stdout
    keys = ledger.read_text().split()
    assert len(keys) == len(set(keys)) == 40  # nothing lost, nothing done twice
    resumed = report(sweep / "0")
    assert resumed["skipped"] > 0 and resumed["skipped"] + resumed["processed"] == 20
    assert resumed["slurm"]["restart_count"] == "1"
    log = Path(final["shards"][0]["log"] + ".out").read_text()
    if how == "submitit-interrupt":  # stopped gracefully first, then requeued by submitit
        assert "received SIGTERM" in log and "Requeued job" in log


def test_an_impossible_request_is_refused_before_anything_is_submitted(launch, tmp_path):
    name = f"refused-{os.getpid()}-{tmp_path.name}"  # other tests may share the cluster
    r = slurm(
        launch,
        *squares(tmp_path / "out", "shard.num=4"),
        "hydra.launcher.cpus_per_task=64",
        f"hydra.launcher.job_name={name}",
    )
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "hydra.launcher.cpus_per_task=64" in out and "pending forever" in out
    assert "Traceback" not in out
    assert not (launch.job_dir / ".launcher" / "sweep.json").exists()
    assert not queued(name)
    r = slurm(launch, *squares(tmp_path / "out"), "hydra.launcher.partition=nope")
    assert r.returncode == 2 and "no such partition" in r.stdout + r.stderr


def test_dry_run_prints_the_sbatch_script_and_submits_nothing(launch, tmp_path):
    r = slurm(launch, *squares(tmp_path / "out", "shard.num=3"), "hydra.launcher.dry_run=true")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "launch 3 shard(s): 0-2" in r.stdout
    assert "#SBATCH --array=0-2%3" in r.stdout and "--cpus-per-task=1" in r.stdout
    assert not (launch.job_dir / ".launcher" / "sweep.json").exists()


def test_a_shard_stopped_by_usr2_with_its_last_item_in_flight_ends_completed(launch, tmp_path):
    """USR2 (time limit near) while the last item runs: nothing is left, so the element
    completes: exit 0, COMPLETED, its marker written, not requeued."""
    import submitit

    out, ledger, gate = tmp_path / "out", tmp_path / "ledger", tmp_path / "gate"
    gate.touch()
    args = [
        *squares(out, "task.n=4", f"task.ledger={ledger}", "shard.num=1"),
        "task._target_=tests.test_slurm.Gated",
        "+task.gate_key=000003",  # the last item
        f"+task.gate_file={gate}",
        "run.grace_s=60",
    ]
    r = slurm(launch, *args, wait=False)
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = launch.job_dir
    job = slurm_id(sweep, 0)
    wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) == 3, "3 of 4 items")
    time.sleep(0.5)  # the last item is on the worker, held by the gate
    submitit.SlurmJob(submitit_folder(sweep), job)._interrupt(timeout=True)  # USR2 alone
    log = Path(summary(sweep)["shards"][0]["log"] + ".out")
    wait_for(lambda: "received SIGUSR2" in log.read_text(), "the element to take the signal")
    gate.unlink()
    final = wait_for(
        lambda: (s := summary(sweep))["shards"][0]["slurm_state"] == "COMPLETED" and s,
        "sacct to report COMPLETED",
    )
    assert final["shards"][0]["state"] == "done", status(sweep).stdout
    rep = report(sweep / "0")
    assert (rep["state"], rep["exit_code"], rep["processed"]) == ("completed", 0, 4)
    assert rep["slurm"].get("restart_count", "0") == "0"
    assert list((out / ".launcher" / "done").glob("*/shard-0-of-1.json"))
    assert "Requeued" not in log.read_text()


def test_a_second_launch_while_the_first_ones_elements_wait_is_refused(launch, tmp_path):
    """Elements of the first launch that have not started read its own config, whatever
    is launched later; a launch into the same sweep dir meanwhile is refused."""
    out, ledger, gate = tmp_path / "out", tmp_path / "ledger", tmp_path / "gate"
    gate.touch()
    args = [
        *squares(out, "task.n=6", f"task.ledger={ledger}", "shard.num=3"),
        "task._target_=tests.test_slurm.Gated",
        "+task.gate_key=000000",  # shard 0 waits; with %1 shards 1 and 2 wait behind it
        f"+task.gate_file={gate}",
        "hydra.launcher.array_parallelism=1",
    ]
    r = slurm(launch, *args, wait=False)
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = launch.job_dir
    before = (sweep / ".launcher" / "sweep.json").read_bytes()
    wait_for(lambda: states(sweep)[0] == "running", "shard 0 to run")
    launch.n -= 1  # the same sweep dir, another output dir
    r = slurm(launch, *squares(tmp_path / "other", "task.n=6", "shard.num=3"), wait=False)
    said = r.stdout + r.stderr
    assert r.returncode == 2, said
    assert f"hydra.sweep.dir={sweep}" in said and "SLURM job(s)" in said and "Traceback" not in said
    assert (sweep / ".launcher" / "sweep.json").read_bytes() == before
    gate.unlink()
    wait_for(lambda: (s := summary(sweep))["totals"]["finished"] and s, "the sweep to end")
    assert sorted(ledger.read_text().split()) == [f"{i:06d}" for i in range(6)]
    assert len(list(out.glob("*.txt"))) == 6 and not (tmp_path / "other").exists()


def test_a_failing_setup_line_fails_the_element_naming_it(launch, tmp_path):
    r = slurm(
        launch, *squares(tmp_path / "out", "task.n=2"), """hydra.launcher.setup=["true","false"]"""
    )
    assert r.returncode == 1, r.stdout + r.stderr
    sweep = launch.job_dir
    assert not (sweep / "0" / "report.json").exists()  # the job never ran without its setup
    err = Path(summary(sweep)["shards"][0]["log"] + ".err").read_text()
    assert "shard-launcher: setup line 2 of 2 failed: false" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["timeout_min=0"], "hydra.launcher.timeout_min=0: must be an integer >= 1"),
        (["timeout_min=-5"], "hydra.launcher.timeout_min=-5: must be an integer >= 1"),
        (["array_parallelism=0"], "hydra.launcher.array_parallelism=0: must be an integer >= 1"),
        (["array_parallelism=-1"], "hydra.launcher.array_parallelism=-1: must be an integer"),
        (["nodes=0"], "hydra.launcher.nodes=0: must be an integer >= 1"),
        (["cpus_per_task=0"], "hydra.launcher.cpus_per_task=0: must be an integer >= 1"),
        (["max_num_timeout=-1"], "hydra.launcher.max_num_timeout=-1: must be an integer >= 0"),
        (["timeout_min=1", "signal_delay_s=60"], "hydra.launcher.signal_delay_s=60: the USR2"),
        (["setup=[false]"], "hydra.launcher.setup[0]='False' is not a shell line"),
    ],
)
def test_launcher_options_that_can_never_work_are_refused_before_submitting(
    launch, tmp_path, options, message
):
    name = f"refused-{os.getpid()}-{tmp_path.name}"  # other tests may share the cluster
    over = [f"hydra.launcher.{o}" for o in options]
    r = slurm(
        launch, *squares(tmp_path / "out", "shard.num=2"), *over, f"hydra.launcher.job_name={name}"
    )
    said = r.stdout + r.stderr
    assert r.returncode == 2 and message in said and "Traceback" not in said, said
    assert not (launch.job_dir / ".launcher" / "sweep.json").exists()
    assert not queued(name)


def test_a_relative_interpolation_on_the_command_line_runs_on_every_element(launch, tmp_path):
    from launcher.resolvers import config_hash

    out = f"{tmp_path}/out-${{hash:${{.n}}}}"
    r = slurm(launch, "task=squares", "task.n=6", f"task.output_dir='{out}'", "shard.num=3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((tmp_path / f"out-{config_hash(6)}").glob("*.txt"))) == 6


def test_a_sweep_dir_moved_while_its_element_runs_is_never_recreated(launch, tmp_path):
    """The element stops writing its records, says so once in its .err (in the moved dir),
    and SLURM records it FAILED with exit code 1."""
    out, gate = tmp_path / "out", tmp_path / "gate"
    gate.touch()
    args = [
        *squares(out, "task.n=6", "shard.num=1", "run.heartbeat_s=0.2"),
        "task._target_=tests.test_slurm.Gated",
        "+task.gate_key=000000",
        f"+task.gate_file={gate}",
    ]
    r = slurm(launch, *args, wait=False)
    assert r.returncode == 0, r.stdout + r.stderr
    sweep, moved = launch.job_dir, tmp_path / "moved"
    wait_for(lambda: (sweep / "0" / "progress.json").exists(), "the element's heartbeat")
    job = slurm_id(sweep, 0)
    err = Path(summary(sweep)["shards"][0]["log"] + ".err").relative_to(sweep)
    sweep.rename(moved)
    gate.unlink()

    def ended() -> str:
        argv = ["sacct", "-j", job, "-n", "-X", "-P", "-o", "State,ExitCode"]
        line = subprocess.run(argv, capture_output=True, text=True).stdout.strip()
        return line if line and not line.startswith(("PENDING", "RUNNING")) else ""

    assert wait_for(ended, "sacct to report the element's end") == "FAILED|1:0"
    assert not sweep.exists()
    said = (moved / err).read_text()
    assert said.count("was moved or deleted") == 1, said
    assert f"the job dir {sweep / '0'} was moved or deleted while the job ran" in said
    assert "Traceback" not in said
