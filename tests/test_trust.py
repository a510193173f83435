"""Issue 11: a job always ends, its records never lie, inputs are never touched, outputs
never re-read, slow items use every worker, user code written the ordinary way works,
and one shard runs once at a time. Real jobs through ``launch.py``; hang cases under a
generous timeout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from launcher.io import HOST_ID
from tests.conftest import REPO, failures, files, launch_argv, report, start, status


def hostile(out: Path, *extra: str) -> list[str]:
    return ["task=hostile", f"task.output_dir={out}", *extra]


def wait_for(check, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout}s")


def ended_badly(job_dir: Path, code: int, state: str = "failed") -> dict:
    """The job's report says what the process said, and status does not call it done."""
    rep = report(job_dir)
    assert (rep["state"], rep["exit_code"]) == (state, code), rep
    assert status(job_dir).returncode != 0
    return rep


def kept_failures(out: Path) -> list[Path]:
    """The failure files kept for retries beside the outputs in ``out``."""
    return sorted(out.glob(".launcher/failures/*/*.jsonl"))


def images(root: Path, names: list[str]) -> None:
    from PIL import Image

    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 24), (len(name) * 9 % 256, 90, 160)).save(path)


# -- 1. a job always ends ------------------------------------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", ["exit0", "fork_child"])
def test_a_worker_that_exits_holding_an_item_is_a_dead_worker(tmp_path, fault):
    """os._exit(0) in process(); a forked child keeping the worker's pipes open."""
    pids, job_dir, log = tmp_path / "children", tmp_path / "job", tmp_path / "log"
    method = ["backbone.start_method=fork"] if fault == "fork_child" else []
    args = hostile(tmp_path / "out", f"task.fault={fault}", f"task.pidfile={pids}", *method)
    try:  # the children hold any pipe the job had: its output goes to a file
        with open(log, "w") as f:
            run = launch_argv(*args, job_dir=job_dir)
            code = subprocess.run(run, cwd=REPO, stdout=f, stderr=f, timeout=100).returncode
    finally:
        for pid in pids.read_text().split() if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    assert code == 1, log.read_text()
    rep = report(job_dir)
    assert (rep["state"], rep["processed"], rep["failed"]) == ("completed", 7, 1)
    (fail,) = failures(job_dir)
    assert (fail["item"], fail["error"]) == ("0003", "WorkerDied")
    assert len(files(tmp_path / "out")) == 7


@pytest.mark.timeout(180)
def test_an_item_that_killed_its_worker_once_is_retried_alone_and_done(tmp_path):
    """The first death only makes the item a suspect: it fails as WorkerDied only if it
    kills the worker it then runs in alone."""
    job_dir, out = tmp_path / "job", tmp_path / "out"
    run = launch_argv(*hostile(out, "task.fault=dies_once"), job_dir=job_dir)
    r = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = report(job_dir)
    assert (rep["state"], rep["processed"], rep["failed"]) == ("completed", 8, 0)
    assert (out / ".0003.died").exists()  # it did kill a worker once
    assert (out / "0003.txt").read_text() == "3\n" and len(files(out)) == 8


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["forkserver", "fork"])
def test_an_item_that_cannot_be_pickled_fails_alone(launch, tmp_path, method):
    r = launch(
        *hostile(tmp_path / "out", "task.fault=unpicklable_item", f"backbone.start_method={method}")
    )
    assert r.returncode == 1, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (7, 1)
    (fail,) = failures(launch.job_dir)
    assert fail["item"] == "0003" and "cannot be sent to a worker" in fail["message"]


def test_a_sweep_of_no_shard_is_refused(launch, tmp_path):
    r = launch(*hostile(tmp_path / "out", "shard.num=0"), multirun=True)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "shard.num must be an integer >= 1" in r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(120)
