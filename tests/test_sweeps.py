"""Sweeps that must not trust stale state: completion markers against new, deleted and
unfinished items; one launch at a time per sweep dir; each launch's own array
configs; the job config resolved before launching. Local processes (the SLURM
launcher shares this path; tests/test_slurm.py runs it on the real cluster).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher import AppendExtension, ByExtensions, Task, atomic_write
from launcher.resolvers import config_hash
from launcher.shard import Shard, Strategy
from tests.conftest import REPO, TEST_CONF, report, status

pytestmark = pytest.mark.timeout(180)


class Copies(Task):
    """Copies each ``.txt`` of ``input_dir`` to ``<output_dir>/<key>.out``; logs keys to a
    ledger; item ``gate_key`` waits while ``gate_file`` exists."""

    def __init__(
        self,
        input_dir: str,
        output_dir: str,
        ledger: str | None = None,
        gate_key: str | None = None,
        gate_file: str | None = None,
        **_: object,
    ) -> None:
        super().__init__(input_dir, output_dir, ByExtensions([".txt"]), AppendExtension(".out"))
        self.ledger = ledger
        self.gate_key = gate_key
        self.gate_file = gate_file

    def process(self, key: str, input: str, output: str) -> None:
        while key == self.gate_key and self.gate_file and os.path.exists(self.gate_file):
            time.sleep(0.05)
        with open(input, encoding="utf-8") as src, atomic_write(output, "w") as dst:
            dst.write(src.read())
        if self.ledger:
            with open(self.ledger, "a", encoding="utf-8") as f:
                f.write(key + "\n")


def copies(inputs: Path, out: Path, ledger: Path, *extra: str) -> list[str]:
    return [
        "task=squares",
        "task._target_=tests.test_sweeps.Copies",
        f"+task.input_dir={inputs}",
        f"task.output_dir={out}",
        f"task.ledger={ledger}",
        "shard.num=3",
        "shard.strategy=hash",
        "backbone.num_workers=1",
        "backbone.start_method=fork",
        *extra,
    ]


def write_inputs(inputs: Path, names: range) -> None:
    inputs.mkdir(exist_ok=True)
    for i in names:
        (inputs / f"{i:03d}.txt").write_text(f"input {i}\n")


def keys(ledger: Path) -> list[str]:
    return ledger.read_text().split() if ledger.exists() else []


def launched(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(("Local:", "Nothing")))


def test_a_completed_sweep_sees_inputs_added_later_and_outputs_deleted(launch, tmp_path):
    inputs, out, ledger = tmp_path / "in", tmp_path / "out", tmp_path / "ledger"
    write_inputs(inputs, range(9))
    args = copies(inputs, out, ledger)
    r = launch(*args, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(keys(ledger)) == [f"{i:03d}.txt" for i in range(9)]

    r = launch(*args, multirun=True)  # nothing changed: every shard's marker holds
    assert r.returncode == 0 and launched(r.stdout).startswith("Nothing to launch"), r.stdout

    write_inputs(inputs, range(9, 12))  # new inputs: their shards run again, only them
    r = launch(*args, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "new, deleted or unfinished items since their marker" in r.stdout + r.stderr
    assert sorted(keys(ledger)[9:]) == ["009.txt", "010.txt", "011.txt"]
    assert len(list(out.glob("*.out"))) == 12

    (out / "004.txt.out").unlink()  # an output deleted: its shard runs again
    r = launch(*args, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert keys(ledger)[12:] == ["004.txt"]
    assert "1 shard(s) in 1 array(s)" in launched(r.stdout)

    (inputs / "007.txt").unlink()  # an input deleted: its shard's marker no longer counts right
    r = launch(*args, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 shard(s) in 1 array(s)" in launched(r.stdout)
    assert len(keys(ledger)) == 13  # nothing processed again
    totals = [report(p)["total"] for p in launch.job_dir.iterdir() if (p / "report.json").exists()]
    r = launch(*args, multirun=True)
    assert launched(r.stdout).startswith("Nothing to launch"), r.stdout
    assert len(totals) == 1 and totals[0] in range(1, 12)


def test_hard_shards_see_inputs_added_to_their_own_folder(launch, tmp_path):
    ledger = tmp_path / "ledger"
    for part in (0, 1):
        write_inputs(tmp_path / f"in_{part}", range(part * 10, part * 10 + 3))
    args = [  # hard shards: each its own input and output folder
        "task=squares",
        "task._target_=tests.test_sweeps.Copies",
        f"+task.input_dir='{tmp_path}/in_{{shard_idx}}'",
        f"task.output_dir='{tmp_path}/out_{{shard_idx}}'",
        f"task.ledger={ledger}",
        "shard=hard",
        "shard.num=2",
        "backbone.num_workers=1",
    ]
    r = launch(*args, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(keys(ledger)) == 6
    r = launch(*args, multirun=True)
    assert launched(r.stdout).startswith("Nothing to launch"), r.stdout
    write_inputs(tmp_path / "in_1", range(13, 14))
    r = launch(*args, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 shard(s) in 1 array(s)" in launched(r.stdout)
    assert keys(ledger)[6:] == ["013.txt"]


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("sub", [(1, 0), (2, 1)])
@pytest.mark.parametrize("num", [1, 4])
def test_the_planners_owner_of_each_item_is_the_shard_that_selects_it(strategy, sub, num):
    items = [{"key": f"k{i}"} for i in range(23)]
    num = 1 if strategy is Strategy.hard else num  # hard: one shard per input folder
    tags = {i: f"s{i}" for i in range(num)}
    which = Shard(num, frozenset({0}), strategy, *sub_shard(sub)).owners(_key, 23, tags)
    ours = [which(pos, it) for pos, it in enumerate(items)]
    for i in range(num):
        select = Shard(num, frozenset({i}), strategy, *sub_shard(sub)).selector(_key, 23)
        theirs = [select is None or bool(select(pos, it)) for pos, it in enumerate(items)]
        assert [t == f"s{i}" for t in ours] == theirs


def sub_shard(sub: tuple[int, int]) -> tuple[int, frozenset[int]]:
    return sub[0], frozenset({sub[1]})


def _key(item: dict) -> str:
    return item["key"]


def gated(tmp_path: Path) -> tuple[Path, Path, Path, list[str]]:
    """Six inputs; item ``000.txt`` waits while the returned gate file exists."""
    out, ledger, gate = tmp_path / "out", tmp_path / "ledger", tmp_path / "gate"
    write_inputs(tmp_path / "in", range(6))
    gate.touch()
    extra = ["+task.gate_key=000.txt", f"+task.gate_file={gate}"]
    return out, ledger, gate, copies(tmp_path / "in", out, ledger, *extra)


def ended(ledger: Path, sweep: Path, timeout: float = 120) -> list[str]:
    """The ledger once it lists the six items and ``status`` says the sweep is done."""
    deadline = time.monotonic() + timeout
    argv = [sys.executable, "-m", "launcher", "status", str(sweep)]
    while (
        len(keys(ledger)) < 6
        or subprocess.run(argv, cwd=REPO, capture_output=True, timeout=60).returncode
    ):
        assert time.monotonic() < deadline, f"{sweep} not done after {timeout}s"
        time.sleep(0.2)
    return keys(ledger)


def test_a_second_launch_into_a_sweep_dir_with_running_shards_is_refused(launch, tmp_path):
    out, ledger, gate, args = gated(tmp_path)
    first = launch(*args, "hydra.launcher.wait=false", multirun=True)
    assert first.returncode == 0, first.stdout + first.stderr
    sweep = launch.job_dir
    state = sweep / ".launcher"
    (submission,) = [p for p in state.iterdir() if p.is_dir()]
    spec = (submission / "array-0.pkl").read_bytes()
    record = (state / "sweep.json").read_bytes()
    other = copies(tmp_path / "in", tmp_path / "other", ledger)
    launch.n -= 1  # the same sweep dir again
    r = launch(*other, multirun=True)
    assert r.returncode == 2, r.stdout + r.stderr
    said = r.stdout + r.stderr
    assert f"hydra.sweep.dir={sweep}" in said and "can still run" in said
    assert "Traceback" not in said
    assert (state / "sweep.json").read_bytes() == record
    assert (submission / "array-0.pkl").read_bytes() == spec
    gate.unlink()
    assert sorted(ended(ledger, sweep)) == [f"{i:03d}.txt" for i in range(6)]
    assert not (tmp_path / "other").exists()
    # every shard is done; its scheduler may still be writing the sweep's records
    scheduler = json.loads((state / "sweep.json").read_text())["scheduler"]["pid"]
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{scheduler}") and time.monotonic() < deadline:
        time.sleep(0.1)
    # once the first launch has ended, the same dir takes a launch: its own config files
    launch.n -= 1
    r = launch(*other, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (submission / "array-0.pkl").read_bytes() == spec
    assert len([p for p in state.iterdir() if p.is_dir()]) == 2


def test_the_same_launch_twice_at_once_into_one_sweep_dir_runs_once(tmp_path):
    out, ledger, gate, args = gated(tmp_path)
    argv = [
        sys.executable,
        str(REPO / "launch.py"),
        f"hydra.searchpath=[file://{TEST_CONF}]",
        *args,
        "hydra/launcher=local",
        "hydra.launcher.wait=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "-m",
    ]
    procs = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert sorted(p.returncode for p in procs) == [0, 2], outs
    assert "hydra.sweep.dir=" in outs[[p.returncode for p in procs].index(2)]
    gate.unlink()
    assert sorted(ended(ledger, tmp_path / "sweep")) == [f"{i:03d}.txt" for i in range(6)]


def test_a_relative_interpolation_typed_on_the_command_line_works_as_in_yaml(launch, tmp_path):
    out = f"{tmp_path}/out-${{hash:${{.n}}}}"
    r = launch("task=squares", "task.n=5", f"task.output_dir='{out}'", "shard.num=2", multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((tmp_path / f"out-{config_hash(5)}").glob("*.txt"))) == 5


def test_a_value_no_job_can_resolve_is_refused_before_launching(launch, tmp_path):
    bad = f"task.output_dir='{tmp_path}/out-${{.nope}}'"
    r = launch("task=squares", bad, "shard.num=2", multirun=True)
    assert r.returncode == 2, r.stdout + r.stderr
    said = r.stdout + r.stderr
    assert "task.output_dir" in said and "cannot be resolved" in said and "Traceback" not in said
    assert not (launch.job_dir / ".launcher" / "sweep.json").exists()


@pytest.mark.parametrize(
    "option", ["array_parallelism=0", "array_parallelism=-2"], ids=["zero", "negative"]
)
def test_launcher_numbers_out_of_range_are_refused_naming_the_key(launch, tmp_path, option):
    r = launch(
        "task=squares", f"task.output_dir={tmp_path}/o", f"hydra.launcher.{option}", multirun=True
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"hydra.launcher.{option}: must be an integer >= 1" in r.stdout + r.stderr
    assert not (launch.job_dir / ".launcher" / "sweep.json").exists()


def test_an_element_whose_sweep_dir_moved_says_so_and_recreates_nothing(tmp_path):
    spec = tmp_path / "moved" / ".launcher" / "20261130-1" / "array-0.pkl"
    r = subprocess.run(
        [sys.executable, "-m", "launcher.launchers.element", "--local", str(spec), "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert f"the sweep dir {tmp_path / 'moved'} was moved or deleted" in r.stderr
    assert not (tmp_path / "moved").exists()


def launching(*args: str, run_dir: str) -> subprocess.Popen:
    """``launch.py`` started, not waited for; ``run_dir`` is the ``hydra.*.dir=`` override."""
    argv = [sys.executable, str(REPO / "launch.py"), f"hydra.searchpath=[file://{TEST_CONF}]"]
    argv += ["run.progress=log", "run.heartbeat_s=0.2", *args, run_dir]
    return subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_until(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


def test_a_sweep_dir_moved_while_a_shard_runs_is_never_recreated(launch, tmp_path):
    """The running shard stops writing its records, says so once in its .err, exits 1;
    the launcher says so too; the same command into a new dir finishes the rest."""
    out, ledger, gate, args = gated(tmp_path)
    sweep, moved = tmp_path / "sweep", tmp_path / "moved"
    args += ["hydra.launcher.array_parallelism=3"]
    proc = launching(*args, "hydra/launcher=local", "-m", run_dir=f"hydra.sweep.dir={sweep}")
    exits = sweep / ".launcher" / "exits.jsonl"
    wait_until(lambda: exits.exists() and len(exits.read_text().splitlines()) == 2, "2 shards")
    (held,) = [i for i in range(3) if not (sweep / str(i) / "report.json").exists()]
    wait_until(lambda: (sweep / str(held) / "progress.json").exists(), "a heartbeat")
    sweep.rename(moved)
    gate.unlink()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert not sweep.exists()
    assert f"The sweep dir {sweep} was moved or deleted while its shards ran" in err
    lines = (moved / ".launcher" / "exits.jsonl").read_text().splitlines()
    codes = {e["shard"]: e["exit_code"] for e in map(json.loads, lines)}
    assert codes == {i: int(i == held) for i in range(3)}
    said = (moved / "logs" / f"local-0_{held}.err").read_text()
    assert said.count("was moved or deleted") == 1, said
    assert f"the job dir {sweep / str(held)} was moved or deleted while the job ran" in said
    assert "Traceback" not in said
    assert not (moved / str(held) / "report.json").exists()  # its report had nowhere to go
    r = launch(*args, multirun=True)  # the same command, into a new sweep dir
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(keys(ledger)) == [f"{i:03d}.txt" for i in range(6)]


def test_shards_not_started_when_their_sweep_dir_moves_are_never_started(tmp_path):
    """One shard at a time: the running one stops as above; the local scheduler starts no
    other (each would fail to find its config and logs), says why once, and counts them."""
    out, ledger, gate, args = gated(tmp_path)
    sweep, moved = tmp_path / "sweep", tmp_path / "moved"
    args = [*args, "shard.strategy=contiguous", "hydra.launcher.array_parallelism=1"]
    proc = launching(*args, "hydra/launcher=local", "-m", run_dir=f"hydra.sweep.dir={sweep}")
    wait_until(lambda: (sweep / "0" / "progress.json").exists(), "shard 0's heartbeat")
    sweep.rename(moved)
    gate.unlink()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert not sweep.exists()
    assert err.count("the 2 shard(s) not started yet are not started") == 1, err
    assert "Traceback" not in err
    assert not (moved / "1").exists() and not (moved / "2").exists()
    lines = (moved / ".launcher" / "exits.jsonl").read_text().splitlines()
    assert [(e["shard"], e["exit_code"]) for e in map(json.loads, lines)] == [(0, 1)]


def test_a_run_dir_deleted_while_its_job_runs_is_never_recreated(tmp_path):
    run = tmp_path / "run"
    args = ["task=squares", f"task.output_dir={tmp_path / 'out'}", "task.n=40", "task.slow_s=0.2"]
    proc = launching(*args, "backbone.num_workers=1", run_dir=f"hydra.run.dir={run}")
    wait_until(lambda: (run / "progress.json").exists(), "a heartbeat")
    time.sleep(0.3)
    shutil.rmtree(run)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert not run.exists()
    assert err.count(f"the job dir {run} was moved or deleted while the job ran") == 1, err
    assert "Traceback" not in err
    assert len(list((tmp_path / "out").glob("*.txt"))) < 40  # it stopped taking items


def test_a_failed_shard_retried_in_a_relaunch_gives_the_sweeps_totals(launch, tmp_path):
    """4 shards of 203 items, shard 0 with failures; the relaunch with run.retry_failed=true
    runs shard 0 alone, on its failed items, and reports its whole count: the sweep is
    203/203 done, shard 0 is marked completed, and a further relaunch has nothing to do."""
    out, fault = tmp_path / "out", tmp_path / "fault"
    fault.touch()  # items 0, 8, 16, ... (all in shard 0 of 4) fail while it exists
    args = ["task=squares", f"task.output_dir={out}", "task.n=203", "task.fail_mod=8"]
    args += [f"task.fault_file={fault}", "shard.num=4", "backbone.num_workers=1"]
    r = launch(*args, multirun=True)
    assert r.returncode == 1, r.stdout + r.stderr
    fault.unlink()

    r = launch(*args, "run.retry_failed=true", multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert launched(r.stdout).startswith("Local: 1 shard(s)") and "3 already done" in r.stdout
    rep = report(launch.job_dir / "0")
    assert (rep["total"], rep["skipped"], rep["processed"], rep["failed"]) == (51, 25, 26, 0)
    st = status(launch.job_dir)
    assert st.returncode == 0, st.stdout + st.stderr
    assert "items: 203/203 done, 0 failed" in st.stdout, st.stdout
    assert "marker" not in st.stdout  # shard 0 left its completion marker

    r = launch(*args, multirun=True)
    assert launched(r.stdout).startswith("Nothing to launch: all 4 shard(s)"), r.stdout
