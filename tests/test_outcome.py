"""Exit codes come back from the command that ran the jobs, never from a module global:
several commands in one process each exit with their own jobs' code."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_CONF, need_slurm, report, status

pytestmark = pytest.mark.timeout(300)

# runs launcher.cli.main once per argv given as JSON, in one process; prints each exit code
COMMANDS = """
import json, sys
from launcher.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    sys.argv = ["launch.py", *argv]
    try:
        main()
    except SystemExit as e:
        codes.append(e.code)
print("CODES", json.dumps(codes))
"""


def run_commands(*commands: list[str]) -> list[int]:
    """Each command's exit code, all of them run by ``launcher.cli.main`` in one process."""
    search = f"hydra.searchpath=[file://{TEST_CONF}]"
    argvs = [[search, "run.progress=off", *c] for c in commands]
    r = subprocess.run(
        [sys.executable, "-c", COMMANDS, json.dumps(argvs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [line for line in r.stdout.splitlines() if line.startswith("CODES ")]
    assert r.returncode == 0 and lines, r.stdout + r.stderr
    return json.loads(lines[-1].split(" ", 1)[1])


def squares(tmp_path: Path, name: str, failing: bool) -> list[str]:
    """Squares over 4 items; ``failing``: the even ones (shard 0 of 2, modulo) raise."""
    args = ["task=squares", f"task.output_dir={tmp_path / name}", "task.n=4"]
    return args + (["task.fail_mod=2", f"task.fault_file={REPO}/README.md"] if failing else [])


def test_each_job_exits_with_its_own_code(tmp_path: Path) -> None:
    """Items failed (1), a bad key refused before the job starts (2), then a clean job (0):
    neither the earlier code nor the earlier start leaks into the next command."""
    codes = run_commands(
        [*squares(tmp_path, "a", failing=True), f"hydra.run.dir={tmp_path / 'j1'}"],
        [*squares(tmp_path, "b", failing=False), "run.limt=1", f"hydra.run.dir={tmp_path / 'j2'}"],
        [*squares(tmp_path, "c", failing=False), f"hydra.run.dir={tmp_path / 'j3'}"],
    )
    assert codes == [1, 2, 0]
    assert report(tmp_path / "j1")["exit_code"] == 1
    assert not (tmp_path / "j2").exists()
    assert report(tmp_path / "j3")["exit_code"] == 0


def test_each_sweep_exits_with_its_own_code(tmp_path: Path) -> None:
    """A local sweep where shard 0 of 2 fails exits 1; the clean sweep after it 0, and a
    sweep refused before anything is launched 2."""
    sweep = ["shard.num=2", "hydra/launcher=local", "-m"]
    codes = run_commands(
        [*squares(tmp_path, "a", failing=True), *sweep, f"hydra.sweep.dir={tmp_path / 's1'}"],
        [*squares(tmp_path, "b", failing=False), *sweep, f"hydra.sweep.dir={tmp_path / 's2'}"],
        [
            *squares(tmp_path, "c", failing=False),
            *sweep,
            "+hydra.launcher.partiton=x",
            f"hydra.sweep.dir={tmp_path / 's3'}",
        ],
    )
    assert codes == [1, 0, 2]
    shards = [report(tmp_path / "s1" / str(i))["exit_code"] for i in (0, 1)]
    assert shards == [1, 0]
    assert [report(tmp_path / "s2" / str(i))["exit_code"] for i in (0, 1)] == [0, 0]


def test_a_job_whose_setup_raises_exits_1(tmp_path: Path) -> None:
    search = f"hydra.searchpath=[file://{TEST_CONF}]"
    argv = [sys.executable, str(REPO / "launch.py"), search, "task=hostile"]
    argv += [f"task.output_dir={tmp_path / 'o'}", "task.fault=setup_raises"]
    r = subprocess.run(
        [*argv, f"hydra.run.dir={tmp_path / 'job'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    rep = report(tmp_path / "job")
    assert (rep["state"], rep["exit_code"]) == ("failed", 1)
    assert "setup could not reach the database" in rep["error"]


@pytest.mark.slurm
def test_ctrl_c_while_waiting_for_a_slurm_sweep_exits_130_and_the_shards_go_on(
    tmp_path: Path,
) -> None:
    """The shards are held until the launch exited, so the Ctrl-C always lands while it
    waits; its output goes to a file the test reads, never a pipe."""
    need_slurm()
    sweep, hold, log = tmp_path / "sweep", tmp_path / "hold", tmp_path / "launch.out"
    hold.touch()
    argv = [sys.executable, str(REPO / "launch.py"), f"hydra.searchpath=[file://{TEST_CONF}]"]
    argv += [*squares(tmp_path, "o", failing=False), f"task.hold_file={hold}"]
    argv += ["run.progress=off", "shard.num=2", "backbone.num_workers=1"]
    argv += ["hydra/launcher=slurm", "hydra.launcher.wait=true", f"hydra.sweep.dir={sweep}", "-m"]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "\nStatus:" not in log.read_text():  # printed (flushed) once it waits
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, log.read_text()
    assert "Stopped waiting; the shards go on" in log.read_text()
    hold.unlink()
    deadline = time.monotonic() + 120
    while status(sweep).returncode == 3 and time.monotonic() < deadline:  # 3: not finished
        time.sleep(0.5)
    assert [report(sweep / str(i))["exit_code"] for i in (0, 1)] == [0, 0]
