"""Every path and file name the launcher reads or writes, in one place.

Three places hold what a run leaves, each with its own class (submitit's
``JobPaths`` is the model): a job dir (:class:`JobDir`, Hydra's, always local),
a state dir beside the outputs (:class:`StateDir`, a local path or an fsspec
URL: :mod:`launcher.location` joins its paths) and a sweep dir
(:class:`SweepDir`, local). The files submitit's own runner reads keep the
names submitit gives them (:func:`launcher.internals.submitit_paths`).
Writers and readers take their paths from here; ``tests/test_layout.py``
refuses a record's name spelt anywhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from launcher import location
from launcher.internals import submitit_paths

# -- names that messages and readers also show ------------------------------------------------

REPORT = "report.json"  # in a job dir: the final account of the job
FAILURES = "failures.jsonl"  # in a job dir: one line per failed item of this run
PROGRESS = "progress.json"  # in a job dir: the heartbeat
STATE = ".launcher"  # in an output folder (the default state dir) and in a sweep dir
SWEEP_RECORD = "sweep.json"  # in a sweep's STATE: the arrays, their shards and ids
SUMMARY = "summary.json"  # in a sweep dir: the merged view ``status`` last showed
PARAMS = "params.json"  # in a hash-named output folder: the values that named it
LOGS = "logs"  # in a sweep dir: the elements' stdout and stderr
OUT, ERR = ".out", ".err"  # the suffixes of an element's stdout and stderr logs


def default_state_dir(output_dir: str) -> str:
    """The state dir of a task that names no ``run.state_dir``: inside its output folder."""
    return location.join(output_dir, STATE)


def params_file(folder: str) -> str:
    """Where a hash-named output folder says what made it."""
    return location.join(folder, PARAMS)


@dataclass(frozen=True)
class JobDir:
    """One job's records in its (local) job dir."""

    root: str

    @property
    def report(self) -> str:
        return os.path.join(self.root, REPORT)

    @property
    def failures(self) -> str:
        return os.path.join(self.root, FAILURES)

    @property
    def progress(self) -> str:
        return os.path.join(self.root, PROGRESS)

    def log(self, job_name: str = "job") -> str:
        """Hydra's log file of the job (``hydra.job.name``)."""
        return os.path.join(self.root, f"{job_name}.log")

    def inflight(self, shard_tag: str) -> str:
        return os.path.join(self.root, f"inflight-{shard_tag}.json")


@dataclass(frozen=True)
class StateDir:
    """What a task keeps beside its outputs: locks, completion markers, failures for
    retries, the torch backbone's items in flight. ``root`` may be a URL."""

    root: str

    @property
    def locks(self) -> str:
        return location.join(self.root, "locks")

    def lock(self, shard_tag: str) -> str:
        return location.join(self.locks, f"{shard_tag}.lock")

    def done(self, config_key: str) -> str:
        """The folder of completion markers of one task config, one file per shard."""
        return location.join(self.root, f"done/{config_key}")

    def marker(self, config_key: str, shard_tag: str) -> str:
        return location.join(self.done(config_key), marker_name(shard_tag))

    def failures(self, task_key: str) -> str:
        """The failures of every shard split of one task, kept for retries."""
        return location.join(self.root, f"failures/{task_key}")

    def shard_failures(self, task_key: str, split_key: str, shard_tag: str) -> str:
        """One job's failures for retries: keyed by task and shard split, so jobs sharing
        a state dir never share a file."""
        return location.join(self.failures(task_key), f"{split_key}.{shard_tag}{KEPT_FAILURES}")


def inflight(state_dir: str | None, job_dir: str, shard_tag: str) -> str:
    """The torch backbone's record of the items in flight (a memory-mapped file): beside
    the shard's failures when the state dir is on a disk, else in the job dir."""
    if state_dir and not location.is_url(state_dir):
        return os.path.join(state_dir, f"inflight-{shard_tag}.json")
    return JobDir(job_dir).inflight(shard_tag)


def marker_name(shard_tag: str) -> str:
    return f"{shard_tag}.json"


def marker_tag(name: str) -> str | None:
    """The shard tag a file of a markers folder names; None for anything else."""
    return name[: -len(".json")] if name.endswith(".json") and not name.startswith(".") else None


KEPT_FAILURES = ".jsonl"  # the suffix of the files in a task's failures folder


