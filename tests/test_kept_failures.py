"""Issue 20, failure records and retries: the set ``run.retry_failed=true`` retries only
shrinks by items that have since succeeded, jobs sharing a state dir never overwrite
each other's records, and a refused job truncates nothing. Real jobs through
``launch.py``; the ground truth is a ledger of the items each run processed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.conftest import failures, report, start
from tests.test_trust import kept_failures, wait_for

FAILING = [f"{i:06d}" for i in range(0, 50, 5)]  # squares n=50 fail_mod=5


def squares(out: Path, fault: Path, ledger: Path, *extra: str) -> list[str]:
    return [
        "task=squares",
        f"task.output_dir={out}",
        "task.n=50",
        "task.fail_mod=5",
        f"task.fault_file={fault}",
        f"task.ledger={ledger}",
        *extra,
    ]


def ledger_keys(ledger: Path) -> list[str]:
    return ledger.read_text().split() if ledger.exists() else []


def fail_first(launch, tmp_path: Path) -> tuple[list[str], Path, Path]:
    """A first run in which the ten items ``FAILING`` fail; the args that ran it."""
    out, fault, ledger = tmp_path / "out", tmp_path / "fault", tmp_path / "ledger"
    fault.touch()
    args = squares(out, fault, ledger)
    assert launch(*args).returncode == 1
    assert sorted(f["item"] for f in failures(launch.job_dir)) == FAILING
    ledger.unlink()
    return args, fault, ledger


one_at_a_time = ("backbone.num_workers=1", "backbone.chunksize=1")


@pytest.mark.parametrize("stop", ["run.max_failures=2", "run.limit=3", "run.systematic_failures=2"])
def test_a_retry_that_stops_early_keeps_the_failures_it_did_not_reach(launch, tmp_path, stop):
    args, fault, ledger = fail_first(launch, tmp_path)
    r = launch(*args, "run.retry_failed=true", stop, *one_at_a_time)  # still failing
    assert r.returncode == 1, r.stdout + r.stderr
    assert 0 < report(launch.job_dir)["failed"] < len(FAILING)
    fault.unlink()
    r = launch(*args, "run.retry_failed=true")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = report(launch.job_dir)
    # a retry reports the shard's whole count: the items not retried are done, skipped
    assert (rep["total"], rep["processed"], rep["skipped"]) == (50, len(FAILING), 40)
    assert sorted(ledger_keys(ledger)) == FAILING


def test_the_retry_set_shrinks_only_by_the_items_that_succeeded(launch, tmp_path):
    args, fault, ledger = fail_first(launch, tmp_path)
    fault.unlink()
    assert launch(*args, "run.retry_failed=true", "run.limit=4", *one_at_a_time).returncode == 0
    assert ledger_keys(ledger) == FAILING[:4]
    assert launch(*args, "run.retry_failed=true").returncode == 0
    assert report(launch.job_dir)["processed"] == len(FAILING) - 4
    assert sorted(ledger_keys(ledger)) == FAILING
    assert launch(*args, "run.retry_failed=true").returncode == 0
    assert (report(launch.job_dir)["processed"], report(launch.job_dir)["skipped"]) == (0, 50)
    assert [p.read_text() for p in kept_failures(tmp_path / "out")] == [""]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_retry_stopped_by_a_signal_keeps_what_it_did_not_reach(launch, tmp_path, sig):
    args, fault, ledger = fail_first(launch, tmp_path)
    fault.unlink()
    retry = [*args, "run.retry_failed=true", "task.slow_s=0.3", *one_at_a_time]
    proc = start(tmp_path / "stopped", *retry)
    wait_for(lambda: len(ledger_keys(ledger)) >= 2, proc)
    os.killpg(proc.pid, sig)
    proc.communicate(timeout=120)
    reached = ledger_keys(ledger)
    assert 2 <= len(reached) < len(FAILING)
    r = launch(*retry)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(set(ledger_keys(ledger))) == FAILING
    rep = report(launch.job_dir)
    assert rep["processed"] + rep["skipped"] == rep["total"] >= len(FAILING) - len(reached)


def test_two_tasks_sharing_a_state_dir_keep_their_own_failures(launch, tmp_path):
    args, fault, ledger = fail_first(launch, tmp_path)
    state = tmp_path / "state"
    args = [*args, f"run.state_dir={state}"]
    assert launch(*args).returncode == 1  # its failures, now in the shared state dir
    other = ["task=squares", f"task.output_dir={tmp_path / 'other'}", f"run.state_dir={state}"]
    assert launch(*other, "task.n=20").returncode == 0  # shard-0-of-1 too, nothing failed
    fault.unlink()
    assert launch(*args, "run.retry_failed=true").returncode == 0
    assert report(launch.job_dir)["processed"] == len(FAILING)
    assert sorted(ledger_keys(ledger)) == FAILING


def test_two_splits_with_one_shard_tag_keep_their_own_failures(launch, tmp_path):
    out, fault, ledger = tmp_path / "out", tmp_path / "fault", tmp_path / "ledger"
    fault.touch()
    contiguous = [*squares(out, fault, ledger), "shard.num=2", "shard.idx=0"]
    contiguous.append("shard.strategy=contiguous")  # items 0..24: 0, 5, ... 20 fail
    assert launch(*contiguous).returncode == 1
    fault.unlink()
    modulo = [*squares(out, fault, ledger), "shard.num=2", "shard.idx=0"]  # also shard-0-of-2
    assert launch(*modulo).returncode == 0
    ledger.unlink()
    assert launch(*contiguous, "run.retry_failed=true").returncode == 0
    assert sorted(ledger_keys(ledger)) == ["000005", "000015"]  # 0, 10, 20: done by modulo
    assert (out / "000015.txt").exists()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("why", ["locked", "bad_config"])
def test_a_refused_job_truncates_nothing_of_the_job_running_in_its_job_dir(tmp_path, why):
    """A second job into a running job's dir (a relaunch, a fixed hydra.run.dir)."""
    out, fault, ledger, job_dir = (tmp_path / n for n in ("out", "fault", "ledger", "job"))
    fault.touch()
    args = [*squares(out, fault, ledger), "task.slow_s=0.2", *one_at_a_time]
    first = start(job_dir, *args)
    has = job_dir / "failures.jsonl"
    wait_for(lambda: has.exists() and len(failures(job_dir)) >= 2, first)  # it has failures
    second = start(job_dir, *args, *(["run.grace_s=-1"] if why == "bad_config" else []))
    text = second.communicate(timeout=120)[0]
    assert second.returncode == 2, text
    assert "not written: another job still runs" in text, text
    assert first.wait(timeout=120) == 1, first.communicate()[0]
    rep = report(job_dir)
    assert (rep["pid"], rep["processed"], rep["failed"]) == (first.pid, 40, 10), rep
    assert sorted(f["item"] for f in failures(job_dir)) == FAILING