def test_sigterm_ends_the_whole_job_within_one_grace_period(tmp_path):
    job_dir, begun = tmp_path / "job", tmp_path / "begun"
    args = hostile(
        tmp_path / "out", "task.n=6", "task.sleep_s=60", "backbone.num_workers=6", "run.grace_s=2"
    )
    proc = start(job_dir, *args, f"task.begun={begun}", "run.heartbeat_s=0.2")
    wait_for(lambda: begun.exists() and len(begun.read_text().split()) == 6, proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert took < 15, f"{took:.1f}s after SIGTERM with run.grace_s=2 (6 workers)"
    rep = ended_badly(job_dir, 143, "interrupted")
    # the grace period was waited out, then the six hung items abandoned: pending, not lost
    assert (rep["processed"], rep["pending"]) == (0, 6) and rep["elapsed_s"] >= 2, rep


@pytest.mark.timeout(120)
def test_a_second_ctrl_c_abandons_the_items_in_flight_at_once(tmp_path):
    """The first SIGINT waits for items in flight (here up to an hour: run.grace_s=3600);
    the second stops waiting, and the records still say what happened."""
    job_dir, begun = tmp_path / "job", tmp_path / "begun"
    args = hostile(tmp_path / "out", "task.n=4", "task.sleep_s=600", "backbone.num_workers=2")
    proc = start(job_dir, *args, f"task.begun={begun}", "run.grace_s=3600")
    log_file = job_dir / "job.log"
    wait_for(lambda: begun.exists() and len(begun.read_text().split()) == 2, proc)
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: "received SIGINT" in log_file.read_text(), proc)
    assert proc.poll() is None  # the first Ctrl-C waits for the hour-long items
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, out
    rep = ended_badly(job_dir, 128 + signal.SIGINT, "interrupted")
    assert rep["processed"] == 0 and "interrupted twice" in rep["stop_reason"], rep


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_during_a_long_listing_stops_planning(tmp_path, sig):
    job_dir = tmp_path / "job"
    proc = start(job_dir, *hostile(tmp_path / "out", "task.fault=slow_listing"))
    wait_for(lambda: (job_dir / "progress.json").exists(), proc)
    time.sleep(1)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)  # the listing alone would take 120 s
    assert proc.returncode == 128 + sig, out
    ended_badly(job_dir, 128 + sig, "interrupted")


@pytest.mark.timeout(120)
def test_sighup_stops_a_running_job_like_sigterm(tmp_path):
    job_dir, out = tmp_path / "job", tmp_path / "out"
    proc = start(job_dir, *hostile(out, "task.n=200", "task.sleep_s=0.05"))
    wait_for(lambda: out.exists() and len(files(out)) >= 5, proc)
    proc.send_signal(signal.SIGHUP)
    log_text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGHUP, log_text
    rep = ended_badly(job_dir, 129, "interrupted")
    assert "received SIGHUP" in log_text and rep["processed"] == len(files(out)) < 200


