"""Transient errors of a real S3 server (moto's, with faults injected in front of it):
counted in ``report.json`` wherever they happen (the job's own listings and records, mp
workers, torch DataLoader workers), and never the end of a job that can go on."""

from __future__ import annotations

import pytest

from tests.conftest import report, start
from tests.test_s3 import bucket, outputs, put_texts, upper
from tests.test_trust import wait_for

pytestmark = pytest.mark.timeout(300)


def test_the_torch_backbone_counts_its_loaders_and_its_own_transient_errors(s3, launch):
    pytest.importorskip("torch")
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 12)
    s3.throttle(lambda q: q.method == "GET" and q.path.startswith("/data/in/"), times=4)
    s3.throttle(lambda q: q.method == "PUT" and q.path.startswith("/data/out/"), times=3)
    s3.throttle(lambda q: q.is_listing and "prefix=out%2Fd0%2F" in q.query, times=1)
    args = upper(f"{b}/in", f"{b}/out", "backbone=torch", "backbone.num_workers=2")
    args[0] = "task=upper_torch"
    r = launch(*args, "backbone.batch_size=2", timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (12, 0)
    expected = {k[len(b) + 4 :] + ".up": v.upper() for k, v in objects.items()}
    assert outputs(fs, f"{b}/out") == expected
    # reads in DataLoader workers, writes and the listing in the job's process
    assert rep["storage_transient_errors"] == s3.faults_served == 4 + 3 + 1


def test_a_job_on_local_disk_counts_no_transient_errors(launch, tmp_path):
    r = launch("task=squares", f"task.output_dir={tmp_path / 'out'}", "task.n=3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert report(launch.job_dir)["storage_transient_errors"] == 0


def test_a_lock_refresh_the_store_drops_is_tried_again_not_the_end_of_the_job(
    s3, tmp_path, monkeypatch
):
    fs, b = bucket()
    put_texts(fs, f"{b}/in", 6)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # s3fs's own five tries, then botocore raises
    lock = "/data/state/locks/"
    args = [*upper(f"{b}/in", f"{b}/out"), f"run.state_dir={b}/state", "run.heartbeat_s=0.2"]
    proc = start(tmp_path / "job", *args, "task.slow_s=1.5", "backbone.num_workers=1")
    wait_for(lambda: any(q.path.startswith(lock) for q in s3.requests), proc)
    s3.drop(lambda q: q.method == "PUT" and q.path.startswith(lock), times=10**6)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert s3.faults_served >= 1, "a refresh was dropped"
    rep = report(tmp_path / "job")
    assert (rep["processed"], rep["failed"]) == (6, 0)
    assert rep["storage_transient_errors"] >= 1


def test_requests_that_time_out_are_retried_and_counted_with_storage_options(s3, launch):
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 6)
    s3.stall(lambda q: q.method == "GET" and q.path.startswith("/data/in/"), times=2)
    timeout = "+task.storage_options.config_kwargs.read_timeout=1"  # seconds, botocore's
    r = launch(*upper(f"{b}/in", f"{b}/out", "backbone.num_workers=1"), timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (6, 0)
    expected = {k[len(b) + 4 :] + ".up": v.upper() for k, v in objects.items()}
    assert outputs(fs, f"{b}/out") == expected
    assert rep["storage_transient_errors"] == s3.faults_served == 2
