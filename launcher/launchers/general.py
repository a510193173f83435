"""Any Hydra app's jobs on our backends, one process per job, as hydra-submitit-launcher runs them.

Our own app's shard sweeps take the fast path (:mod:`~launcher.launchers.arrays`);
every other app gets Hydra's launcher contract: each job's config is composed
from its overrides in the job's process, then Hydra's ``run_job`` sets
``HydraConfig``, the job's num and id, its output dir, runs the callbacks and
the task function, and returns a ``JobReturn`` with the function's return
value, or status FAILED with its exception.

- ``local``: ``array_parallelism`` processes at once (default: the CPUs here);
  always waits.
- ``slurm``: one ``sbatch --array`` per batch of jobs (split at the cluster's
  MaxArraySize), with the same sbatch script and request checks as our arrays;
  elements run submitit's job runner, so time limits requeue them. Waits unless
  ``wait=false``, which submits, prints the job ids and returns no results.

Each batch keeps its files in ``<sweep>/.launcher/jobs/batch-<first job num>/``:
one pickle per job, its result and its logs.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException

from launcher.errors import UserError
from launcher.internals import failed_return
from launcher.launchers.cluster import (
    DEFAULT_PARALLELISM,
    Cluster,
    SubmitError,
    check_request,
    sbatch,
    sbatch_options,
    sbatch_script,
)
from launcher.layout import (
    ERR,
    OUT,
    SweepDir,
    batch_script,
    job_log,
    job_pickle,
    job_result,
    slurm_logs,
    submitted_pickle,
)
from launcher.machine import available_cpus

if TYPE_CHECKING:
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

log = logging.getLogger("launcher")


class Launching(Protocol):
    """What a general launch reads of the shard launcher that hands it the jobs."""

    backend: str
    opts: Any
    config: DictConfig | None
    hydra_context: HydraContext | None
    task_function: TaskFunction | None

    def preflight(self) -> None: ...


POLL_S = 0.05


class LaunchError(CompactHydraException):
    """A user's setting makes launching impossible: Hydra prints this one paragraph."""


class HydraJob:
    """One job of any Hydra app: what runs in its process (pickled with cloudpickle)."""

    def __init__(
        self,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
        overrides: list[str],
        job_num: int,
        singletons: dict[str, Any],
    ) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config
        self.overrides = overrides
        self.job_num = job_num
        self.singletons = singletons  # ConfigStore, resolvers: what the app registered

    def __call__(self) -> JobReturn:
        from hydra.core.singleton import Singleton
        from hydra.core.utils import run_job, setup_globals
        from omegaconf import open_dict

        Singleton.set_state(self.singletons)
        setup_globals()
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, self.overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = self.job_num
            cfg.hydra.job.id = _slurm_job_id() or str(self.job_num)
        return run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=cfg,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )

    def checkpoint(self) -> Any:
        """On SLURM's time limit or a preemption, submitit requeues the job as it was."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def _slurm_job_id() -> str | None:
    if "SLURM_ARRAY_JOB_ID" not in os.environ:
        return None
    return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"


def launch(
    launcher: Launching, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """Run a batch of any app's jobs on the launcher's backend; their JobReturns, in order."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import filter_overrides
    from submitit.helpers import DelayedSubmission

    assert launcher.config is not None and launcher.hydra_context is not None
    assert launcher.task_function is not None
    try:
        launcher.preflight()
    except UserError as e:
        raise LaunchError(str(e)) from None
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))  # resolved once: ${now:} stays put
    folder = SweepDir(str(sweep_dir)).jobs(initial_job_idx)
    overrides = [list(o) for o in job_overrides]
    log.info("%s: %d job(s), sweep dir %s", launcher.backend, len(overrides), sweep_dir.absolute())
    for i, o in enumerate(overrides):
        log.info("\t#%d : %s", initial_job_idx + i, " ".join(filter_overrides(o)))
    if launcher.opts.dry_run:
        print(f"Dry run ({launcher.backend}): nothing launched.", flush=True)
        return []
    cluster = _cluster(launcher) if launcher.backend == "slurm" else None  # refuse first
    folder.mkdir(parents=True, exist_ok=True)
    singletons = Singleton.get_state()
    for i, o in enumerate(overrides):
        job = HydraJob(
            launcher.hydra_context,
            launcher.task_function,
            launcher.config,
            o,
            initial_job_idx + i,
            singletons,
        )
        DelayedSubmission(job).dump(job_pickle(folder, i))
    if cluster is not None:
        return _slurm(launcher, cluster, folder, overrides)
    return _local(launcher, folder, overrides)


def _path_args() -> list[str]:
    """The app's own directory first on the job's sys.path, as it was here."""
    return ["--path", os.path.abspath(sys.path[0] or ".")]


def _failed(overrides: list[str], message: str) -> JobReturn:
    return failed_return(overrides, JobFailed(message))


class JobFailed(RuntimeError):
    """The job ended without a JobReturn: its process failed outside the task function."""


# -- local ---------------------------------------------------------------------------------------


def _local(launcher: Launching, folder: Path, overrides: list[list[str]]) -> list[JobReturn]:
    parallelism = launcher.opts.array_parallelism or available_cpus()
    todo = deque(range(len(overrides)))
    running: dict[subprocess.Popen, int] = {}
    codes: dict[int, int] = {}
    while todo or running:
        while todo and len(running) < parallelism:
            i = todo.popleft()
            running[_spawn(folder, i)] = i
        for proc in [p for p in running if p.poll() is not None]:
            codes[running.pop(proc)] = proc.returncode
        time.sleep(POLL_S)
    return [_local_result(folder, i, codes[i], o) for i, o in enumerate(overrides)]


