"""Fresh venvs holding shard-launcher the two ways users install it: the README's first
command (an editable install of the checkout) and a built wheel.

Each venv is made by ``python -m venv`` alone, so it sees nothing of the environment the
tests run in (``--system-site-packages`` would not help: from inside a venv it exposes the
base interpreter's packages, not the active venv's); pip fills it from its index, pinned
by ``constraints.txt``, as a user's would. Both install from a clean copy of the checkout,
and commands run with ``PYTHONPATH`` unset from folders outside it, so nothing of the
checkout is importable except through the install. The fixtures that make them are in
tests/conftest.py (one venv per install mode per session).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

NOT_PACKAGED = shutil.ignore_patterns(
    ".git", "outputs", "build", "*.egg-info", "__pycache__", ".*_cache", "results", ".venv*"
)
PYTEST = ["pytest>=8,<10", "pytest-timeout>=2.3,<3"]  # the test extra's: Hydra's suites run there
INSTALL_TIMEOUT_S = 900


def readme_block(first_line: str) -> str:
    """The README code block that starts with ``first_line``."""
    readme = (REPO / "README.md").read_text()
    (block,) = re.findall(rf"```\w+\n({re.escape(first_line)}\n.*?)```", readme, re.S)
    return block


def readme_install_command() -> list[str]:
    """The README's first command (its first ``bash`` block, up to ``&&``):
    ``python -m pip install -e '.[ocr]' -c constraints.txt``."""
    readme = (REPO / "README.md").read_text()
    first = re.search(r"```bash\n(.*)\n", readme)
    assert first is not None, "the README has no bash block"
    return shlex.split(first.group(1).partition("&&")[0])


def clean_env() -> dict[str, str]:
    """This environment without anything that would import the checkout or this venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


class Venv:
    """A venv and how shard-launcher got into it (``mode``: ``editable`` or ``wheel``)."""

    def __init__(self, root: Path, mode: str, source: Path) -> None:
        self.root = root
        self.mode = mode
        self.source = source  # the clean copy it was installed from
        self.bin = root / "bin"

    def env(self) -> dict[str, str]:
        env = clean_env()
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def __call__(self, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a command of the venv (``shard-launcher``, ``python``) in ``cwd``."""
        argv = [str(self.bin / args[0]), *args[1:]]
        return subprocess.run(
            argv, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def pip(self, cwd: Path, *args: str) -> None:
        r = self(cwd, "python", "-m", "pip", *args, timeout=INSTALL_TIMEOUT_S)
        assert r.returncode == 0, f"pip {' '.join(args)}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"


def clean_copy(dest: Path) -> Path:
    """The checkout as a fresh clone has it: no build/, outputs or caches left over."""
    shutil.copytree(REPO, dest, ignore=NOT_PACKAGED)
    return dest


def build_wheel(source: Path, wheels: Path) -> Path:
    """The wheel of ``source``, built with this environment's setuptools (no network)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("shard_launcher-*.whl")
    return wheel


def fresh_venv(root: Path, mode: str, source: Path) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, env=clean_env())
    return Venv(root, mode, source)


def editable_venv(root: Path, source: Path) -> Venv:
    """The README's first command, verbatim, run by the venv's python in ``source``."""
    venv = fresh_venv(root, "editable", source)
    command = readme_install_command()
    assert command[:2] == ["python", "-m"], command
    venv.pip(source, *command[3:])
    venv.pip(source, "install", "-q", "-c", "constraints.txt", *PYTEST)
    return venv


def wheel_venv(root: Path, source: Path, wheel: Path) -> Venv:
    """The wheel alone, as a project depending on shard-launcher gets it (no extra: what
    the tests run here needs none, and torch's wheel is most of an install's time)."""
    venv = fresh_venv(root, "wheel", source)
    venv.pip(source, "install", "-q", "-c", "constraints.txt", str(wheel), *PYTEST)
    return venv
