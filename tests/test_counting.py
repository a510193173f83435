"""Issue 20, counting and stopping: the systematic-failure stop decides by item position,
what ``unfinished()`` returns is checked like items are, a bare-string ``planning_only``
names one attribute, and a healthy ``process_chunk`` chunk is never killed for its
length. Real jobs through ``launch.py``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import report
from tests.test_trust import hostile

COUNTS = ("total", "skipped", "processed", "failed", "pending")


def test_a_success_in_flight_among_the_first_items_prevents_the_systematic_stop(launch, tmp_path):
    """Item 0 succeeds slowly on one worker while items 1.. fail at once on the other."""
    args = hostile(tmp_path / "out", "task.n=30", "task.fault=all_fail_but_at", "task.at=0",
                   "task.sleep_s=3", "run.systematic_failures=5", "backbone.num_workers=2",
                   "backbone.chunksize=1")  # fmt: skip
    r = launch(*args)
    assert r.returncode == 1, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["state"], rep["processed"], rep["failed"]) == ("completed", 1, 29), rep
    assert rep["stop_reason"] is None


def test_the_systematic_stop_still_comes_when_the_first_items_all_fail(launch, tmp_path):
    args = hostile(
        tmp_path / "out",
        "task.n=30",
        "task.fault=all_fail_but_at",
        "task.at=29",
        "run.systematic_failures=5",
        "backbone.num_workers=1",
        "backbone.chunksize=1",
    )
    r = launch(*args)
    assert r.returncode == 1, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert rep["state"] == "aborted" and rep["stop_reason"].startswith("the first 5 items all")
    assert rep["processed"] == 0 and 5 <= rep["failed"] < 29


def bad_unfinished(out: Path, answer: str) -> list[str]:
    return ["task=bad_unfinished", f"task.output_dir={out}", f"task.answer={answer}"]


@pytest.mark.parametrize("answer", ["list", "generator", "copies", "reversed"])
def test_what_unfinished_returns_is_taken_when_it_means_the_items(launch, tmp_path, answer):
    r = launch(*bad_unfinished(tmp_path / "out", answer))
    assert r.returncode == 0, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert [rep[k] for k in COUNTS] == [8, 4, 4, 0, 0]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.txt")) == [
        f"{i:04d}.txt" for i in (1, 3, 5, 7)
    ]


@pytest.mark.parametrize("answer", ["duplicates", "foreign", "none"])
def test_what_unfinished_returns_is_refused_when_it_is_not_the_items(launch, tmp_path, answer):
    r = launch(*bad_unfinished(tmp_path / "out", answer))
    text = r.stdout + r.stderr
    assert r.returncode == 2, text
    assert "BadUnfinished.unfinished()" in text and "Traceback" not in text
    rep = report(launch.job_dir)
    assert all(rep[k] is None or rep[k] >= 0 for k in COUNTS), rep
    assert rep["skipped"] == rep["total"] - (rep["pending"] or 0) - rep["processed"]


def test_chunks_whose_items_each_finish_in_time_are_never_killed(launch, tmp_path):
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    r = launch(
        "task=chunk_squares",
        f"task.output_dir={out}",
        "task.n=24",
        "task.slow_s=0.3",
        f"task.ledger={ledger}",
        "run.item_timeout_s=2",
        "backbone.num_workers=1",
        "backbone.chunksize=12",  # a chunk: 3.6 s of work, each of its items 0.3 s
    )
    assert r.returncode == 0, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"], rep["backbone"]["workers_started"]) == (24, 0, 1)
    assert Counter(ledger.read_text().split()) == Counter(f"{i:06d}" for i in range(24))


class _Uncomparable(dict):
    """An item that refuses ``==``: what a check by equality would pay for large fields."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        raise AssertionError("an item was compared with ==")


def test_a_right_unfinished_answer_is_checked_by_identity_alone():
    from types import SimpleNamespace

    from launcher.driving import Driven
    from launcher.plan import Plan
    from launcher.shard import Shard
    from launcher.stats import Stats
    from launcher.task import Task

    class OddsLeft(Task):
        def generate_tasks(self):
            return (_Uncomparable(key=f"{i:04d}", x=i) for i in range(10_000))

        def unfinished(self, items):
            return (it for it in items if it["x"] % 2)  # any iterable of the block's own items

        def process(self, **item):
            pass

    whole = SimpleNamespace(num=1, idx=0, strategy="modulo", sub_num=1, sub_idx=0)
    stats = Stats()
    plan = Plan(Driven.of(OddsLeft()), Shard.from_config(whole), stats)
    taken = []
    while block := plan.take(4096):
        taken += [it["x"] for it in block]
    assert taken == list(range(1, 10_000, 2))
    assert (stats.total, stats.skipped, stats.pending) == (10_000, 5_000, 5_000)
