"""Installs as users make them, used from outside the checkout with no ``PYTHONPATH``
(issue 10, points 1 and 2; issue 22, points 1 to 3).

Each test runs in both installs of tests/installs.py: the README's own first command
(``pip install -e '.[ocr]' -c constraints.txt``, an editable install) and a built wheel,
each in a fresh venv of its own. The first test checks that ``launcher`` really comes from
the install and that no generic top-level name (``tasks``, ``conf``, ...) of the checkout
became importable everywhere.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import need_slurm
from tests.installs import Venv, readme_block

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first test makes the venvs

GENERIC = ("tasks", "conf", "bench", "scripts", "tests")


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_the_wheel_installs_launcher_and_our_hydra_plugin_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert top == {"launcher", "hydra_plugins"}
    assert {n.split("/")[1] for n in names if n.startswith("hydra_plugins/")} == {"shard_launcher"}
    assert "hydra_plugins/__init__.py" not in names  # a namespace shared with other plugins
    for data in (
        "launcher/conf/config.yaml",
        "launcher/conf/task/thumbnail.yaml",
        "launcher/conf/task/ocr.yaml",
        "launcher/examples/samples/ocr/truth.json",
    ):
        assert data in names
    assert sum(n.startswith("launcher/examples/samples/thumbnail/") for n in names) == 36
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "shard-launcher = launcher.cli:main" in text


IMPORTS = """
import importlib.util, sys
import launcher, hydra_plugins.shard_launcher as p
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
print(launcher.__file__)
print(p.__file__)
print(",".join(n for n in sys.argv[1:] if importlib.util.find_spec(n)))
print(",".join(sorted(c.__name__ for c in Plugins.instance().discover(Launcher))))
"""


def test_launcher_comes_from_the_install_and_nothing_generic_is_importable(
    venv: Venv, empty: Path
) -> None:
    r = venv(empty, "python", "-c", IMPORTS, *GENERIC)
    assert r.returncode == 0, r.stderr
    launcher_file, plugin_file, importable, launchers = r.stdout.splitlines()
    home = venv.source if venv.mode == "editable" else venv.root
    for path in (launcher_file, plugin_file):
        assert path.startswith(str(home)), path
    assert importable == ""  # the checkout's tasks/, conf/, ... are no one's top-level names
    # Hydra's plugin scan (pkgutil over hydra_plugins.__path__) finds our launchers
    assert {"AutoLauncher", "LocalLauncher", "SlurmLauncher"} <= set(launchers.split(","))


def test_help_and_version_from_an_empty_directory(venv: Venv, empty: Path) -> None:
    r = venv(empty, "shard-launcher", "--help")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^task: .*\bocr\b.*\bthumbnail\b", r.stdout, re.M)
    assert "backbone: auto, mp, torch" in r.stdout
    r = venv(empty, "shard-launcher", "--version")
    assert r.returncode == 0 and r.stdout.startswith("shard-launcher 0.1.0 (Hydra 1.3."), r.stdout
    r = venv(empty, "python", "-m", "launcher", "task=thumbnail", "--help")
    assert r.returncode == 0, r.stderr
    assert "== task=thumbnail" in r.stdout and "size: 128" in r.stdout
    r = venv(empty, "shard-launcher", "status")  # usage in the command the user typed
    assert r.returncode == 2 and "usage: shard-launcher status [-h]" in r.stderr, r.stderr


def test_the_status_page_comes_with_the_wheel(venv: Venv, empty: Path) -> None:
    from bench.status_read import write_sweep

    sweep = write_sweep(str(empty / "sweep"), 4)
    r = venv(empty, "shard-launcher", "status", sweep, "--html", "page.html")
    assert r.returncode == 0, r.stderr  # four done shards
    page = (empty / "page.html").read_text()
    assert "window.statusPage" in page and "function linePlot" in page and "#gridbox" in page
    assert "{{" not in page  # every part of the template filled in


def test_bundled_thumbnail_task_writes_under_the_current_directory(venv: Venv, empty: Path) -> None:
    r = venv(empty, "shard-launcher", "task=thumbnail", "run.progress=off")
    assert r.returncode == 0, r.stderr
    (out,) = (empty / "outputs" / "thumbnail").iterdir()
    assert len(list(out.glob("*/*/*.jpeg"))) == 36
    (job,) = (empty / "outputs" / "runs").glob("*/*")
    report = json.loads((job / "report.json").read_text())
    assert (report["processed"], report["failed"], report["exit_code"]) == (36, 0, 0)
    assert report["task"] == "launcher.examples.thumbnail.ThumbnailTask"


def test_bundled_ocr_samples_are_found_from_anywhere(venv: Venv, empty: Path) -> None:
    r = venv(empty, "python", "-m", "launcher", "task=ocr", "run.dry_run=true")
    assert r.returncode == 0, r.stderr
    (job,) = (empty / "outputs" / "runs").glob("*/*")
    report = json.loads((job / "report.json").read_text())
    assert (report["total"], report["pending"], report["state"]) == (20, 20, "dry_run")


def users_project(project: Path, books: int) -> Path:
    """The README's wordcount task, verbatim, in a fresh project with ``books/*.txt``."""
    for name in ("tasks/wordcount.py", "conf/task/wordcount.yaml"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(readme_block(f"# {name}"))
    (project / "books").mkdir()
    for i in range(books):
        (project / "books" / f"b{i}.txt").write_text("word " * i)
    return project


def job_reports(project: Path) -> list[dict]:
    """The reports of the project's single runs, oldest first."""
    jobs = sorted((project / "outputs" / "runs").glob("*/*"))
    return [json.loads((job / "report.json").read_text()) for job in jobs]


def wait_for_status(venv: Venv, cwd: Path, sweep: Path) -> str:
    """``status`` of a sweep once every shard ended (exit 3 while some have not)."""
    deadline = time.monotonic() + 180
    while True:
        r = venv(cwd, "shard-launcher", "status", str(sweep))
        if r.returncode != 3 or time.monotonic() > deadline:
            assert r.returncode == 0, r.stdout + r.stderr
            return r.stdout


API_SCRIPT = """
import launcher

if __name__ == "__main__":
    report = launcher.run("wordcount", overrides=["task.input_dir=books", "task.output_dir=api"],
                          backbone="mp")
    print(report["processed"], report["failed"], report["exit_code"])
"""


def test_the_readme_walkthrough_in_a_users_own_project(venv: Venv, tmp_path: Path) -> None:
    """The README's "Use it in your own project": a run, the same run again, a 4-shard
    sweep (``auto``: SLURM where a controller answers, else local), ``status``, then
    ``launcher.run``."""
    project = users_project(tmp_path / "my_project", books=7)
    counts = project / "outputs" / "wordcount"

    refused = f"hydra.run.dir={tmp_path / 'refused'}"  # the messages name the user's command
    r = venv(project, "shard-launcher", "task=wordcount", refused)
    assert r.returncode == 2 and "e.g. `shard-launcher task.input_dir=...`" in r.stdout + r.stderr
    for _ in range(2):
        r = venv(project, "shard-launcher", "task=wordcount", "task.input_dir=books")
        assert r.returncode == 0, r.stderr
    assert sorted(p.read_text() for p in counts.glob("*.count")) == [f"{i}\n" for i in range(7)]
    first, again = job_reports(project)
    assert (first["processed"], first["skipped"]) == (7, 0)
    assert (again["processed"], again["skipped"]) == (0, 7)  # the rerun skips what is done

    r = venv(
        project,
        "shard-launcher",
        "task=wordcount",
        "task.input_dir=books",
        "task.output_dir=sharded",
        "shard.num=4",
        "-m",
        timeout=200,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (sweep,) = (project / "outputs" / "multirun").glob("*/*")
    assert f"Status:    shard-launcher status {sweep}" in r.stdout, r.stdout
    table = wait_for_status(venv, project, sweep)
    assert re.search(r"\b7/7\b", table), table
    reports = [json.loads((sweep / str(i) / "report.json").read_text()) for i in range(4)]
    assert sorted(rep["shard"]["idx"] for rep in reports) == [0, 1, 2, 3]
    assert sum(rep["processed"] for rep in reports) == 7
    assert len(list((project / "sharded").glob("*.count"))) == 7

    (project / "count_books.py").write_text(API_SCRIPT)
    r = venv(project, "python", "count_books.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split()[-3:] == ["7", "0", "0"]


def test_a_users_own_backbone_option_is_checked_like_ours(venv: Venv, tmp_path: Path) -> None:
    project = users_project(tmp_path / "my_project", books=2)
    (project / "conf" / "backbone").mkdir()
    (project / "conf" / "backbone" / "big.yaml").write_text(
        "defaults: [mp, _self_]\nnum_workers: 1\nstart_method: spawn\n"
    )
    (project / "conf" / "backbone" / "typo.yaml").write_text("defaults: [mp, _self_]\nworkers: 1\n")
    common = ["task=wordcount", "task.input_dir=books", "run.dry_run=true"]
    r = venv(project, "shard-launcher", *common, "backbone=big")
    assert r.returncode == 0, r.stderr
    (backbone,) = (rep["backbone"] for rep in job_reports(project))
    assert (backbone["num_workers"], backbone["start_method"]) == (1, "spawn")
    r = venv(project, "shard-launcher", *common, "backbone=typo")
    assert r.returncode == 2 and "backbone.workers" in r.stderr, r.stderr


@pytest.mark.slurm
def test_a_users_project_sweeps_on_slurm(venv: Venv, tmp_path: Path) -> None:
    need_slurm()
    project = users_project(tmp_path / "my_project", books=5)
    sweep = tmp_path / "sweep"
    r = venv(
        project,
        "shard-launcher",
        "task=wordcount",
        "task.input_dir=books",
        "shard.num=3",
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.wait=true",
        f"hydra.launcher.job_name=install-{venv.mode}",
        f"hydra.sweep.dir={sweep}",
        timeout=200,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    reports = [json.loads((sweep / str(i) / "report.json").read_text()) for i in range(3)]
    assert sum(rep["processed"] for rep in reports) == 5
    assert all(rep["slurm"]["array_job_id"] for rep in reports), reports
    assert len(list((project / "outputs" / "wordcount").glob("*.count"))) == 5


def test_a_task_module_that_does_not_import_names_it(venv: Venv, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "conf" / "task").mkdir(parents=True)
    (project / "conf" / "task" / "typo.yaml").write_text("_target_: tasks.wordcnt.WordCount\n")
    r = venv(project, "shard-launcher", "task=typo")
    assert r.returncode == 2
    out = r.stdout + r.stderr  # the log goes to stdout
    assert "tasks/wordcnt.py was not found" in out and str(project) in out, out
    assert "Traceback" not in out
