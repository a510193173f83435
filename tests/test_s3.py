"""Inputs, outputs and records on a real S3 server (moto's, started by tests/s3_server.py),
reached by the jobs over HTTP through s3fs exactly as they would reach AWS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fsspec
import pytest

from launcher.resolvers import sample_dir
from tests.conftest import REPO, failures, files, report, start, status
from tests.s3_server import CREDENTIALS

pytestmark = pytest.mark.timeout(240)


def bucket(name: str = "data") -> tuple[object, str]:
    fs = fsspec.filesystem("s3")
    fs.mkdir(name)
    return fs, f"s3://{name}"


def put_texts(fs, root: str, n: int, folders: int = 1) -> dict[str, bytes]:
    """``n`` small text objects under ``root``, spread over ``folders`` prefixes."""
    objects = {f"{root}/d{i % folders}/{i:05d}.txt": f"object {i}\n".encode() for i in range(n)}
    fs.pipe(objects)
    return objects


def outputs(fs, root: str) -> dict[str, bytes]:
    """The visible objects under ``root`` by relative key (the launcher's state left out)."""
    fs.invalidate_cache()
    prefix = root.removeprefix("s3://").rstrip("/") + "/"
    under = [k for k in fs.find(root) if k.startswith(prefix)]  # not the prefix itself
    keys = [k for k in under if not k[len(prefix) :].startswith(".")]
    return {k[len(prefix) :]: v for k, v in fs.cat(keys).items()} if keys else {}


def upper(inputs: str, out: str, *extra: str) -> list[str]:
    return ["task=upper", f"task.input_dir={inputs}", f"task.output_dir={out}", *extra]


def test_thumbnails_s3_to_s3_are_the_thumbnails_made_on_disk(s3, launch, tmp_path):
    fs, b = bucket()
    fs.put(sample_dir("thumbnail"), f"{b}/photos", recursive=True)
    r = launch("task=thumbnail", f"task.input_dir={b}/photos", f"task.output_dir={b}/thumbs")
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert rep["output_dir"] == f"{b}/thumbs" and rep["failed"] == 0
    disk = tmp_path / "thumbs"
    r = launch("task=thumbnail", f"task.output_dir={disk}")
    assert r.returncode == 0, r.stderr
    on_disk = files(disk)
    assert on_disk and outputs(fs, f"{b}/thumbs") == on_disk


@pytest.mark.slow
def test_a_rerun_over_2000_objects_skips_all_with_one_listing_of_the_outputs(s3, launch):
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 2000)
    args = upper(f"{b}/in", f"{b}/out", "backbone.num_workers=2")
    r = launch(*args, timeout=240)
    assert r.returncode == 0, r.stderr
    assert report(launch.job_dir)["processed"] == 2000
    made = outputs(fs, f"{b}/out")
    assert made == {k[len(b) + 4 :] + ".up": v.upper() for k, v in objects.items()}

    s3.requests.clear()
    r = launch(*args)
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert (rep["skipped"], rep["processed"], rep["total"]) == (2000, 0, 2000)
    seen = list(s3.requests)
    on_outputs = [q for q in seen if q.path.startswith("/data/out/d0/")]
    assert on_outputs == [], "no HEAD or GET per output"
    listings = [q for q in seen if q.is_listing and "prefix=out%2Fd0%2F" in q.query]
    # one paginated listing: S3 returns 1,000 keys a page
    assert len(listings) == 2 and sum("continuation-token" in q.query for q in listings) == 1
    assert not [q for q in seen if q.path.startswith("/data/in/")], "inputs are not read"


def test_kill_9_mid_run_then_rerun_leaves_every_object_whole_nothing_redone(s3, launch, tmp_path):
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 200, folders=2)
    args = upper(f"{b}/in", f"{b}/out", "task.slow_s=0.02", "backbone.num_workers=2")
    proc = start(tmp_path / "killed", *args)
    try:
        deadline = time.monotonic() + 120
        while len(outputs(fs, f"{b}/out")) < 30:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "no outputs in time"
            time.sleep(0.2)
    finally:  # a job left running would write into the next test's bucket
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)  # a PUT the server had whole before the kill is answered
    before = outputs(fs, f"{b}/out")
    assert 30 <= len(before) < 200
    expected = {k[len(b) + 4 :] + ".up": v.upper() for k, v in objects.items()}
    assert all(expected[k] == v for k, v in before.items()), "a torn object"

    s3.requests.clear()
    r = launch(*args)
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert (rep["skipped"], rep["processed"]) == (len(before), 200 - len(before))
    rewritten = {q.path[len("/data/out/") :] for q in s3.requests if q.method == "PUT"}
    assert not rewritten & set(before), "an object done before the kill was written again"
    assert outputs(fs, f"{b}/out") == expected


