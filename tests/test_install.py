"""A real, non-editable install: build the wheel, install it into a fresh venv, and use it
from an empty directory the way a new user's project would (issue 10, points 1 and 2).

The venv reuses this environment's packages (``--system-site-packages``: Hydra, Pillow)
but holds shard-launcher itself from the wheel; commands run with ``PYTHONPATH`` unset
from directories that are not the checkout, and the first test checks that ``launcher``
really comes from the venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, need_slurm

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NOT_PACKAGED = shutil.ignore_patterns(
    ".git", "outputs", "build", "*.egg-info", "__pycache__", ".*_cache", "results"
)


class Venv:
    def __init__(self, root: Path, wheel: Path) -> None:
        self.root = root
        self.wheel = wheel
        self.bin = root / "bin"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def __call__(self, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a command of the venv (``shard-launcher``, ``python``) in ``cwd``."""
        argv = [str(self.bin / args[0]), *args[1:]]
        return subprocess.run(
            argv, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a clean copy: no build/ left over from an earlier build leaks in
    shutil.copytree(REPO, src, ignore=NOT_PACKAGED)
    pip = [sys.executable, "-m", "pip"]
    wheels = tmp / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, src],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("shard_launcher-*.whl")
    root = tmp / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", root],
        check=True,
    )
    subprocess.run(
        [*pip, "--python", root / "bin" / "python", "install", "--no-deps", "--no-index", "-q"]
        + [wheel],
        check=True,
        capture_output=True,
    )
    return Venv(root, wheel)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_the_wheel_installs_launcher_and_our_hydra_plugin_only(venv: Venv) -> None:
    names = zipfile.ZipFile(venv.wheel).namelist()
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
    text = zipfile.ZipFile(venv.wheel).read(entry_points).decode()
    assert "shard-launcher = launcher.cli:main" in text


def test_launcher_comes_from_the_venv_not_the_checkout(venv: Venv, empty: Path) -> None:
    code = (
        "import launcher, hydra_plugins.shard_launcher as p; print(launcher.__file__, p.__file__)"
    )
    r = venv(empty, "python", "-c", code)
    assert r.returncode == 0, r.stderr
    for path in r.stdout.split():
        assert path.startswith(str(venv.root)), path


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
    pytest.importorskip("easyocr_en_models")  # the `ocr` extra
    r = venv(empty, "python", "-m", "launcher", "task=ocr", "run.dry_run=true")
    assert r.returncode == 0, r.stderr
    (job,) = (empty / "outputs" / "runs").glob("*/*")
    report = json.loads((job / "report.json").read_text())
    assert (report["total"], report["pending"], report["state"]) == (20, 20, "dry_run")


def readme_block(first_line: str) -> str:
    """The README code block that starts with ``first_line``."""
    readme = (REPO / "README.md").read_text()
    (block,) = re.findall(rf"```\w+\n({re.escape(first_line)}\n.*?)```", readme, re.S)
    return block


def users_project(project: Path, books: int) -> Path:
    """The README's wordcount task, verbatim, in a fresh project with ``books/*.txt``."""
    for name in ("tasks/wordcount.py", "conf/task/wordcount.yaml"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(readme_block(f"# {name}"))
    (project / "books").mkdir()
    for i in range(books):
        (project / "books" / f"b{i}.txt").write_text("word " * i)
    return project


def test_the_readme_task_runs_in_a_users_own_project(venv: Venv, tmp_path: Path) -> None:
    project = users_project(tmp_path / "my_project", books=7)
    books = project / "books"

    r = venv(project, "shard-launcher", "task=wordcount", f"task.input_dir={books}")
    assert r.returncode == 0, r.stderr
    counts = project / "outputs" / "wordcount"
    assert sorted(p.read_text() for p in counts.glob("*.count")) == [f"{i}\n" for i in range(7)]

    out = tmp_path / "sharded"
    r = venv(
        project,
        "shard-launcher",
        "task=wordcount",
        "-m",  # in the middle of the overrides, as in the README's examples
        f"task.input_dir={books}",
        f"task.output_dir={out}",
        "shard.num=3",
        "hydra/launcher=local",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert r.returncode == 0, r.stderr
    reports = [
        json.loads((tmp_path / "sweep" / str(i) / "report.json").read_text()) for i in range(3)
    ]
    assert sorted(rep["shard"]["idx"] for rep in reports) == [0, 1, 2]
    assert sum(rep["processed"] for rep in reports) == 7
    assert len(list(out.glob("*.count"))) == 7


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
    (job,) = (project / "outputs" / "runs").glob("*/*")
    backbone = json.loads((job / "report.json").read_text())["backbone"]
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
        f"hydra.launcher.job_name=install-{os.getpid()}",
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
