"""Object storage, kept failures and locks, and the status page, together: the state dir
of a retry, of two splits and of a sweep on a real S3 server (moto's), a job killed mid
upload, and ``status`` read from another working directory. Real jobs through
``launch.py``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from launcher.resolvers import sample_dir
from tests.conftest import REPO, files, launch_argv, start
from tests.test_kept_failures import FAILING, ledger_keys, one_at_a_time, squares
from tests.test_s3 import bucket, outputs, put_texts, upper
from tests.test_trust import wait_for

pytestmark = pytest.mark.timeout(240)


def status_from(
    cwd: Path, directory: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m launcher status DIR ...`` typed in ``cwd``, not in the checkout."""
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "launcher", "status", str(directory), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def failed_with_state_on_s3(launch, tmp_path: Path):
    """A squares job whose every fifth item failed, its state dir on S3: the bucket's
    filesystem and name, the job's arguments, its fault switch and its ledger."""
    fs, b = bucket()
    out, fault, ledger = tmp_path / "out", tmp_path / "fault", tmp_path / "ledger"
    fault.touch()
    args = [*squares(out, fault, ledger), f"run.state_dir={b}/state"]
    assert launch(*args).returncode == 1
    return fs, b, args, fault, ledger


def test_a_retry_with_state_on_s3_that_stops_early_keeps_what_it_did_not_reach(
    s3, launch, tmp_path
):
    fs, b, args, fault, ledger = failed_with_state_on_s3(launch, tmp_path)
    ledger.unlink()
    r = launch(*args, "run.retry_failed=true", "run.limit=3", *one_at_a_time)
    assert r.returncode == 1, r.stdout + r.stderr
    fault.unlink()
    r = launch(*args, "run.retry_failed=true")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(ledger_keys(ledger)) == FAILING