def _spawn(folder: Path, i: int) -> subprocess.Popen:
    argv = [sys.executable, "-u", "-m", "launcher.launchers.general", *_path_args()]
    log = str(job_log(folder, i))
    with open(log + OUT, "ab") as out, open(log + ERR, "ab") as err:
        return subprocess.Popen(
            [*argv, "--local", str(job_pickle(folder, i))],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def _local_result(folder: Path, i: int, code: int, overrides: list[str]) -> JobReturn:
    import pickle

    path = Path(job_result(str(job_pickle(folder, i))))
    if not path.exists():
        logs = job_log(folder, i)
        message = f"job process exited with code {code} and no result; see {logs}.*"
        return _failed(overrides, message)
    with open(path, "rb") as f:
        kind, value = pickle.load(f)
    if kind == "success":
        return value
    return _failed(overrides, f"job failed outside its task function:\n{value}")


def run_local_job(pickle_path: str) -> int:
    """In the job's process: run it, keep its outcome the way submitit does."""
    from submitit.helpers import DelayedSubmission

    from launcher.internals import cloudpickle_dump

    result = job_result(pickle_path)
    try:
        outcome: tuple[str, Any] = ("success", DelayedSubmission.load(pickle_path).result())
    except Exception:
        outcome = ("error", traceback.format_exc())
    cloudpickle_dump(outcome, result + ".tmp")
    os.replace(result + ".tmp", result)
    return 0 if outcome[0] == "success" else 1


# -- slurm ---------------------------------------------------------------------------------------


def _cluster(launcher: Launching) -> Cluster:
    """What the cluster can give, once the request is known to fit it."""
    cluster = Cluster.query()
    try:
        check_request(launcher.opts, launcher.opts.cpus_per_task, cluster)
    except UserError as e:
        raise LaunchError(str(e)) from None
    return cluster


def _slurm(
    launcher: Launching, cluster: Cluster, folder: Path, overrides: list[list[str]]
) -> list[JobReturn]:
    opts = launcher.opts
    assert launcher.config is not None
    name = opts.job_name or str(launcher.config.hydra.job.name)
    python = opts.python or shlex.quote(sys.executable)
    ids: list[str] = []
    submitted: list[str] = []
    step = cluster.max_array_size
    for start in range(0, len(overrides), step):
        count = min(step, len(overrides) - start)
        p = min(opts.array_parallelism or DEFAULT_PARALLELISM, count)
        command = [python, "-u", "-m", "launcher.launchers.general", *_path_args()]
        command += ["--slurm", shlex.quote(str(folder)), "--offset", str(start)]
        logs = slurm_logs(folder)  # submitit's names: its error messages show them
        params = sbatch_options(opts, name, f"0-{count - 1}%{p}", logs, opts.cpus_per_task)
        note = f"shard-launcher: jobs {start}..{start + count - 1} of {folder}"
        script_path = batch_script(folder, start)
        script_path.write_text(sbatch_script(params, list(opts.setup), command, note))
        try:
            job_id = sbatch(str(script_path))
        except SubmitError as e:  # all or nothing, as for our arrays
            if submitted:
                subprocess.run(["scancel", *submitted], capture_output=True, timeout=60)
                e.args = (f"{e}; cancelled the array job(s) already submitted: {submitted}",)
            raise LaunchError(str(e)) from None
        submitted.append(job_id)
        ids += [f"{job_id}_{t}" for t in range(count)]
    log.info("slurm: submitted %d job(s) as array job(s) %s", len(ids), ", ".join(submitted))
    if launcher.opts.wait is False:
        print(
            f"Submitted {len(ids)} job(s) as SLURM array job(s) {', '.join(submitted)}; "
            f"not waiting (hydra.launcher.wait=false): logs and results in {folder.absolute()}",
            flush=True,
        )
        return []
    return [_slurm_result(folder, i, o) for i, o in zip(ids, overrides, strict=True)]


def _slurm_result(folder: Path, job_id: str, overrides: list[str]) -> JobReturn:
    import submitit

    job = submitit.SlurmJob(folder=folder, job_id=job_id)
    try:
        return job.results()[0]
    except Exception as e:  # submitit's errors carry the job's traceback or its stderr
        return _failed(overrides, f"SLURM job {job_id}: {e}")


def _slurm_main(folder: str, offset: int) -> None:
    """Give this element its job's pickle where submitit's runner looks, and run it."""
    import shutil

    from launcher.internals import process_job

    task = int(os.environ["SLURM_ARRAY_TASK_ID"])
    target = submitted_pickle(folder, str(_slurm_job_id()))
    if not os.path.exists(target):  # a requeued job keeps the checkpoint submitit wrote there
        shutil.copyfile(job_pickle(Path(folder), offset + task), target + ".tmp")
        os.replace(target + ".tmp", target)
    process_job(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m launcher.launchers.general")
    parser.add_argument("--path", action="append", default=[], help="put first on sys.path")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--local", metavar="JOB_PICKLE", help="run one job here")
    mode.add_argument("--slurm", metavar="FOLDER", help="run as an element of a SLURM array")
    parser.add_argument("--offset", type=int, default=0, help="job index of array task 0")
    args = parser.parse_args(argv)
    for path in reversed(args.path):
        if path not in sys.path:
            sys.path.insert(0, path)
    if args.slurm:
        _slurm_main(args.slurm, args.offset)
        return
    sys.exit(run_local_job(args.local))


if __name__ == "__main__":
    main()
