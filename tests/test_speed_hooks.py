"""The speed opt-ins of issue 14, end to end through ``launch.py``: ``Task.process_chunk``
(one call per chunk of tiny items) and ``Task.unfinished`` (one done check per block)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from launcher.driving import Driven
from tests.conftest import failures, files, report
from tests.sample_tasks import Squares
from tests.speed_tasks import DoneSetSquares


def chunked(out: Path, *extra: str) -> list[str]:
    return ["task=chunk_squares", f"task.output_dir={out}", *extra]


def keys(lo: int, hi: int) -> set[str]:
    return {f"{i:06d}" for i in range(lo, hi)}


@pytest.mark.timeout(120)
def test_process_chunk_processes_every_item_and_skips_done_ones(launch, tmp_path):
    out = tmp_path / "out"
    r = launch(*chunked(out, "task.n=3000"))
    assert r.returncode == 0, r.stderr + r.stdout
    rep = report(launch.job_dir)
    assert (rep["total"], rep["processed"], rep["failed"]) == (3000, 3000, 0)
    assert len(files(out)) == 3000 and (out / "002999.txt").read_text() == "2999 8994001\n"
    (out / "000500.txt").unlink()
    r = launch(*chunked(out, "task.n=3000"))
    assert r.returncode == 0, r.stderr + r.stdout
    rep = report(launch.job_dir)
    assert (rep["skipped"], rep["processed"]) == (2999, 1)


@pytest.mark.timeout(120)
def test_process_chunk_failures_are_recorded_per_item(launch, tmp_path):
    out, fault, ledger = tmp_path / "out", tmp_path / "fault", tmp_path / "ledger"
    fault.touch()
    r = launch(
        *chunked(out, "task.n=200", "task.fail_mod=7", f"task.fault_file={fault}"),
        *(f"task.ledger={ledger}", "task.raise_key=000015", "backbone.chunksize=10"),
    )
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    bad = {f"{i:06d}" for i in range(0, 200, 7)}
    assert (rep["processed"], rep["failed"]) == (200 - len(bad) - 1, len(bad) + 1)
    by_item = {f["item"]: f["error"] for f in failures(launch.job_dir)}
    assert by_item == {**dict.fromkeys(bad, "ValueError"), "000015": "RuntimeError"}
    assert set(files(out)) == {f"{k}.txt" for k in keys(0, 200) - bad - {"000015"}}
    # the chunk 10-19 raised at 15: its items ran again alone; nothing else ran twice
    twice = {k for k, n in Counter(ledger.read_text().split()).items() if n > 1}
    assert twice <= keys(10, 15)


def test_a_wrong_answer_from_process_chunk_fails_each_item_saying_why(launch, tmp_path):
    # every item fails the same way on purpose: no early stop for a systematic failure
    r = launch(
        *chunked(tmp_path / "out", "task.n=30", "task.bad_answer=true"),
        "run.systematic_failures=null",
    )
    assert r.returncode == 1, r.stderr
    fails = failures(launch.job_dir)
    assert sorted(f["item"] for f in fails) == sorted(keys(0, 30))
    assert {f["error"] for f in fails} == {"TypeError"}
    assert "must return None or {position in items: exception}" in fails[0]["message"]


@pytest.mark.timeout(120)
def test_a_worker_killed_in_process_chunk_costs_its_chunk_and_blames_one_item(launch, tmp_path):
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    r = launch(
        *chunked(out, "task.n=2000", "task.kill_key=001550", f"task.ledger={ledger}"),
        "backbone.chunksize=100",
        timeout=100,
    )
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (1999, 1)
    (fail,) = failures(launch.job_dir)
    assert (fail["item"], fail["error"]) == ("001550", "WorkerDied")
    assert "SIGKILL" in fail["message"]
    assert len(files(out)) == 1999
    runs = Counter(ledger.read_text().split())
    assert set(runs) == keys(0, 2000) - {"001550"}
    # what ran before the kill in its chunk ran again alone; nothing recorded done ran twice
    assert {k for k, n in runs.items() if n > 1} == keys(1500, 1550)
    assert max(runs.values()) == 2


@pytest.mark.timeout(120)
def test_a_chunk_over_the_time_limit_is_retried_item_by_item(launch, tmp_path):
    out = tmp_path / "out"
    r = launch(
        *chunked(out, "task.n=50", "task.hang_key=000027", "run.item_timeout_s=2"),
        "backbone.chunksize=10",
        timeout=100,
    )
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (49, 1)
    (fail,) = failures(launch.job_dir)
    assert (fail["item"], fail["error"]) == ("000027", "ItemTimeout")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("start_method", ["forkserver", "fork"])
def test_a_block_level_done_check_replaces_is_executed(launch, tmp_path, start_method):
    """The done set is named planning-only: the workers' task has none (its process()
    fails any item if it has), and the planner still answers from it."""
    out = tmp_path / "out"
    r = launch(
        "task=done_set_squares", f"task.output_dir={out}", "task.n=5000",
        f"backbone.start_method={start_method}",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    rep = report(launch.job_dir)
    assert (rep["total"], rep["skipped"], rep["processed"]) == (5000, 4500, 500)
    assert set(files(out)) == {f"{i:06d}.txt" for i in range(0, 5000, 10)}


def test_planning_only_attributes_stay_with_the_launching_process(tmp_path):
    task = DoneSetSquares(output_dir=str(tmp_path), n=20)
    lean = Driven.of(task).worker_side(num_workers=1, batch_size=1)
    assert "done" not in vars(lean) and len(task.done) == 18  # the job's own task keeps it
    assert lean.n == 20 and lean.output_dir == str(tmp_path)
    plain = Squares(output_dir=str(tmp_path))
    assert (
        Driven.of(plain).worker_side(num_workers=1, batch_size=1) is plain
    )  # nothing named: nothing copied


def test_a_block_level_done_check_with_a_limit(launch, tmp_path):
    out = tmp_path / "out"
    r = launch("task=done_set_squares", f"task.output_dir={out}", "task.n=5000", "run.limit=25")
    assert r.returncode == 0, r.stderr + r.stdout
    assert set(files(out)) == {f"{i:06d}.txt" for i in range(0, 250, 10)}
    r = launch(
        "task=done_set_squares", f"task.output_dir={out}", "task.n=5000", "run.limit=25",
        "task.copies=true",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout  # equal copies: traded for the items
    assert report(launch.job_dir)["processed"] == 25
    assert set(files(out)) == {f"{i:06d}.txt" for i in range(0, 250, 10)}