def failure_files(folder: str) -> str:
    """The glob of the files in a task's (local) failures folder."""
    return os.path.join(folder, f"*{KEPT_FAILURES}")


def is_lock(name: str) -> bool:
    """Whether a file of a locks folder is a shard's lock."""
    return name.endswith(".lock")


@dataclass(frozen=True)
class SweepDir:
    """What a launch keeps in a (local) sweep dir, beside its job dirs."""

    root: str

    @property
    def state(self) -> str:
        return os.path.join(self.root, STATE)

    @property
    def record(self) -> str:
        return os.path.join(self.state, SWEEP_RECORD)

    @property
    def claim(self) -> str:
        """Held while one submission checks the sweep dir, writes and submits."""
        return os.path.join(self.state, "lock")

    @property
    def exits(self) -> str:
        """One line per local element that ended."""
        return os.path.join(self.state, "exits.jsonl")

    @property
    def local_queue(self) -> str:
        """The queue a detached local scheduler runs (``wait=false``)."""
        return os.path.join(self.state, "local-queue.json")

    @property
    def summary(self) -> str:
        return os.path.join(self.root, SUMMARY)

    @property
    def logs(self) -> str:
        return os.path.join(self.root, LOGS)

    @property
    def slurm_logs(self) -> str:
        """The log base of a SLURM array's elements (sbatch fills in ``%A_%a``)."""
        return os.path.join(self.logs, "%A_%a")

    @property
    def scheduler_log(self) -> str:
        return os.path.join(self.logs, "local-scheduler.log")

    def at(self, relative: str) -> str:
        """A path the sweep record keeps relative to the sweep dir: a job dir, or an
        element's log base (``+ OUT``, ``+ ERR``)."""
        return os.path.join(self.root, relative)

    def submission(self, name: str) -> str:
        """One launch's files: a later launch never changes what an earlier one reads."""
        return os.path.join(self.state, name)

    def spec(self, submission: str, array: int) -> str:
        """The pickled config of one array."""
        return os.path.join(self.submission(submission), f"array-{array}.pkl")

    def submitit(self, submission: str) -> str:
        """The folder of submitit's runner: pickles and results of one launch's arrays."""
        return os.path.join(self.submission(submission), "submitit")

    def jobs(self, first_job: int) -> Path:
        """The files of a batch of another Hydra app's jobs (:mod:`launchers.general`)."""
        return Path(self.state) / "jobs" / f"batch-{first_job}"


def sweep_of_spec(spec_path: str) -> str:
    """The sweep dir an array's pickled config (:meth:`SweepDir.spec`) lies in."""
    return os.path.dirname(os.path.dirname(os.path.dirname(spec_path)))


def element_log(name: str) -> str:
    """An element's log base, relative to the sweep dir (as its record keeps it)."""
    return os.path.join(LOGS, name)


def chunk_pickle(folder: str, array: int, chunk: int) -> str:
    """The submitit pickle of one SLURM chunk of an array."""
    return os.path.join(folder, f"array-{array}.{chunk}.pkl")


def sbatch_file(pickle_path: str | Path) -> str:
    """The sbatch script beside a chunk's (or a batch's) pickle."""
    return os.path.splitext(str(pickle_path))[0] + ".sbatch"


def submitted_pickle(folder: str, job_id: str) -> str:
    """Where submitit's runner looks for the job ``job_id`` (``ARRAY_TASK`` in an array)."""
    return str(submitit_paths(folder, job_id).submitted_pickle)


def slurm_logs(folder: str | Path) -> str:
    """The log base of a SLURM array's elements where submitit's ``SlurmJob`` reads them
    (``%A_%a``: sbatch fills in the array's job and task ids)."""
    return str(submitit_paths(folder, "%A_%a").stdout)[: -len(OUT)]


# -- a batch of another app's jobs run here (:mod:`launchers.general`) -------------------------


def job_pickle(folder: Path, i: int) -> Path:
    return folder / f"{i}.pkl"


def job_result(pickle_path: str) -> str:
    """Where a job run here keeps its outcome, beside its pickle."""
    return os.path.splitext(pickle_path)[0] + "_result.pkl"


def batch_script(folder: Path, start: int) -> Path:
    """The sbatch script of the SLURM array that runs the batch's jobs from ``start``."""
    return folder / f"array-{start}.sbatch"


def job_log(folder: Path, i: int) -> Path:
    """A local job's log base (``+ OUT``, ``+ ERR``)."""
    return folder / f"{i}_log"