def test_output_dir_equal_to_input_dir_on_s3_never_lists_the_launchers_state(s3, launch):
    fs, b = bucket()
    put_texts(fs, f"{b}/same", 6)
    fs.pipe(f"{b}/same/.launcher/failures/x/notes.txt", b"the launcher's, not an item")
    args = upper(f"{b}/same", f"{b}/same")  # the state dir: s3://data/same/.launcher
    r = launch(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    r = launch(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads((launch.job_dir / "report.json").read_text())
    assert (rep["total"], rep["skipped"]) == (6, 6), rep


def test_the_other_split_lock_refuses_at_a_url(s3, launch, tmp_path):
    fs, b = bucket()
    out, gate, ledger = tmp_path / "out", tmp_path / "gate", tmp_path / "ledger"
    args = [
        "task=squares",
        f"task.output_dir={out}",
        "task.n=4",
        f"task.hold_file={gate}",
        f"task.ledger={ledger}",
        f"run.state_dir={b}/state",
    ]
    gate.touch()  # the holder's items wait while it exists
    proc = start(tmp_path / "holder", *args)
    try:
        wait_for(lambda: fs.invalidate_cache() or fs.exists(f"{b}/state/locks"), proc)
        r = launch(*args, "shard.num=2", "shard.idx=0")
        assert r.returncode == 2, r.stdout + r.stderr
        assert "another shard split" in r.stdout + r.stderr
    finally:
        gate.unlink()
        proc.communicate(timeout=120)


def test_status_of_a_relaunched_sweep_with_state_on_s3_reads_its_markers_there(
    s3, launch, tmp_path
):
    fs, b = bucket()
    out, fault = tmp_path / "out", tmp_path / "fault"
    fault.touch()
    args = (
        "task=squares",
        f"task.output_dir={out}",
        "task.n=20",
        "task.fail_mod=4",  # 0, 4, ... 16: all in shard 0 of 2
        f"task.fault_file={fault}",
        f"run.state_dir={b}/state",
        "shard.num=2",
        "backbone.num_workers=1",
    )
    assert launch(*args, multirun=True).returncode == 1
    first = launch.job_dir
    fault.unlink()
    assert launch(*args, multirun=True).returncode == 0  # shard 0 again, shard 1 skipped
    second = launch.job_dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rows = {}
    for sweep in (first, second):
        r = status_from(elsewhere, Path(os.path.relpath(sweep, elsewhere)), "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        rows[sweep] = {row["shard"]: row for row in json.loads(r.stdout)["shards"]}
    later, before = rows[first][0], rows[second][1]
    assert later["state"] == "done" and f"done later in {second}/0" in later["note"], later
    assert before["note"].startswith("done before, at ") and before["note"].endswith(
        f"in {first}/1"
    ), before
    r = status_from(elsewhere, Path(os.path.relpath(first, elsewhere)), "--html", "page.html")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"done later in {second}/0" in (elsewhere / "page.html").read_text()


def test_a_job_killed_mid_upload_leaves_no_temporary_after_a_rerun(s3, launch, tmp_path, request):
    fs, b = bucket()
    temp = Path(tempfile.mkdtemp(prefix="up-"))  # short: the fork server's socket is made here
    request.addfinalizer(lambda: shutil.rmtree(temp))
    args = [
        "task=squares",
        f"task.output_dir={b}/out",
        "task.n=8",
        "task.slow_s=30",  # each item holds its upload's local copy open that long
        "backbone.num_workers=2",
    ]
    env = {**os.environ, "TMPDIR": str(temp)}
    proc = subprocess.Popen(
        launch_argv(*args, job_dir=tmp_path / "killed"),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(lambda: len(uploads(temp)) == 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(uploads(temp)) == 2  # what a kill -9 leaves: nothing removes it
    r = launch(*args[:3], env={"TMPDIR": str(temp)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert uploads(temp) == []
    clean = tmp_path / "clean"
    assert launch("task=squares", f"task.output_dir={clean}", "task.n=8").returncode == 0
    assert outputs(fs, f"{b}/out") == files(clean)


def uploads(temp: Path) -> list[str]:
    """The local copies of uploads in the temporary folder ``temp``."""
    return sorted(n for n in os.listdir(temp) if n.startswith(".launcher-upload"))


def test_a_hash_named_output_prefix_on_s3_is_named_as_a_url_in_the_report(s3, launch):
    fs, b = bucket()
    fs.put(sample_dir("thumbnail"), f"{b}/photos", recursive=True)
    r = launch(
        "task=thumbnail",
        "task.size=24",
        f"task.input_dir={b}/photos",
        f"task.output_dir='{b}/thumbs/${{hash:${{.size}},${{.format}},${{.quality}}}}'",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads((launch.job_dir / "report.json").read_text())
    assert rep["output_params"] == f"{rep['output_dir']}/params.json", rep
    assert rep["output_dir"].startswith(f"{b}/thumbs/")
    fs.invalidate_cache()
    assert json.loads(fs.cat(rep["output_params"]))["params"]["size"] == 24


def test_status_where_the_state_dir_on_s3_cannot_be_read_shows_the_shards_records(
    s3, launch, tmp_path
):
    bucket()
    out = tmp_path / "out"
    args = ("task=squares", f"task.output_dir={out}", "task.n=6", "shard.num=2")
    args = (*args, "run.state_dir=s3://data/state", "backbone.num_workers=1")
    assert launch(*args, multirun=True).returncode == 0
    no_credentials = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for extra in (["--json"], ["--html", "page.html"]):  # a login node without the keys
        r = status_from(tmp_path, launch.job_dir, *extra, env=no_credentials)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    rows = json.loads(status_from(tmp_path, launch.job_dir, "--json", env=no_credentials).stdout)
    notes = [row["note"] for row in rows["shards"]]
    assert [row["state"] for row in rows["shards"]] == ["done", "done"]
    assert all("its completion marker cannot be read (NoCredentialsError" in n for n in notes)
    assert "marker cannot be read" in (tmp_path / "page.html").read_text()


def test_two_splits_sharing_a_state_dir_on_s3_keep_their_own_failures(s3, launch, tmp_path):
    fs, b = bucket()
    out, fault, ledger = tmp_path / "out", tmp_path / "fault", tmp_path / "ledger"
    fault.touch()
    state = f"run.state_dir={b}/state"
    contiguous = [*squares(out, fault, ledger), state, "shard.num=2", "shard.idx=0"]
    contiguous.append("shard.strategy=contiguous")  # items 0..24: 0, 5, ... 20 fail
    assert launch(*contiguous).returncode == 1
    fault.unlink()
    modulo = [*squares(out, fault, ledger), state, "shard.num=2", "shard.idx=0"]
    assert launch(*modulo).returncode == 0  # also shard-0-of-2, in the same state dir
    ledger.unlink()
    assert launch(*contiguous, "run.retry_failed=true").returncode == 0
    assert sorted(ledger_keys(ledger)) == ["000005", "000015"]  # 0, 10, 20: done by modulo


def test_a_damaged_failure_record_on_s3_is_one_paragraph_naming_its_url(s3, launch, tmp_path):
    fs, b, args, fault, ledger = failed_with_state_on_s3(launch, tmp_path)
    fs.invalidate_cache()
    (kept,) = fs.find(f"{b}/state/failures")
    fs.pipe(kept, fs.cat(kept) + b'{"item": "000007", "err\n')
    r = launch(*args, "run.retry_failed=true")
    out_text = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out_text, out_text
    assert f"s3://{kept}:11: a damaged failure record" in out_text


def test_a_list_on_disk_naming_objects_on_s3_reads_them_at_their_urls(s3, launch, tmp_path):
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 3)
    listing = tmp_path / "list.jsonl"
    listing.write_text("".join(json.dumps(k) + "\n" for k in objects))
    out = tmp_path / "out"
    jsonl = ("task.input._target_=launcher.modes.FromJsonl", "~task.input.extensions")
    r = launch(*upper(str(listing), str(out), *jsonl))
    assert r.returncode == 0, r.stdout + r.stderr
    made = {f"{k.partition('://')[2]}.up": v.upper() for k, v in objects.items()}
    assert files(out) == made  # keyed by bucket and key, as a list at a URL keys them


def test_an_output_prefix_inside_the_input_prefix_on_s3_is_warned_about(s3, launch):
    fs, b = bucket()
    put_texts(fs, f"{b}/in", 2)
    r = launch(*upper(f"{b}/in", f"{b}/in/out/"))
    assert r.returncode == 0, r.stdout + r.stderr
    said = r.stdout + r.stderr
    assert f"task.output_dir={b}/in/out/ is inside task.input_dir={b}/in" in said, said


@pytest.mark.timeout(400)
def test_embed_reads_documents_on_s3_in_size_grouped_batches(s3, launch, tmp_path):
    fs, b = bucket()
    fs.put(sample_dir("embed"), f"{b}/docs", recursive=True)
    out = tmp_path / "vectors"
    r = launch("task=embed", f"task.input_dir={b}/docs", f"task.output_dir={out}", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    disk = tmp_path / "disk"
    r = launch("task=embed", f"task.output_dir={disk}", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert files(out).keys() == files(disk).keys() and files(out)