def test_a_4_shard_sweep_s3_to_s3_matches_the_disk_sweep_and_relaunches_nothing(
    s3, launch, tmp_path
):
    fs, b = bucket()
    put_texts(fs, f"{b}/in", 60, folders=3)
    disk_in = tmp_path / "in"
    fs.get(f"{b}/in", str(disk_in), recursive=True)
    sweep = ("shard.num=4", "backbone.num_workers=1")
    r = launch(*upper(str(disk_in), str(tmp_path / "out"), *sweep), multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    on_disk = files(tmp_path / "out")
    assert len(on_disk) == 60

    secret = {"AWS_SECRET_ACCESS_KEY": f"secret-{uuid.uuid4().hex}"}
    r = launch(*upper(f"{b}/in", f"{b}/out", *sweep), multirun=True, env=secret)
    assert r.returncode == 0, r.stdout + r.stderr
    assert outputs(fs, f"{b}/out") == on_disk
    written = [p for p in launch.job_dir.rglob("*") if p.is_file()]
    assert any(p.name == "sweep.json" for p in written)
    assert not [p for p in written if secret["AWS_SECRET_ACCESS_KEY"] in p.read_text("latin-1")]
    reports = sorted(launch.job_dir.glob("*/report.json"))
    assert len(reports) == 4
    disk_reports = sorted((tmp_path / "job1").glob("*/report.json"))
    per_shard = [report(p.parent)["processed"] for p in reports]
    assert per_shard == [report(p.parent)["processed"] for p in disk_reports]
    fs.invalidate_cache()
    assert len(fs.ls(f"{b}/out/.launcher/done", detail=False)) == 1  # markers on S3

    shown = status(launch.job_dir)
    assert shown.returncode == 0 and "shards: 4 (4 done)" in shown.stdout, shown.stdout
    r = launch(*upper(f"{b}/in", f"{b}/out", *sweep), multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Nothing to launch" in r.stdout, r.stdout


def test_a_bucket_that_does_not_exist_is_one_paragraph_exit_2(s3, launch):
    fs, b = bucket()
    put_texts(fs, f"{b}/in", 3)
    r = launch(*upper("s3://no-such-bucket/in", f"{b}/out"))
    assert r.returncode == 2, r.stderr
    out = r.stdout + r.stderr
    assert "task.input_dir='s3://no-such-bucket/in': the bucket does not exist" in out
    r = launch(*upper(f"{b}/in", "s3://no-such-bucket/out"))
    assert r.returncode == 2, r.stderr
    out += r.stdout + r.stderr
    assert "task.output_dir='s3://no-such-bucket/out': the bucket does not exist" in out
    assert "Traceback" not in out
    assert outputs(fs, f"{b}/out") == {}


def test_an_endpoint_that_does_not_answer_is_one_paragraph_exit_2(launch):
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    r = launch(*upper("s3://data/in", "s3://data/out"), env=env, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "task.input_dir='s3://data/in' cannot be reached" in out and "Traceback" not in out


def test_credentials_the_server_refuses_are_one_paragraph_exit_2(launch):
    """A second server, started as a user would start it, that checks credentials."""
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "s3_server.py")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0", "PYTHONPATH": str(REPO)},
    )
    try:
        env = {}
        for _ in range(4):
            name, _, value = server.stdout.readline().removeprefix("export ").strip().partition("=")
            env[name] = value
        r = launch(*upper("s3://data/in", "s3://data/out"), env=env)
    finally:
        server.terminate()
        server.wait()
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "task.input_dir='s3://data/in': the object store refused access" in out
    assert "AWS_ENDPOINT_URL" in out and "Traceback" not in out


def test_no_secret_lands_in_the_job_records(s3, launch):
    fs, b = bucket()
    put_texts(fs, f"{b}/in", 3)
    secret = f"secret-{uuid.uuid4().hex}"
    r = launch(*upper(f"{b}/in", f"{b}/out"), env={"AWS_SECRET_ACCESS_KEY": secret})
    assert r.returncode == 0, r.stderr
    assert secret not in r.stdout + r.stderr
    written = [p for p in Path(launch.job_dir).rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret in p.read_text(errors="replace")]


def test_records_in_a_state_dir_on_s3_serve_retries_and_sweep_markers(s3, launch, tmp_path):
    fs, b = bucket()
    out, fault = tmp_path / "out", tmp_path / "fault"
    fault.touch()
    args = (
        "task=squares",
        f"task.output_dir={out}",
        "task.n=30",
        "task.fail_mod=7",
        f"task.fault_file={fault}",
        f"run.state_dir={b}/state",
    )
    r = launch(*args)
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["failed"], rep["state_dir"]) == (5, f"{b}/state")
    fs.invalidate_cache()
    kept = fs.find(f"{b}/state")
    assert len(kept) == 1, "failures kept on S3; the lock released"
    assert kept[0].startswith("data/state/failures/") and kept[0].endswith(".shard-0-of-1.jsonl")

    fault.unlink()
    r = launch(*args, "run.retry_failed=true")
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (5, 0)
    assert len(files(out)) == 30

    sweep = (*args, "shard.num=2", "backbone.num_workers=1")
    r = launch(*sweep, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    fs.invalidate_cache()
    marked = [m for k in fs.ls(f"{b}/state/done", detail=False) for m in fs.ls(k, detail=False)]
    assert sorted(m.rpartition("/")[2] for m in marked) == [
        "shard-0-of-1.json",  # the completed retry's
        "shard-0-of-2.json",
        "shard-1-of-2.json",
    ]
    r = launch(*sweep, multirun=True)
    assert "Nothing to launch" in r.stdout, r.stdout + r.stderr


@pytest.mark.slurm
def test_a_slurm_sweep_with_inputs_outputs_and_state_on_s3(s3, launch, tmp_path):
    from tests.conftest import need_slurm

    need_slurm()
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 40, folders=2)
    args = upper(f"{b}/in", f"{b}/out", f"run.state_dir={b}/state", "shard.num=3")
    slurm = ("hydra/launcher=slurm", "hydra.launcher.wait=true", "backbone.num_workers=1")
    r = launch(*args, *slurm, multirun=True, timeout=200)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = {k[len(b) + 4 :] + ".up": v.upper() for k, v in objects.items()}
    assert outputs(fs, f"{b}/out") == expected
    shown = status(launch.job_dir)
    assert shown.returncode == 0 and "shards: 3 (3 done)" in shown.stdout, shown.stdout
    r = launch(*args, *slurm, multirun=True, timeout=200)
    assert "Nothing to launch" in r.stdout, r.stdout + r.stderr
    disk_in, disk_out = tmp_path / "in", tmp_path / "out"
    fs.get(f"{b}/in", str(disk_in), recursive=True)
    assert launch(*upper(str(disk_in), str(disk_out))).returncode == 0
    assert outputs(fs, f"{b}/out") == files(disk_out), "byte-identical to the run on disk"


