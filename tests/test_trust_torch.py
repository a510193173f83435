"""The torch backbone keeps mp's promises: a worker that dies or hangs costs only its item,
a stop signal is obeyed within run.grace_s, odd samples and wrong result counts fail alone."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from launcher.backbones.inflight import left_behind
from tests.conftest import failures, files, report, start
from tests.test_torch_backbone import make_inputs as rows

pytest.importorskip("torch")


def make_inputs(root: Path, n: int, words: dict[int, str] | None = None) -> dict[str, str]:
    """``n`` rows of 4 numbers (item ``i`` sums to ``i + 106``), or the given word instead;
    returns the expected output text per output name for the rows."""
    expected = rows(root, n, words)
    for i in words or {}:
        del expected[f"{i:04d}.txt.sum"]
    return expected


def args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "task=hostile_sum",
        f"task.input_dir={tmp_path / 'in'}",
        f"task.output_dir={tmp_path / 'out'}",
        "backbone=torch",
        *extra,
    ]


def outputs(tmp_path: Path) -> dict[str, str]:
    return {k: v.decode() for k, v in files(tmp_path / "out").items()}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("word", ["kill", "segv", "exit"])
def test_a_dataloader_worker_that_dies_costs_only_its_item(launch, tmp_path, word):
    expected = make_inputs(tmp_path / "in", 40, {13: word})
    extra = ("backbone.num_workers=2", "backbone.batch_size=4")
    r = launch(*args(tmp_path, *extra))
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["state"], rep["processed"], rep["failed"]) == ("completed", 39, 1)
    [f] = failures(launch.job_dir)
    assert f["item"] == "0013.txt" and f["error"] == "WorkerDied"
    assert "alone" in f["message"]
    assert outputs(tmp_path) == expected

    r = launch(*args(tmp_path, *extra))  # a rerun does not stall on it either
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["skipped"], rep["processed"], rep["failed"]) == (39, 0, 1)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("word", ["hang", "stall"], ids=["in-load", "in-model-step"])
def test_item_timeout_stops_a_hung_item_and_costs_only_it(launch, tmp_path, word):
    expected = make_inputs(tmp_path / "in", 30, {6: word})
    r = launch(
        *args(tmp_path, "backbone.num_workers=2", "backbone.batch_size=4", "run.item_timeout_s=1")
    )
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (29, 1)
    [f] = failures(launch.job_dir)
    assert (f["item"], f["error"]) == ("0006.txt", "ItemTimeout")
    assert "run.item_timeout_s=1" in f["message"]
    assert outputs(tmp_path) == expected
    assert "model step" in f["message"] if word == "stall" else "loading" in f["message"]


def test_item_timeout_without_dataloader_workers_is_refused(launch, tmp_path):
    make_inputs(tmp_path / "in", 3)
    r = launch(*args(tmp_path, "backbone.num_workers=0", "run.item_timeout_s=5"))
    assert r.returncode == 2
    assert "run.item_timeout_s=5.0 needs DataLoader workers" in r.stdout + r.stderr
    assert not (tmp_path / "out").exists() or outputs(tmp_path) == {}


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    job_dir = tmp_path / "job"
    return start(job_dir, *args(tmp_path, *extra)), job_dir


def _wait_for_outputs(tmp_path: Path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while len(list((tmp_path / "out").glob("*.sum"))) < n:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.1)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "extra",
    [
        ("backbone.num_workers=0",),
        ("backbone.num_workers=2",),
        ("backbone.num_workers=2", "task.slow_s=0.01"),  # batches pulled by the loader thread
    ],
    ids=["in-process", "workers", "loader-thread"],
)
def test_one_sigterm_stops_a_job_whose_loader_is_stuck(tmp_path, extra):
    one_sigterm_while_the_loader_is_stuck(tmp_path, *extra)


def one_sigterm_while_the_loader_is_stuck(tmp_path: Path, *extra: str) -> None:
    """Item 40 of 60 hangs in loading; one SIGTERM after 30 outputs ends the job: 143."""
    make_inputs(tmp_path / "in", 60, {40: "hang"})
    proc, job_dir = _start(tmp_path, "backbone.batch_size=2", "run.grace_s=5", *extra)
    _wait_for_outputs(tmp_path, 30, proc)
    time.sleep(1)  # the loader is now stuck on item 40
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    rep = report(job_dir)
    assert (rep["state"], rep["exit_code"], rep["failed"]) == ("interrupted", 143, 0)
    assert rep["processed"] == len(outputs(tmp_path)) >= 30


@pytest.mark.timeout(300)
def test_grace_period_is_a_deadline_for_a_stuck_model_step(tmp_path):
    make_inputs(tmp_path / "in", 10)
    proc, job_dir = _start(tmp_path, "backbone.num_workers=0", "task.slow_s=3600", "run.grace_s=2")
    records = tmp_path / "out" / ".launcher"
    deadline = time.monotonic() + 120
    while not any(  # the in-flight record names an item inside the model step (never ends)
        (left_behind(str(p)) or {}).get("stages", {}).get("model")
        for p in records.glob("inflight-*.json")
    ):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    rep = report(job_dir)
    assert (rep["state"], rep["exit_code"], rep["processed"]) == ("interrupted", 143, 0)
    assert "grace_s" in rep["stop_reason"]


def test_odd_shapes_and_missing_fields_are_handed_on_as_batches_of_one(launch, tmp_path):
    expected = make_inputs(tmp_path / "in", 24, {3: "odd", 9: "nox", 10: "nox"})
    expected.update({"0003.txt.sum": "106\n", "0009.txt.sum": "106\n", "0010.txt.sum": "106\n"})
    r = launch(*args(tmp_path, "backbone.num_workers=2", "backbone.batch_size=8"))
    assert r.returncode == 0, r.stderr
    assert (report(launch.job_dir)["processed"], report(launch.job_dir)["failed"]) == (24, 0)
    assert outputs(tmp_path) == expected


@pytest.mark.parametrize("results", ["drop", "extra"])
def test_inference_with_a_wrong_result_count_fails_its_batch(launch, tmp_path, results):
    make_inputs(tmp_path / "in", 12)
    r = launch(
        *args(
            tmp_path, f"task.results={results}", "backbone.num_workers=0", "backbone.batch_size=4"
        )
    )
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (0, 12)
    f = failures(launch.job_dir)[0]
    assert f["error"] == "ResultCountError" and "for a batch of 4 item(s)" in f["message"]
    assert outputs(tmp_path) == {}
    assert json.loads((launch.job_dir / "report.json").read_text())["state"] == "completed"


def test_a_dataset_task_without_a_done_check_says_it_redoes_everything(launch, tmp_path):
    r = launch("task=dataset_sum", f"task.output_dir={tmp_path / 'out'}", "backbone=torch")
    assert r.returncode == 0, r.stderr
    assert report(launch.job_dir)["processed"] == 8
    assert (r.stdout + r.stderr).count("every run redoes every item") == 1
    assert (tmp_path / "out" / "7.sum").read_text() == "13\n"


def test_a_done_check_asking_for_loaded_fields_is_told_what_it_gets(launch, tmp_path):
    out = tmp_path / "out"
    r = launch("task=dataset_sum", f"task.output_dir={out}", "task.check=loaded")
    assert r.returncode == 2, r.stdout + r.stderr
    text = " ".join((r.stdout + r.stderr).split())
    assert "DatasetSumLoadedCheck.is_each_executed() cannot be called with item" in text
    assert "missing a required argument: 'x'" in text
    assert "before anything is loaded" in text and "own fields (key, index)" in text
    assert not out.exists() or not list(out.glob("*.sum"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("word", ["hang", "stall"], ids=["in-load", "in-model-step"])
def test_on_mp_a_batched_task_times_out_the_hung_item_only(launch, tmp_path, word):
    expected = make_inputs(tmp_path / "in", 24, {6: word})
    r = launch(
        *args(tmp_path, "backbone=mp", "backbone.num_workers=2", "backbone.batch_size=4"),
        "run.item_timeout_s=1",
    )
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["backbone"]["name"], rep["processed"], rep["failed"]) == ("mp", 23, 1)
    [f] = failures(launch.job_dir)
    assert (f["item"], f["error"]) == ("0006.txt", "ItemTimeout")
    assert outputs(tmp_path) == expected


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", ["backbone.num_workers=0", "task.slow_s=0.05"])
def test_without_workers_a_crash_is_named_and_the_rerun_loads_that_item_alone(
    launch, tmp_path, workers
):
    """With no DataLoader workers, set or by default on the CPU (loading starts in the
    job's process; the first decision to move it comes after 9 batches, past the item at
    fault here), a load_data that segfaults ends the job; the in-flight record names the
    item and every rerun loads it alone in a worker."""
    expected = make_inputs(tmp_path / "in", 20, {5: "segv"})
    extra = (workers, "backbone.batch_size=1")
    r = launch(*args(tmp_path, *extra))
    assert r.returncode == -signal.SIGSEGV, r.stderr
    [record] = (tmp_path / "out" / ".launcher").glob("inflight-*.json")
    stages = json.loads(record.read_text())["stages"]
    assert stages["loading"] == ["0005.txt"] and "0005.txt" not in stages["model"]

    for rerun in range(2):  # the next runs load it alone in a DataLoader worker
        r = launch(*args(tmp_path, *extra))
        assert r.returncode == 1, r.stdout + r.stderr
        rep = report(launch.job_dir)
        assert (rep["processed"] + rep["skipped"], rep["failed"]) == (19, 1)
        [f] = failures(launch.job_dir)
        assert (f["item"], f["error"]) == ("0005.txt", "WorkerDied")
        assert outputs(tmp_path) == expected
        named = "ended without a report while these items were in flight: loading: 0005.txt"
        assert (named in " ".join((r.stdout + r.stderr).split())) == (rerun == 0)
