"""Every command of the README's examples that needs no GPU, no cluster and no long run,
run as written (issue 10, point 7).

Commands come from the README's ``bash`` blocks; each runs in a copy of the checkout's
project layout (``launch.py``, ``conf/``, ``tasks/``), with ``/data/...`` paths moved
under a temporary folder holding a few inputs, and ``-m`` sweeps on local processes.
``shard-launcher`` runs as ``python -m launcher`` (the same entry point; the installed
script itself is tested in test_install.py). Commands that cannot run here are listed
in ``SKIPPED`` with the reason, so a new README command is run unless someone says why not.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, need_slurm
from tests.installs import readme_block

SKIPPED = {  # a command containing one of these does not run here, for the reason given
    "pip install": "installs packages",
    "scripts/test.sh": "the test suite itself",
    "status outputs/multirun/2026-11-21": "a sweep directory of the example's date",
    "cd my_project": "the directory change itself (its commands run in the project copy)",
    "...": "an elided command",
    "my_tasks/ocr.py": "needs the reader's kagurazaka task file",
    "hydra.launcher.partition=gpu": "a GPU partition of a real cluster",
    "s3://": "needs an S3 server and its buckets: tests/test_s3.py runs these against one",
}
LONG = {  # whole commands that run too long for this test, and where they are tested
    "python launch.py task=ocr": "OCR of the 20 bundled pages on CPU: tests/test_ocr.py",
    "python -m launcher.examples.check_ocr outputs/ocr": "needs that OCR: tests/test_ux.py",
}


def readme_commands() -> list[str]:
    """The README's shell commands, comments dropped, ``&&`` chains split."""
    readme = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in shlex.join(shlex.split(line, comments=True)).split(" '&&' "):
                if part:
                    commands.append(part)
    return commands


def runnable(command: str) -> bool:
    return command not in LONG and not any(marker in command for marker in SKIPPED)


COMMANDS = [c for c in readme_commands() if runnable(c)]