def test_throttling_is_retried_and_a_persistent_error_fails_only_its_item(s3, launch):
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 20)
    stuck = "/data/out/d0/00007.txt.up"
    s3.throttle(lambda q: q.method == "PUT" and q.path == stuck, times=10**6)
    s3.throttle(lambda q: q.method == "PUT" and q.path.startswith("/data/out/d0/"), times=5)
    s3.throttle(lambda q: q.is_listing and "prefix=in%2Fd0%2F" in q.query, times=2)
    s3.throttle(lambda q: q.method == "GET" and q.path.startswith("/data/in/"), times=3)
    # botocore's own retries (AWS_MAX_ATTEMPTS, the standard knob) under s3fs's five
    r = launch(
        *upper(f"{b}/in", f"{b}/out", "backbone.num_workers=2"), env={"AWS_MAX_ATTEMPTS": "2"}
    )
    assert r.returncode == 1, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (19, 1)
    (failure,) = failures(launch.job_dir)
    assert failure["item"] == "d0/00007.txt" and "reduce your request rate" in failure["message"]
    expected = {k[len(b) + 4 :] + ".up": v.upper() for k, v in objects.items()}
    expected.pop("d0/00007.txt.up")
    assert outputs(fs, f"{b}/out") == expected
    refused = [q for q in s3.requests if q.path == stuck]
    assert len(refused) == 5 * 2, "retried, with a bound"
    # every throttled try counted: the parent's listings, the workers' reads and writes
    assert rep["storage_transient_errors"] == s3.faults_served == 10 + 5 + 2 + 3


def test_dropped_connections_are_retried_and_the_job_completes(s3, launch):
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 12)
    s3.drop(lambda q: q.method == "GET" and q.path.startswith("/data/in/"), times=4)
    s3.drop(lambda q: q.method == "PUT" and q.path.startswith("/data/out/d0/"), times=4)
    s3.drop(lambda q: q.is_listing and "prefix=out%2Fd0%2F" in q.query, times=1)
    r = launch(*upper(f"{b}/in", f"{b}/out", "backbone.num_workers=2"))
    assert r.returncode == 0, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert rep["processed"] == 12
    expected = {k[len(b) + 4 :] + ".up": v.upper() for k, v in objects.items()}
    assert outputs(fs, f"{b}/out") == expected
    assert s3.faults_left() == 0, "every fault was met"
    # counted as botocore saw them; aiohttp reopens a pooled connection found closed unseen
    assert 1 <= rep["storage_transient_errors"] <= 9
