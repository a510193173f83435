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

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_install import readme_block

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