def test_the_readme_still_has_its_examples() -> None:
    assert len(COMMANDS) >= 12, COMMANDS
    assert any(" -m hydra.launcher.dry_run=true" in c for c in COMMANDS)  # -m mid-overrides
    for name in ("tasks/wordcount.py", "conf/task/wordcount.yaml"):  # the checkout's example
        assert (REPO / name).read_text() == readme_block(f"# {name}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's project layout with its own ``outputs/``, and ``/data`` inputs."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copy(REPO / "launch.py", root)
    for folder in ("conf", "tasks"):
        shutil.copytree(REPO / folder, root / folder)
    photos = root / "data" / "photos"
    photos.mkdir(parents=True)
    samples = REPO / "launcher" / "examples" / "samples" / "thumbnail"
    for image in sorted(samples.rglob("*.png"))[:4]:
        shutil.copy(image, photos)
    books = root / "data" / "books"
    books.mkdir()
    for i in range(3):
        (books / f"book{i}.txt").write_text("a few words " * (i + 1))
    return root


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs_as_written(project: Path, command: str) -> None:
    argv = [a.replace("/data/", f"{project}/data/") for a in shlex.split(command)]
    if argv[0] == "shard-launcher":
        argv[:1] = [sys.executable, "-m", "launcher"]
    elif argv[0] == "python":
        argv[0] = sys.executable
    if "--help" not in argv:
        argv.append("run.progress=off")
        if "-m" in argv and not any(a.startswith("hydra/launcher=") for a in argv):
            argv.append("hydra/launcher=local")  # not SLURM, even where sbatch is on PATH
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_readme_python_api_example_runs(project: Path) -> None:
    readme = (REPO / "README.md").read_text()
    (block,) = re.findall(r"```python\n(import launcher\n.*?)```", readme, re.S)
    body = block.replace("/data/", f"{project}/data/")
    script = "def main():\n" + "".join(f"    {line}\n" for line in body.splitlines())
    script += "    print(report['total'], report['failed'], report['exit_code'])\n"
    script += "\n\nif __name__ == '__main__':\n    main()\n"
    (project / "api_example.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "api_example.py"]
    r = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["9", "0", "0"]  # shard 1 of 4 of the 36 bundled images
    assert (project / "runs" / "try1" / "report.json").is_file()
    assert sorted(p.name for p in (project / "counts").iterdir() if p.is_file()) == [
        f"book{i}.txt.count" for i in range(3)
    ]


# -- what the README shows a command printing, against what it prints (issue 22, point 7) --

README = (REPO / "README.md").read_text()
SAMPLES = REPO / "launcher" / "examples" / "samples"
OURS = "task=thumbnail backbone=mp shard.num=4"  # the README's SLURM sweep, on CPUs here


def shown_pattern(shown: str) -> re.Pattern:
    """The README's example of some output as a pattern: ``...`` stands for any text,
    ``<date>/<time>`` for a run dir's name, an ``x`` in a version for its digits, and every
    number for any number (counts and times differ from run to run; words must not)."""
    pattern = re.sub(r"\d+(?:\\\.\d+)?", r"\\d+(?:\\.\\d+)?", re.escape(" ".join(shown.split())))
    pattern = pattern.replace(re.escape("<date>/<time>"), r"[\d-]+/[\d-]+")
    pattern = pattern.replace(re.escape("..."), ".+").replace(r"\.x", r"\.\d+")
    return re.compile(pattern)


def launcher_in(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m launcher ARGS`` in ``cwd``, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "launcher", *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_shown_patterns_match_what_they_show_and_not_a_different_text() -> None:
    p = shown_pattern("a: processed 20 in 4.5s; records in .../runs/<date>/<time> (1.3.x)")
    assert p.fullmatch("a: processed 7 in 12s; records in /t/runs/2026-01-02/10-00-00-1 (1.3.8)")
    assert not p.fullmatch("a: done 7 in 12s; records in /t/runs/2026-01-02/10-00-00-1 (1.3.8)")


@pytest.mark.slow
def test_the_thumbnail_hash_folder_in_the_readme_is_the_one_a_fresh_run_makes(
    tmp_path: Path,
) -> None:
    match = re.search(r'`\{"hash": "(\w+)", "params": (\{.*?\}), \.\.\.\}`', README)
    assert match is not None, "the README no longer shows the thumbnail's params.json"
    r = launcher_in(tmp_path, "task=thumbnail", "run.limit=1", "run.progress=off")
    assert r.returncode == 0, r.stderr
    (folder,) = (tmp_path / "outputs" / "thumbnail").iterdir()
    params = json.loads((folder / "params.json").read_text())
    assert (folder.name, params["hash"]) == (match[1], match[1])
    assert params["params"] == json.loads(match[2])


def test_the_version_line_in_the_readme_is_what_version_prints(tmp_path: Path) -> None:
    (shown,) = re.findall(r"^python launch.py --version +# (.*)$", README, re.M)
    r = launcher_in(tmp_path, "--version")
    assert r.returncode == 0 and shown_pattern(shown).fullmatch(r.stdout.strip()), r.stdout
    assert r.stdout.startswith(shown.split("(")[0])  # our version exactly


def test_the_ocr_check_line_in_the_readme_is_what_the_check_prints(tmp_path: Path) -> None:
    """The check on pages read exactly (the README's run reads them all)."""
    (shown,) = re.findall(r"^# (outputs/ocr: .*)$", README, re.M)
    truth = json.loads((SAMPLES / "ocr" / "truth.json").read_text())
    out = tmp_path / "outputs" / "ocr"
    out.mkdir(parents=True)
    for name, lines in truth.items():
        (out / (name.rsplit(".", 1)[0] + ".txt")).write_text("\n".join(lines) + "\n")
    check = [sys.executable, "-m", "launcher.examples.check_ocr", "outputs/ocr"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(check, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == shown


@pytest.mark.slow
def test_the_summary_line_in_the_readme_is_what_the_ocr_run_prints(tmp_path: Path) -> None:
    """The README's OCR run, on one of its pages: the same words, other numbers."""
    pytest.importorskip("torch")
    pytest.importorskip("easyocr_en_models")
    match = re.search(r"`(shard-0-of-1: processed .*?)`", README, re.S)
    assert match is not None, "the README no longer shows the OCR run's last line"
    page = tmp_path / "pages"
    page.mkdir()
    shutil.copy(sorted((SAMPLES / "ocr").glob("*.png"))[0], page)
    r = launcher_in(tmp_path, "task=ocr", f"task.input_dir={page}", "run.progress=off")
    assert r.returncode == 0, r.stdout + r.stderr
    last = (r.stdout + r.stderr).strip().splitlines()[-1].partition(" - ")[2]
    assert shown_pattern(match[1]).fullmatch(last), (match[1], last)


@pytest.mark.slurm
@pytest.mark.slow
def test_the_slurm_submission_in_the_readme_is_what_a_submission_prints(tmp_path: Path) -> None:
    """The README's GPU OCR sweep, run as the bundled thumbnails on this cluster's CPUs,
    in a checkout of its own (no shard done before): the same lines, other numbers."""
    need_slurm()
    project = tmp_path / "checkout"
    project.mkdir()
    shutil.copy(REPO / "launch.py", project)
    block = readme_block("python launch.py task=ocr backbone=torch shard.num=1000 -m \\")
    shown = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    assert len(shown) == 5, shown
    shown = [s.replace("task=ocr backbone=torch shard.num=1000", OURS) for s in shown]
    argv = ["python", "launch.py", *OURS.split(), "-m", "hydra/launcher=slurm"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        argv,
        executable=sys.executable,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    printed = r.stdout.strip().splitlines()
    assert len(printed) == len(shown), printed
    for example, line in zip(shown, printed, strict=True):
        assert shown_pattern(example).fullmatch(" ".join(line.split())), (example, line)
    sweep = printed[2].split()[-1]
    deadline = time.monotonic() + 180  # let the shards end before the next test
    while launcher_in(project, "status", sweep).returncode == 3 and time.monotonic() < deadline:
        time.sleep(1)
