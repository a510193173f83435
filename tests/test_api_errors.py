"""Issue 20, the Python API: ``launcher.run`` raises ``InputError`` / ``ConfigError`` for a
bad input, as it does for a bad config (the job's records still written), and one clear
error when called from a thread other than the main one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import launcher
from tests.conftest import TEST_CONF, report
from tests.sample_tasks import Squares

SEARCH = [f"hydra.searchpath=[file://{TEST_CONF}]"]
pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("inputs", ["missing", "empty"])
def test_a_bad_input_dir_raises_input_error(tmp_path: Path, inputs: str) -> None:
    folder = tmp_path / "in"
    if inputs == "empty":
        folder.mkdir()
    overrides = [*SEARCH, f"task.input_dir={folder}", f"task.output_dir={tmp_path / 'o'}"]
    with pytest.raises(launcher.InputError, match="task.input_dir|No items found") as raised:
        launcher.run("thumbnail", job_dir=tmp_path / "job", overrides=overrides)
    assert raised.value.exit_code == 2
    rep = report(tmp_path / "job")  # the records are there all the same
    assert (rep["state"], rep["exit_code"]) == ("failed", 2)


def test_an_unpicklable_task_object_raises_config_error(tmp_path: Path) -> None:
    task = Squares(output_dir=str(tmp_path / "o"), n=4, unpicklable=True)
    with pytest.raises(launcher.ConfigError, match="cannot be pickled"):
        launcher.run(task, backbone={"start_method": "forkserver"}, job_dir=tmp_path / "job")
    assert not list((tmp_path / "o").glob("*.txt"))


def test_a_call_from_another_thread_says_why_it_cannot_run(tmp_path: Path) -> None:
    raised: list[BaseException] = []

    def call() -> None:
        try:
            launcher.run("squares", job_dir=tmp_path / "job",
                         overrides=[*SEARCH, f"task.output_dir={tmp_path / 'o'}"])  # fmt: skip
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            raised.append(e)

    t = threading.Thread(target=call)
    t.start()
    t.join(timeout=120)
    (error,) = raised
    assert isinstance(error, launcher.ConfigError) and "main thread" in str(error)
    assert not (tmp_path / "job").exists() and not (tmp_path / "o").exists()
