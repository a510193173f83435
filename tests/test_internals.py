"""Each framework internal of ``launcher/internals.py``, pinned against the installed
version: an upgrade that changes one fails here, naming it, not in a user's sweep."""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobStatus

from launcher import internals, layout
from launcher.machine import pid_alive

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def hydra_cfg(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text("x: 1\n")
    with initialize_config_dir(config_dir=str(conf), version_base=None, job_name="t"):
        cfg = compose("config", [f"hydra.run.dir={tmp_path / 'run'}"], return_hydra_config=True)
    return cfg


def test_hydra_run_job_takes_the_private_callbacks(hydra_cfg):
    ret = internals.run_job_here(hydra_cfg, lambda c: c.x + 6, "hydra.run.dir", None, False)
    assert ret.status is JobStatus.COMPLETED and ret.return_value == 7


def test_a_failed_job_return_holds_its_exception(hydra_cfg):
    def boom(cfg):
        raise KeyError("boom")

    ret = internals.run_job_here(hydra_cfg, boom, "hydra.run.dir", None, False)
    assert ret.status is JobStatus.FAILED
    assert isinstance(internals.job_exception(ret), KeyError)


def test_a_failed_return_raises_its_exception_through_public_return_value():
    exc = RuntimeError("never ran")
    ret = internals.failed_return(["a=1"], exc)
    assert ret.status is JobStatus.FAILED and internals.job_exception(ret) is exc
    with pytest.raises(RuntimeError, match="never ran"):
        ret.return_value  # noqa: B018 - Hydra's public accessor re-raises it


def _hydra_app(tmp_path: Path, config: str, argv: list[str], monkeypatch) -> tuple[list, list]:
    """Run a one-file Hydra app as ``hydra.main`` does; the ``x`` of each job it ran and
    the run mode of each config load."""
    import hydra
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    conf = tmp_path / "conf"
    conf.mkdir(parents=True)
    (conf / "config.yaml").write_text(config)
    loads: list = []
    load = ConfigLoaderImpl.load_configuration

    def counted(self, *args, **kwargs):
        loads.append(kwargs["run_mode"])
        return load(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    monkeypatch.setattr(sys, "argv", ["app", *argv])
    jobs: list = []
    app = hydra.main(version_base=None, config_path=str(conf), config_name="config")
    app(lambda cfg: jobs.append(cfg.x))()
    return jobs, loads


def test_hydra_composes_a_plain_run_twice_and_once_within(tmp_path, monkeypatch):
    from hydra.types import RunMode

    argv = ["x=2", f"hydra.run.dir={tmp_path / 'run'}"]
    jobs, loads = _hydra_app(tmp_path / "a", "x: 1\n", argv, monkeypatch)
    assert jobs == [2] and loads == [RunMode.MULTIRUN, RunMode.RUN]  # get_mode, then run
    with internals.plain_run_composed_once():
        jobs, loads = _hydra_app(tmp_path / "b", "x: 1\n", argv, monkeypatch)
    assert jobs == [2] and loads == [RunMode.RUN]


@pytest.mark.parametrize(("xs", "jobs"), [("x=2", [2]), ("x=2,3", [2, 3])])
def test_a_config_that_asks_a_sweep_still_sweeps_within(tmp_path, monkeypatch, xs, jobs):
    """Without ``-m``, one job or a sweep of two (which a run's composition refuses)."""
    config = "x: 1\nhydra:\n  mode: MULTIRUN\n"
    argv = [xs, f"hydra.sweep.dir={tmp_path / 's'}"]
    with internals.plain_run_composed_once():
        ran, _ = _hydra_app(tmp_path, config, argv, monkeypatch)
    assert sorted(ran) == jobs and (tmp_path / "s" / "0").is_dir()


def test_submitit_runner_reads_the_pickle_layout_names_and_writes_its_result(tmp_path):
    """process_job finds a SLURM array element's job at ``submitted_pickle`` and leaves
    ``("success", value)`` at ``JobPaths.result_pickle``, pickled by cloudpickle_dump."""
    from submitit.helpers import DelayedSubmission

    job_id = "4242_3"
    DelayedSubmission(int, "41").dump(layout.submitted_pickle(str(tmp_path), job_id))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SUBMITIT_EXECUTOR": "slurm",  # as the sbatch scripts set it
        "SLURM_JOB_ID": "4245",
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
    }
    code = f"from launcher.internals import process_job; process_job({str(tmp_path)!r})"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    result = internals.submitit_paths(tmp_path, job_id).result_pickle
    with open(result, "rb") as f:
        assert pickle.load(f) == ("success", 41)


def test_cloudpickle_dump_writes_what_pickle_loads(tmp_path):
    path = tmp_path / "x.pkl"
    internals.cloudpickle_dump(("success", [1, 2]), str(path))
    assert pickle.loads(path.read_bytes()) == ("success", [1, 2])


def test_submitit_slurm_log_names_are_the_ones_its_jobs_read(tmp_path):
    """A general SLURM launch writes its logs where ``submitit.SlurmJob`` looks."""
    paths = internals.submitit_paths(tmp_path, "77_5")
    base = layout.slurm_logs(tmp_path).replace("%A", "77").replace("%a", "5")
    assert (base + layout.OUT, base + layout.ERR) == (str(paths.stdout), str(paths.stderr))


def test_unexpected_keyword_is_read_from_python_typeerror():
    class Thing:
        def __init__(self, size: int) -> None:
            self.size = size

    with pytest.raises(TypeError) as info:
        Thing(sizee=3)
    assert internals.unexpected_keyword(info.value) == ("Thing", "sizee")
    assert internals.unexpected_keyword(TypeError("something else")) is None


class _Slow:
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> int:
        import time

        time.sleep(5)
        return i


class _Dies(_Slow):
    def __getitem__(self, i: int) -> int:
        os._exit(3)


@pytest.mark.parametrize(("dataset", "how"), [(_Slow(), "timeout"), (_Dies(), "died")])
def test_dataloader_errors_are_told_apart_by_their_text(dataset, how):
    torch = pytest.importorskip("torch")
    iterator = iter(torch.utils.data.DataLoader(dataset, num_workers=1, timeout=0.5))
    pids = internals.loader_worker_pids(iterator)
    with pytest.raises(RuntimeError) as info:
        next(iterator)
    assert internals.loader_failure(info.value) == how
    assert internals.loader_failure(RuntimeError("CUDA out of memory")) is None
    assert pids
    with contextlib.suppress(RuntimeError):  # torch's SIGCHLD handler names the killed worker
        internals.stop_loader_workers(iterator)
    assert not any(pid_alive(pid) for pid in pids)


def test_fsspec_names_a_parent_folder_without_its_protocol():
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    assert internals.parent_of(fs, "memory://b/x/y.txt") == "/b/x"
