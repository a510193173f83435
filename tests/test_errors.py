"""Every error a user can cause: one clear message naming the key or item, exit code 2."""

from __future__ import annotations

import pytest

from tests.conftest import report


@pytest.mark.parametrize(
    "args, message",
    [
        (["task=nope"], "Available options in 'task'"),
        (["backbone=nope"], "Available options in 'backbone'"),
        (["backbone.num_worker=4"], "backbone.num_worker"),
        (["backbone.num_workers=many"], "backbone.num_workers"),
        (["backbone.start_method=thread"], "backbone.start_method"),
        (["run.on_error=ignore"], "run.on_error"),
        (["typo=1"], "typo"),
        (["task.sizee=1"], "task.sizee"),
        (["task=squares"], "Missing required value(s): task.output_dir"),
        (["shard.num=4", "shard.idx=7"], "shard.idx=7 is out of range for shard.num=4"),
        (["shard.num=0"], "shard.num=0"),
        (["task.input_dir=/no/such/dir"], "task.input_dir='/no/such/dir' does not exist"),
        (["task.format=gif"], "task.format='gif'"),
        (["shard=hard"], "shard=hard needs a '{shard_idx}' placeholder in task.input_dir"),
    ],
)
def test_bad_config_exits_2_with_a_message_naming_the_key(launch, args, message):
    r = launch(*args)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert message in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["backbone.num_workers=-1"], "backbone.num_workers=-1 is out of range: must be >= 1"),
        (["backbone.num_workers=0"], "backbone.num_workers=0 is out of range"),
        (["backbone.chunksize=-1"], "backbone.chunksize=-1 is out of range"),
        (["backbone.batch_size=0"], "backbone.batch_size=0 is out of range"),
        (["run.item_timeout_s=-1"], "run.item_timeout_s=-1.0 is out of range: must be > 0"),
        (["run.item_timeout_s=nan"], "run.item_timeout_s=nan is out of range"),
        (["run.limit=-1"], "run.limit=-1 is out of range: must be >= 1"),
        (["run.limit=0"], "run.limit=0 is out of range"),
        (["run.max_failures=0"], "run.max_failures=0 is out of range"),
        (["run.grace_s=-2"], "run.grace_s=-2.0 is out of range: must be >= 0"),
        (["run.heartbeat_s=0"], "run.heartbeat_s=0.0 is out of range"),
        (["run.log_interval_s=-1"], "run.log_interval_s=-1.0 is out of range"),
        (["shard.sub_num=0"], "shard.sub_num=0"),
        (["backbone=torch", "backbone.batch_size=0"], "backbone.batch_size=0 is out of range"),
        (["backbone=torch", "backbone.num_workers=-1"], "num_workers=-1 is out of range: must be >= 0"),  # noqa: E501
        (["backbone=torch", "backbone.prefetch_factor=0"], "backbone.prefetch_factor=0 is out of"),
        (["backbone=torch", "backbone.postprocess_workers=0"], "postprocess_workers=0 is out of"),
    ],
)  # fmt: skip
def test_a_number_out_of_range_is_refused_before_any_work(launch, tmp_path, args, message):
    out = tmp_path / "out"
    r = launch("task=squares", f"task.output_dir={out}", *args)
    text = r.stdout + r.stderr
    assert r.returncode == 2, text
    assert message in text and "Traceback" not in text
    rep = report(launch.job_dir)
    assert (rep["state"], rep["exit_code"], rep["processed"]) == ("failed", 2, 0)
    assert not out.exists()


def test_input_that_is_a_file_or_empty(launch, tmp_path):
    (tmp_path / "file").write_text("x")
    r = launch(f"task.input_dir={tmp_path / 'file'}")
    assert r.returncode == 2 and "is not a directory" in r.stdout + r.stderr
    (tmp_path / "empty").mkdir()
    r = launch(f"task.input_dir={tmp_path / 'empty'}", f"task.output_dir={tmp_path / 'out'}")
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "No items found" in out and str(tmp_path / "empty") in out


def test_a_task_whose_listing_breaks_mid_run_keeps_the_work_done(launch, tmp_path):
    lst = tmp_path / "list.jsonl"
    lst.write_text("".join(f'"img{i}.png"\n' for i in range(30)) + "{not json\n")
    r = launch(
        f"task.input_dir={lst}",
        "task.input._target_=launcher.modes.FromJsonl",
        "~task.input.extensions",
        f"task.output_dir={tmp_path / 'out'}",
        "run.systematic_failures=null",  # every listed item fails alone, by design here
    )
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert f"{lst}:31: not valid JSON" in out
    rep = report(launch.job_dir)
    assert rep["failed"] == 30  # the listed images do not exist: each failed alone


def test_a_task_that_cannot_be_pickled_for_its_workers_is_named(launch, tmp_path):
    args = ["task=squares", f"task.output_dir={tmp_path / 'out'}", "task.unpicklable=true"]
    r = launch(*args)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "the task Squares cannot be pickled for backbone.start_method=forkserver" in out
    assert "setup_worker()" in out and "Traceback" not in out
    r = launch(*args, "backbone.start_method=fork")
    assert r.returncode == 0, r.stdout + r.stderr
    assert report(launch.job_dir)["processed"] == 100
