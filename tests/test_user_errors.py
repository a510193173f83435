"""Issue 20, error paths a careless user takes: one paragraph, exit 2, no traceback. Real
commands from a user's own project folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TASK = "from launcher import Task\n\n\nclass Real(Task):\n    pass\n"


def run_in(project: Path, *args: str) -> tuple[int, str]:
    r = subprocess.run([sys.executable, str(REPO / "launch.py"), *args], cwd=project,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    text = r.stdout + r.stderr
    assert "Traceback" not in text, text
    return r.returncode, text


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mine.py").write_text(TASK)
    (tmp_path / "conf" / "task").mkdir(parents=True)
    real = "_target_: tasks.mine.Real\noutput_dir: out\n"
    (tmp_path / "conf" / "task" / "real.yaml").write_text(real)
    return tmp_path


def test_a_misspelled_class_is_named_with_the_nearest(project):
    (project / "conf" / "task" / "typo.yaml").write_text("_target_: tasks.mine.Rael\n")
    code, text = run_in(project, "task=typo")
    assert code == 2 and "imports, but has no 'Rael'; did you mean 'Real'?" in text, text


def test_a_module_file_shadowing_the_tasks_package_is_named(project):
    (project / "tasks.py").write_text("x = 1\n")
    code, text = run_in(project, "task=real")
    assert code == 2 and f"tasks is the module {project / 'tasks.py'}, not a package" in text


def test_a_users_backbone_option_without_defaults_says_how_to_start_it(project):
    (project / "conf" / "backbone").mkdir()
    (project / "conf" / "backbone" / "big.yaml").write_text("num_workers: 2\n")
    code, text = run_in(project, "task=real", "backbone=big")
    assert code == 2 and "backbone=big" in text and "defaults: [mp, _self_]" in text, text


def test_a_jsonl_line_that_is_not_an_object_is_named_by_file_and_line(project):
    listing = project / "list.jsonl"
    listing.write_text('"a.png"\n[1, 2]\n')
    code, text = run_in(
        project,
        "task=thumbnail",
        f"task.input_dir={listing}",
        "~task.input",
        "+task.input={_target_: launcher.modes.FromJsonl}",
        "task.output_dir=o",
    )
    assert code == 2 and f"{listing}:2: the line is a JSON list, not an object" in text, text


def test_a_working_directory_that_cannot_hold_outputs_is_refused():
    code, text = run_in(Path("/proc"), "task=thumbnail")  # a real folder nobody can write in
    assert code == 2 and "the working directory /proc cannot hold outputs/" in text, text


def test_a_yaml_file_that_does_not_parse_is_named_by_file_and_line(project):
    bad = project / "conf" / "task" / "bad.yaml"
    bad.write_text("_target_: tasks.mine.Real\noutput_dir: [out\n")
    code, text = run_in(project, "task=bad")
    assert code == 2 and f"{bad}:3: not valid YAML" in text, text
    assert "flow sequence at line 2" in text