@pytest.mark.timeout(120)
def test_sigterm_during_setup_leaves_an_interrupted_report(tmp_path):
    job_dir = tmp_path / "job"
    proc = start(job_dir, *hostile(tmp_path / "out", "task.fault=slow_setup"))
    wait_for(lambda: (job_dir / "progress.json").exists(), proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    ended_badly(job_dir, 143, "interrupted")


# -- 2. the records never lie --------------------------------------------------------------------


def test_no_items_found_is_a_failed_report(launch, tmp_path):
    (tmp_path / "empty").mkdir()
    r = launch(f"task.input_dir={tmp_path / 'empty'}", f"task.output_dir={tmp_path / 'out'}")
    assert r.returncode == 2 and "No items found" in r.stdout + r.stderr
    ended_badly(launch.job_dir, 2)


def test_an_empty_hard_shard_folder_is_a_failed_report(launch, tmp_path):
    (tmp_path / "part_0").mkdir()
    r = launch(
        f"task.input_dir='{tmp_path}/part_{{shard_idx}}'",
        f"task.output_dir={tmp_path / 'out'}",
        "shard=hard",
    )
    assert r.returncode == 2, r.stdout + r.stderr
    ended_badly(launch.job_dir, 2)


def test_a_bad_jsonl_line_after_work_is_a_failed_report(launch, tmp_path):
    images(tmp_path / "in", ["a.png", "b.png"])
    lst = tmp_path / "list.jsonl"
    lst.write_text('"in/a.png"\n"in/b.png"\n{oops\n')
    r = launch(
        f"task.input_dir={lst}",
        "task.input._target_=launcher.modes.FromJsonl",
        "~task.input.extensions",
        f"task.output_dir={tmp_path / 'out'}",
    )
    assert r.returncode == 2, r.stdout + r.stderr
    rep = ended_badly(launch.job_dir, 2)
    assert rep["processed"] == 2 and ":3: not valid JSON" in rep["error"]


@pytest.mark.parametrize(
    "fault, code, shown",
    [
        ("listing_raises_first", 1, "ValueError: the listing broke before its first item"),
        ("listing_raises", 1, "RuntimeError: the listing broke midway"),
        ("setup_raises", 1, "RuntimeError: setup could not reach the database"),
    ],
)
def test_user_code_that_raises_outside_items_leaves_a_failed_report(
    launch, tmp_path, fault, code, shown
):
    r = launch(*hostile(tmp_path / "out", f"task.fault={fault}"))
    out = r.stdout + r.stderr
    assert r.returncode == code, out
    assert shown in out and "No items found" not in out
    assert shown in ended_badly(launch.job_dir, code)["error"]


def test_teardown_raising_comes_after_the_records(launch, tmp_path):
    out = tmp_path / "out"
    r = launch(*hostile(out, "task.fault=teardown_raises"))
    assert r.returncode == 1, r.stdout + r.stderr
    rep = ended_badly(launch.job_dir, 1)
    assert rep["processed"] == 8 and "teardown could not close" in rep["error"]
    assert len(kept_failures(out)) == 1


def test_an_output_or_state_folder_that_cannot_be_made_is_named(launch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = launch(*hostile(blocker / "out"))
    assert r.returncode == 2 and "task.output_dir" in r.stdout + r.stderr
    ended_badly(launch.job_dir, 2)
    r = launch(*hostile(tmp_path / "out", f"run.state_dir={blocker}"))
    assert r.returncode == 2 and "run.state_dir" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    ended_badly(launch.job_dir, 2)


@pytest.mark.skipif(__import__("importlib").util.find_spec("torch") is None, reason="needs torch")
def test_an_unavailable_cuda_device_is_a_failed_report(launch, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("1 2 3")
    r = launch(
        "task=sum_model",
        f"task.input_dir={tmp_path / 'in'}",
        f"task.output_dir={tmp_path / 'out'}",
        "backbone=torch",
        "backbone.device=cuda",
    )
    assert r.returncode == 2 and "CUDA is not available" in r.stdout + r.stderr
    ended_badly(launch.job_dir, 2)


def test_a_rerun_into_the_same_job_dir_starts_failures_afresh(tmp_path):
    job_dir, out, fault = tmp_path / "job", tmp_path / "out", tmp_path / "fault"
    fault.touch()
    args = ["task=squares", f"task.output_dir={out}", "task.n=20", "task.fail_mod=5"]
    args.append(f"task.fault_file={fault}")
    r = subprocess.run(
        launch_argv(*args, job_dir=job_dir), cwd=REPO, capture_output=True, timeout=120
    )
    assert r.returncode == 1 and len(failures(job_dir)) == 4
    fault.unlink()
    r = subprocess.run(
        launch_argv(*args, job_dir=job_dir), cwd=REPO, capture_output=True, timeout=120
    )
    assert r.returncode == 0
    assert failures(job_dir) == [] and report(job_dir)["processed"] == 4
    assert status(job_dir).returncode == 0
    assert [p.read_text() for p in kept_failures(out)] == [""]


def test_retry_failed_with_a_damaged_failures_file_names_it(launch, tmp_path):
    out = tmp_path / "out"
    assert launch(*hostile(out, "task.fault=sys_exit")).returncode == 1
    (damaged,) = kept_failures(out)
    damaged.write_text('{"item": "0001", "error": "E"}\n{"item": "00\n')
    r = launch(*hostile(out, "task.fault=sys_exit", "run.retry_failed=true"))
    text = r.stdout + r.stderr
    assert r.returncode == 2 and f"{damaged}:2: a damaged failure record" in text
    assert "Traceback" not in text
    ended_badly(launch.job_dir, 2)


def test_shards_started_by_hand_in_the_same_second_get_a_job_dir_each(tmp_path):
    procs = [
        subprocess.Popen(
            launch_argv(*hostile(tmp_path / "out", "shard.num=2", f"shard.idx={i}")),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    reports = sorted((tmp_path / "outputs" / "runs").glob("*/*/report.json"))
    assert len(reports) == 2
    assert sorted(json.loads(p.read_text())["shard"]["idx"] for p in reports) == [0, 1]


# -- 3. inputs never touched, outputs never re-read ---------------------------------------------


def test_absolute_paths_in_a_jsonl_list_write_under_the_output_dir(launch, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    images(inputs, ["a.png", "sub/b.png"])
    before = files(inputs)
    lst = tmp_path / "list.jsonl"
    lst.write_text("".join(json.dumps(str(inputs / n)) + "\n" for n in ("a.png", "sub/b.png")))
    r = launch(
        f"task.input_dir={lst}",
        "task.input._target_=launcher.modes.FromJsonl",
        "~task.input.extensions",
        f"task.output_dir={out}",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert files(inputs) == before
    assert sorted(files(out)) == ["in/a.png.jpeg", "in/sub/b.png.jpeg"]


@pytest.mark.parametrize("fault, message", [
    ("outside", "is outside task.output_dir"),
    ("dup_key", "gave the key '0000' twice"),
    ("collide", "both map to the output"),
    ("non_dict", "each item must be a dict"),
])  # fmt: skip
def test_items_that_would_overwrite_or_escape_are_refused(launch, tmp_path, fault, message):
    out = tmp_path / "out"
    r = launch(*hostile(out, f"task.fault={fault}", "task.n=40"))
    text = r.stdout + r.stderr
    assert r.returncode == 2 and message in text and "Traceback" not in text, text
    ended_badly(launch.job_dir, 2)
    assert not (tmp_path / "escaped.txt").exists()


def test_two_inputs_with_one_output_name_are_refused(launch, tmp_path):
    images(tmp_path / "in", ["scan.jpg", "scan.png"])
    r = launch(
        f"task.input_dir={tmp_path / 'in'}",
        f"task.output_dir={tmp_path / 'out'}",
        "+task.output.replace_suffix=true",
    )
    assert r.returncode == 2 and "both map to the output" in r.stdout + r.stderr
    ended_badly(launch.job_dir, 2)


@pytest.mark.parametrize("where", ["inside", "same"])
def test_outputs_in_the_input_folder_are_never_listed_again(launch, tmp_path, where):
    inputs = tmp_path / "in"
    images(inputs, ["a.png", "b.jpg", "sub/c.png"])
    out = inputs / "thumbs" if where == "inside" else inputs
    args = [f"task.input_dir={inputs}", f"task.output_dir={out}", "task.format=jpeg"]
    r = launch(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "is inside task.input_dir" in r.stdout + r.stderr
    for _ in range(2):
        r = launch(*args)
        rep = report(launch.job_dir)
        assert (r.returncode, rep["total"], rep["skipped"], rep["processed"]) == (0, 3, 3, 0)


def test_symlink_loops_are_entered_once(launch, tmp_path):
    inputs = tmp_path / "in"
    images(inputs, ["a.png", "sub/b.png"])
    (inputs / "sub" / "loop").symlink_to(inputs)
    (inputs / "zz").symlink_to(inputs / "sub")  # sub itself is listed first
    (inputs / "link.png").symlink_to(inputs / "a.png")
    r = launch(f"task.input_dir={inputs}", f"task.output_dir={tmp_path / 'out'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(files(tmp_path / "out")) == ["a.png.jpeg", "link.png.jpeg", "sub/b.png.jpeg"]


def _descend(root: Path, name: str, levels: int) -> str:
    """Make ``levels`` nested folders ``name`` under ``root`` (by folder descriptor, so
    neither a long path nor Python's recursion limit gets in the way); return the path."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    return os.path.join(root, *([name] * levels))


def test_a_very_deep_tree_is_listed(launch, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    try:
        images(Path(_descend(inputs, "d", 1100)), ["x.png"])
        r = launch(f"task.input_dir={inputs}", f"task.output_dir={tmp_path / 'out'}")
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert report(launch.job_dir)["processed"] == 1
    finally:  # shutil.rmtree recurses per level
        subprocess.run(["rm", "-rf", str(inputs), str(tmp_path / "out")], check=True)


@pytest.mark.parametrize("strategy", ["hash", "modulo"])
def test_a_file_name_that_is_not_utf8_is_an_ordinary_item(launch, tmp_path, strategy):
    inputs = tmp_path / "in"
    images(inputs, ["a.png", "b.png"])
    os.rename(inputs / "b.png", os.fsencode(inputs) + b"/\xff\xfe.png")
    done = 0
    for idx in range(2):
        r = launch(
            f"task.input_dir={inputs}",
            f"task.output_dir={tmp_path / 'out'}",
            "shard.num=2",
            f"shard.idx={idx}",
            f"shard.strategy={strategy}",
        )
        text = r.stdout + r.stderr
        assert r.returncode == 0 and "Logging error" not in text and "Traceback" not in text, text
        done += report(launch.job_dir)["processed"]
    assert done == 2
    assert os.fsencode(tmp_path / "out") + b"/\xff\xfe.png.jpeg" in [
        os.fsencode(tmp_path / "out") + b"/" + n for n in os.listdir(os.fsencode(tmp_path / "out"))
    ]


def test_a_folder_that_cannot_be_listed_is_recorded_and_skipped(launch, tmp_path):
    """A path past PATH_MAX cannot be listed even by root (chmod would not stop root)."""
    inputs = tmp_path / "in"
    images(inputs, ["a.png", "z/b.png"])
    _descend(inputs, "m" * 250, 18)  # 18 x 250 characters: past Linux's 4096
    r = launch(f"task.input_dir={inputs}", f"task.output_dir={tmp_path / 'out'}")
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (2, 1)
    (fail,) = failures(launch.job_dir)
    assert fail["error"] == "ListingError" and fail["item"].startswith("m" * 250)


@pytest.mark.timeout(300)
def test_a_task_whose_listing_calls_task_s_records_unreadable_folders_too(launch, tmp_path):
    """embed without task.jsonl lists by ``super().generate_tasks()``: the user's override
    passes no arguments, and the planner's context still reaches the input mode (the
    unreadable folder is a failure, the state dir inside the input folder no item)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.txt", "z/b.txt"):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / name).write_text("a short document about " + name)
    _descend(inputs, "m" * 250, 18)
    r = launch(
        "task=embed", "backbone=torch", f"task.input_dir={inputs}", f"task.output_dir={inputs}"
    )
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (2, 1), rep
    (fail,) = failures(launch.job_dir)
    assert fail["error"] == "ListingError" and fail["item"].startswith("m" * 250)


# -- 4. slow items use every worker --------------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_few_slow_items_go_one_to_each_worker(launch, tmp_path):
    ledger = tmp_path / "ledger"
    r = launch(
        *hostile(
            tmp_path / "out",
            "task.n=8",
            "task.sleep_s=3",
            f"task.ledger={ledger}",
            "backbone.num_workers=8",
        ),
        timeout=150,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    per_worker = Counter(line.split()[1] for line in ledger.read_text().splitlines())
    assert sum(per_worker.values()) == 8
    # before: the first ready worker took a first chunk of 8 and did all of them
    assert max(per_worker.values()) <= 2 and len(per_worker) >= 4, per_worker


# -- 5. user code written the ordinary way -------------------------------------------------------


def test_a_task_that_never_calls_super_init_works(launch, tmp_path):
    out = tmp_path / "out"
    r = launch(*hostile(out, "task._target_=tests.hostile_tasks.NoSuper"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(files(out)) == 8 and report(launch.job_dir)["processed"] == 8


def test_a_huge_exception_message_is_capped_where_it_is_shown(launch, tmp_path):
    r = launch(*hostile(tmp_path / "out", "task.fault=huge_message"))
    assert r.returncode == 1
    assert len(r.stdout + r.stderr) < 200_000
    assert (launch.job_dir / "job.log").stat().st_size < 200_000
    (fail,) = failures(launch.job_dir)
    assert 60_000 < len(fail["message"]) < 70_000 and "more characters" in fail["message"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", ["thread", "worker_thread"])
def test_a_leftover_thread_does_not_delay_the_end(launch, tmp_path, fault):
    t0 = time.monotonic()
    r = launch(*hostile(tmp_path / "out", f"task.fault={fault}"), timeout=100)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - t0 < 90  # the thread lives 120 s
    assert report(launch.job_dir)["processed"] == 8


def test_temporaries_of_killed_writers_are_swept_on_the_next_run(launch, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    gone = out / f".000001.txt.tmp-{HOST_ID}-{dead}-abc"
    old = out / ".000002.txt.tmp-0000ffff-1-xyz"
    live = out / f".000003.txt.tmp-{HOST_ID}-{os.getpid()}-def"
    for p in (gone, old, live):
        p.write_text("half")
    os.utime(old, (time.time() - 7 * 3600,) * 2)
    r = launch("task=squares", f"task.output_dir={out}", "task.n=10")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not gone.exists() and not old.exists() and live.exists()
    assert len(files(out)) == 10


# -- 6. one job per shard and output -------------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_second_identical_job_is_refused_while_the_first_runs(launch, tmp_path):
    out, ledger, gate = tmp_path / "out", tmp_path / "ledger", tmp_path / "gate"
    gate.touch()  # item 3 waits for it: the first job runs until the second is refused
    args = hostile(out, "task.n=10", f"task.ledger={ledger}", f"task.gate={gate}")
    first = start(tmp_path / "first", *args, "backbone.num_workers=2")
    wait_for(lambda: out.exists() and len(files(out)) >= 1, first)
    r = launch(*args)
    text = r.stdout + r.stderr
    assert r.returncode == 2 and "another job is already running this shard" in text, text
    ended_badly(launch.job_dir, 2)
    gate.unlink()
    assert first.wait(timeout=120) == 0
    keys = [line.split()[0] for line in ledger.read_text().splitlines()]
    assert sorted(keys) == [f"{i:04d}" for i in range(10)]
    assert report(tmp_path / "first")["processed"] == 10
    assert not list((out / ".launcher" / "locks").iterdir())


def test_a_lock_left_by_a_dead_job_is_taken_over(launch, tmp_path):
    out = tmp_path / "out"
    locks = out / ".launcher" / "locks"
    locks.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    holder = {"host": os.uname().nodename, "pid": int(dead), "slurm": {}}
    (locks / "shard-0-of-1.lock").write_text(json.dumps(holder))
    r = launch(*hostile(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert report(launch.job_dir)["processed"] == 8


# -- our own hostile pass: cases of the same kinds that the issue did not list --------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "fault, error",
    [("keyboard_interrupt", "WorkerDied"), ("sys_exit", "SystemExit"), ("bad_str", "Unprintable")],
)
def test_hostile_items_that_leave_oddly_cost_only_themselves(launch, tmp_path, fault, error):
    r = launch(*hostile(tmp_path / "out", f"task.fault={fault}"), timeout=100)
    assert r.returncode == 1, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["state"], rep["processed"], rep["failed"]) == ("completed", 7, 1)
    (fail,) = failures(launch.job_dir)
    assert (fail["item"], fail["error"]) == ("0003", error)


def test_hostile_an_infinite_grace_period_is_refused(launch, tmp_path):
    r = launch(*hostile(tmp_path / "out", "run.grace_s=inf"))
    assert r.returncode == 2 and "run.grace_s=inf is out of range" in r.stdout + r.stderr


def test_hostile_a_none_item_is_refused(launch, tmp_path):
    r = launch(*hostile(tmp_path / "out", "task.fault=none_item"))
    assert r.returncode == 2 and "gave a NoneType" in r.stdout + r.stderr
    ended_badly(launch.job_dir, 2)


def test_hostile_a_jsonl_key_that_climbs_out_is_refused(launch, tmp_path):
    images(tmp_path / "in", ["a.png"])
    lst = tmp_path / "list.jsonl"
    lst.write_text(json.dumps({"input": "in/a.png", "key": "../../escaped"}) + "\n")
    r = launch(
        f"task.input_dir={lst}",
        "task.input._target_=launcher.modes.FromJsonl",
        "~task.input.extensions",
        f"task.output_dir={tmp_path / 'out'}",
    )
    assert r.returncode == 2 and "is outside task.output_dir" in r.stdout + r.stderr
    ended_badly(launch.job_dir, 2)
    assert not list(tmp_path.parent.glob("escaped*"))


def test_hostile_a_dangling_symlink_fails_alone(launch, tmp_path):
    inputs = tmp_path / "in"
    images(inputs, ["a.png", "c.png"])
    (inputs / "b.png").symlink_to(tmp_path / "gone.png")
    r = launch(f"task.input_dir={inputs}", f"task.output_dir={tmp_path / 'out'}")
    assert r.returncode == 1, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (2, 1)
    assert [f["item"] for f in failures(launch.job_dir)] == ["b.png"]


def test_hostile_teardown_raising_after_failed_items_keeps_both(launch, tmp_path):
    r = launch(*hostile(tmp_path / "out", "task.fault=teardown_raises", "run.limit=3"))
    assert r.returncode == 1
    rep = ended_badly(launch.job_dir, 1)
    assert rep["processed"] == 3 and "teardown" in rep["error"]
    assert not (tmp_path / "out" / ".launcher" / "done").exists()  # no completion marker


@pytest.mark.parametrize("holder", ["live", "garbage"])
def test_hostile_locks_held_by_a_live_job_or_torn_long_ago(launch, tmp_path, holder):
    out = tmp_path / "out"
    lock = out / ".launcher" / "locks" / "shard-0-of-1.lock"
    lock.parent.mkdir(parents=True)
    if holder == "live":  # this test process stands for a job running on this host
        lock.write_text(json.dumps({"host": os.uname().nodename, "pid": os.getpid()}))
    else:
        lock.write_text('{"host": "n')
        os.utime(lock, (time.time() - 600,) * 2)  # past its stale time (120 s)
    r = launch(*hostile(out))
    if holder == "live":
        assert r.returncode == 2 and f"pid {os.getpid()}" in r.stdout + r.stderr
        assert lock.exists() and not (out / "0000.txt").exists()
    else:
        assert r.returncode == 0, r.stdout + r.stderr
        assert not lock.exists()
