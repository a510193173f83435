"""End-to-end jobs through ``launch.py``: real processes, real files, real faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from launcher.backbones.mp import PREFETCH
from tests.conftest import failures, files, report, start


def squares(out: Path, *extra: str) -> list[str]:
    return ["task=squares", f"task.output_dir={out}", *extra]


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_every_start_method_processes_every_item(launch, tmp_path, method):
    out = tmp_path / "out"
    r = launch(*squares(out, "task.n=300", f"backbone.start_method={method}"))
    assert r.returncode == 0, r.stderr + r.stdout
    rep = report(launch.job_dir)
    assert (rep["total"], rep["processed"], rep["failed"]) == (300, 300, 0)
    assert rep["backbone"]["start_method"] == method
    assert (out / "000299.txt").read_text() == "299 89401\n"
    assert len(files(out)) == 300


def test_failing_items_are_recorded_and_retried(launch, tmp_path):
    out, fault = tmp_path / "out", tmp_path / "fault"
    fault.touch()
    args = squares(out, "task.n=500", "task.fail_mod=100", f"task.fault_file={fault}")
    r = launch(*args)
    assert r.returncode == 1
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"], rep["state"]) == (495, 5, "completed")
    fails = failures(launch.job_dir)
    assert sorted(f["item"] for f in fails) == ["000000", "000100", "000200", "000300", "000400"]
    assert all(f["error"] == "ValueError" and "bad item" in f["message"] for f in fails)
    assert all("sample_tasks.py" in f["traceback"] for f in fails)
    assert "failures.jsonl" in r.stderr + r.stdout

    fault.unlink()
    r = launch(*args, "run.retry_failed=true")
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)  # the shard's totals: the items not retried were done
    assert (rep["total"], rep["skipped"], rep["processed"], rep["failed"]) == (500, 495, 5, 0)
    assert rep["items_left"] is None
    assert len(files(out)) == 500

    r = launch(*args, "run.retry_failed=true")  # nothing left to retry
    rep = report(launch.job_dir)
    assert (rep["total"], rep["skipped"], rep["processed"], r.returncode) == (500, 500, 0, 0)


def test_retrying_failures_counts_items_never_done_as_left(launch, tmp_path):
    """Items the last run never reached (it stopped) are not retried, and not counted done."""
    out, fault = tmp_path / "out", tmp_path / "fault"
    fault.touch()
    args = squares(out, "task.n=40", "task.fail_mod=2", f"task.fault_file={fault}")
    r = launch(*args, "run.limit=10")  # 10 items tried, 5 of them failed; 30 never tried
    assert r.returncode == 1, r.stderr
    fault.unlink()
    r = launch(*args, "run.retry_failed=true")
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert (rep["total"], rep["skipped"], rep["processed"], rep["items_left"]) == (10, 5, 5, 30)
    assert "30 item(s) neither done nor failed last time are left" in r.stdout + r.stderr


def test_on_error_raise_stops_at_the_first_failure(launch, tmp_path):
    fault = tmp_path / "fault"
    fault.touch()
    r = launch(
        *squares(
            tmp_path / "out",
            "task.n=2000",
            "task.fail_mod=7",
            f"task.fault_file={fault}",
            "run.on_error=raise",
            "backbone.num_workers=1",
            "backbone.chunksize=1",
        )
    )
    assert r.returncode == 1
    rep = report(launch.job_dir)
    assert rep["failed"] == 1 and rep["state"] == "aborted"
    assert "run.on_error=raise" in rep["stop_reason"] and "000000" in rep["stop_reason"]
    assert rep["processed"] < 1999


def test_max_failures_stops_the_job(launch, tmp_path):
    fault = tmp_path / "fault"
    fault.touch()
    r = launch(
        *squares(
            tmp_path / "out",
            "task.n=3000",
            "task.fail_mod=2",
            f"task.fault_file={fault}",
            "run.max_failures=10",
            "backbone.num_workers=2",
            "backbone.chunksize=4",
        )
    )
    assert r.returncode == 1
    rep = report(launch.job_dir)
    # no chunk is dispatched after the 10th failure; what the workers already held (at most
    # PREFETCH chunks each) still runs and may fail
    assert 10 <= rep["failed"] <= 10 + 2 * PREFETCH * 4, rep
    assert "run.max_failures" in rep["stop_reason"]


@pytest.mark.timeout(120)
def test_a_worker_killed_by_its_item_costs_only_that_item(launch, tmp_path):
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    r = launch(
        *squares(out, "task.n=400", "task.kill_key=000123", f"task.ledger={ledger}"), timeout=100
    )
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (399, 1)
    (fail,) = failures(launch.job_dir)
    assert fail["item"] == "000123" and fail["error"] == "WorkerDied"
    assert "SIGKILL" in fail["message"]
    assert len(files(out)) == 399
    done = ledger.read_text().split()
    assert len(done) == len(set(done)) == 399  # nothing processed twice, nothing lost


@pytest.mark.timeout(120)
def test_an_item_over_the_time_limit_is_killed_and_recorded(launch, tmp_path):
    out = tmp_path / "out"
    r = launch(
        *squares(out, "task.n=50", "task.hang_key=000007", "run.item_timeout_s=2"), timeout=100
    )
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (49, 1)
    (fail,) = failures(launch.job_dir)
    assert (fail["item"], fail["error"]) == ("000007", "ItemTimeout")
    assert "run.item_timeout_s=2" in fail["message"]


def test_rerun_skips_done_items_and_starts_no_worker(launch, tmp_path):
    out = tmp_path / "out"
    assert launch(*squares(out, "task.n=200")).returncode == 0
    (out / "000050.txt").unlink()
    assert launch(*squares(out, "task.n=200")).returncode == 0
    rep = report(launch.job_dir)
    assert (rep["skipped"], rep["processed"]) == (199, 1)
    r = launch(*squares(out, "task.n=200"))
    rep = report(launch.job_dir)
    assert (r.returncode, rep["skipped"], rep["processed"]) == (0, 200, 0)
    assert rep["backbone"]["workers_started"] == 0


def test_dry_run_and_limit(launch, tmp_path):
    out = tmp_path / "out"
    r = launch(*squares(out, "task.n=100", "run.dry_run=true"))
    rep = report(launch.job_dir)
    assert (r.returncode, rep["state"], rep["total"], rep["processed"]) == (0, "dry_run", 100, 0)
    assert not out.exists()
    r = launch(*squares(out, "task.n=100", "run.limit=30"))
    assert report(launch.job_dir)["processed"] == 30 and len(files(out)) == 30


@pytest.mark.parametrize("strategy", ["modulo", "hash", "contiguous"])
def test_shard_sweep_covers_every_item_once(launch, tmp_path, strategy):
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    r = launch(
        *squares(
            out, "task.n=250", f"task.ledger={ledger}", f"shard.strategy={strategy}", "shard.num=4"
        ),
        multirun=True,
    )
    assert r.returncode == 0, r.stderr
    reports = [report(launch.job_dir / str(i)) for i in range(4)]
    assert sorted(rep["shard"]["idx"] for rep in reports) == [0, 1, 2, 3]
    assert sum(rep["processed"] for rep in reports) == 250
    assert all(40 <= rep["processed"] <= 85 for rep in reports)
    done = ledger.read_text().split()
    assert len(done) == len(set(done)) == 250
    single = tmp_path / "single"
    assert launch(*squares(single, "task.n=250")).returncode == 0
    assert files(out) == files(single)


def _wait_for_outputs(out: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and len(files(out)) >= n:
            return
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} outputs after {timeout}s")


@pytest.mark.timeout(180)
def test_kill_9_mid_run_then_rerun_equals_an_uninterrupted_run(launch, tmp_path):
    out = tmp_path / "out"
    args = squares(out, "task.n=300", "task.slow_s=0.01")
    proc = start(tmp_path / "killed", *args)
    _wait_for_outputs(out, 40, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(files(out))
    assert 40 <= partial < 300
    r = launch(*args)
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert rep["skipped"] >= partial - 2 and rep["skipped"] + rep["processed"] == 300
    clean = tmp_path / "clean"
    assert launch(*squares(clean, "task.n=300")).returncode == 0
    assert files(out) == files(clean)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert all(".tmp-" in name or name == ".launcher" for name in leftovers)


@pytest.mark.timeout(120)
def test_sigterm_stops_gracefully_and_keeps_the_work(launch, tmp_path):
    out = tmp_path / "out"
    args = squares(out, "task.n=400", "task.slow_s=0.02")
    job_dir = tmp_path / "stopped"
    proc = start(job_dir, *args)
    _wait_for_outputs(out, 20, proc)
    proc.send_signal(signal.SIGTERM)
    log_text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, log_text
    assert "received SIGTERM" in log_text
    rep = report(job_dir)
    assert rep["state"] == "interrupted" and rep["processed"] == len(files(out)) < 400
    progress = json.loads((job_dir / "progress.json").read_text())
    assert progress["state"] == "interrupted" and progress["processed"] == rep["processed"]
    r = launch(*args)
    assert r.returncode == 0
    assert report(launch.job_dir)["processed"] == 400 - rep["processed"]


@pytest.mark.timeout(120)
def test_sigterm_to_every_process_as_slurm_sends_it_keeps_the_work(launch, tmp_path):
    """scancel/preemption signal the whole job: workers and the forkserver too."""
    out = tmp_path / "out"
    args = squares(out, "task.n=400", "task.slow_s=0.02", "backbone.start_method=forkserver")
    job_dir = tmp_path / "stopped"
    proc = start(job_dir, *args)
    _wait_for_outputs(out, 20, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    log_text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, log_text
    assert "died" not in log_text
    rep = report(job_dir)
    assert rep["state"] == "interrupted" and rep["failed"] == 0
    assert rep["processed"] == len(files(out)) < 400
