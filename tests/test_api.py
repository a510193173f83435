"""``launcher.run``: one job in this process, with the records the command line writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import launcher
from tests.conftest import REPO, TEST_CONF, failures, report
from tests.sample_tasks import SlowTeardown, Squares

SEARCH = [f"hydra.searchpath=[file://{TEST_CONF}]"]
pytestmark = pytest.mark.timeout(180)


def visible(job_dir: Path) -> set[str]:
    return {str(p.relative_to(job_dir)) for p in job_dir.rglob("*") if p.is_file()}


def test_a_named_task_gives_the_report_and_the_records_of_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "out"
    common = [f"task.output_dir={out}", "task.fail_mod=7", f"task.fault_file={REPO}/README.md"]
    rep = launcher.run(
        "squares",
        shard={"num": 2, "idx": 1},
        backbone={"num_workers": 2},
        run={"progress": "off"},
        job_dir=tmp_path / "api",
        overrides=[*SEARCH, *common, "task.n=40"],
    )
    assert rep == report(tmp_path / "api")
    assert (rep["total"], rep["processed"], rep["failed"], rep["exit_code"]) == (20, 17, 3, 1)
    assert rep["shard"]["idx"] == 1 and rep["backbone"]["num_workers"] == 2
    assert len(failures(tmp_path / "api")) == 3
    assert sorted(p.name for p in out.glob("*.txt"))[:2] == ["000001.txt", "000003.txt"]

    cli = tmp_path / "cli"
    argv = [sys.executable, str(REPO / "launch.py"), *SEARCH, "task=squares", *common]
    argv += ["task.n=40", "shard.num=2", "shard.idx=1", "backbone.num_workers=2"]
    argv += ["run.progress=off"]
    subprocess.run([*argv, f"hydra.run.dir={cli}"], cwd=REPO, capture_output=True, timeout=120)
    assert visible(tmp_path / "api") == visible(cli)
    assert set(rep) == set(report(cli))
    config = [(d / ".hydra" / "config.yaml").read_text() for d in (tmp_path / "api", cli)]
    assert config[0] == config[1]  # the same job, composed the same way


def test_a_task_config_or_a_task_object(tmp_path: Path) -> None:
    cfg = {"_target_": "tests.sample_tasks.Squares", "output_dir": str(tmp_path / "a"), "n": 5}
    rep = launcher.run(cfg, backbone="mp", run={"progress": "off"}, job_dir=tmp_path / "j1")
    assert (rep["processed"], rep["task"]) == (5, "tests.sample_tasks.Squares")
    assert (tmp_path / "a" / "000004.txt").read_text().split() == ["4", "16"]

    task = Squares(output_dir=str(tmp_path / "b"), n=6)
    rep = launcher.run(task, run={"progress": "off"}, job_dir=tmp_path / "j2")
    assert (rep["processed"], rep["skipped"], rep["task"]) == (6, 0, "tests.sample_tasks.Squares")
    rep = launcher.run(task, run={"progress": "off"}, job_dir=tmp_path / "j3")
    assert (rep["processed"], rep["skipped"]) == (0, 6)  # resumable, as on the command line
    assert "tests.sample_tasks.Squares on shard-0-of-1" in (tmp_path / "j3" / "job.log").read_text()


@pytest.mark.parametrize("start_method", ["forkserver", "fork"])
def test_the_job_ends_after_every_worker_s_teardown(tmp_path: Path, start_method: str) -> None:
    out = tmp_path / "out"
    task = SlowTeardown(output_dir=str(out), n=20)
    backbone = {"name": "mp", "num_workers": 2, "start_method": start_method}
    rep = launcher.run(task, backbone=backbone, run={"progress": "off"}, job_dir=tmp_path / "j")
    assert (rep["state"], rep["exit_code"], rep["processed"]) == ("completed", 0, 20)
    assert len(list(out.glob("teardown-*"))) == 2  # written before the job returned


@pytest.mark.parametrize(
    ("task", "kwargs", "named"),
    [
        ("squares", {"backbone": {"num_worker": 2}}, "num_worker"),
        ("squares", {"overrides": ["backbone.num_worker=2"]}, "Did you mean num_workers"),
        ("squares", {"run": {"dry_rnu": True}}, "dry_rnu"),
        ("squares", {"overrides": ["shard.num=two"]}, "shard.num"),
        ("nosuch", {}, "task/nosuch"),
        ("squares", {"out": False}, "task.output_dir"),  # '???' in the config
        ("squares", {"out": False}, re.escape("launcher.run(..., overrides=['task.output_dir=")),
    ],
)
def test_a_bad_config_raises_before_any_work(
    tmp_path: Path, task: str, kwargs: dict, named: str
) -> None:
    out = [f"task.output_dir={tmp_path}/o"] if kwargs.pop("out", True) else []
    kwargs["overrides"] = [*SEARCH, *out, *kwargs.get("overrides", [])]
    with pytest.raises(launcher.ConfigError, match=named):
        launcher.run(task, job_dir=tmp_path / "job", **kwargs)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "kwargs", [{"shard": {"num": 4}}, {"overrides": ["shard.num=4"]}, {"shard": {"num": "4"}}]
)
def test_a_shard_count_without_the_shard_is_refused(tmp_path: Path, kwargs: dict) -> None:
    """As on the command line: shard 0 of 4 alone, exiting 0, is almost never what was meant."""
    kwargs["overrides"] = [*SEARCH, f"task.output_dir={tmp_path}/o", *kwargs.get("overrides", [])]
    with pytest.raises(launcher.ConfigError, match=r"shard.num=4 without shard.idx") as refused:
        launcher.run("squares", job_dir=tmp_path / "job", **kwargs)
    assert refused.value.exit_code == 2
    assert not (tmp_path / "o").exists() and not (tmp_path / "job").exists()

    kwargs["overrides"].append("task.n=8")
    rep = launcher.run(
        "squares", job_dir=tmp_path / "j3", **{**kwargs, "shard": {"num": 4, "idx": 3}}
    )
    assert (rep["processed"], rep["shard"]["idx"], rep["exit_code"]) == (2, 3, 0)


def test_the_report_returned_is_the_failed_job_s_own(tmp_path: Path) -> None:
    """A job that stops on an error returns its report, with the exit code the command line
    would exit with, and the same as ``report.json`` says."""
    out = [f"task.output_dir={tmp_path}/o", "task.fault=setup_raises"]
    job_dir = tmp_path / "job"
    rep = launcher.run(
        "hostile", run={"progress": "off"}, job_dir=job_dir, overrides=[*SEARCH, *out]
    )
    assert (rep["state"], rep["exit_code"], rep["processed"]) == ("failed", 1, 0)
    assert "setup could not reach the database" in rep["error"]
    assert rep == report(job_dir)
