"""``hydra/launcher=slurm``: each array of the sweep is one ``sbatch --array`` through submitit.

Per array and chunk (arrays over the cluster's ``MaxArraySize`` are split) the
launcher writes one submitit pickle (a :class:`ShardElement` that knows the
array's config file and the chunk's first shard) and one sbatch script, and
calls ``sbatch`` once: 1000 shards cost one composition, one pickle and one
``sbatch``. Elements run submitit's job runner, so preemption and time limits
(``--signal=USR2@signal_delay_s``) checkpoint and requeue them.

Before submitting, the request is checked against the cluster (``scontrol``):
SLURM accepts, then keeps pending forever, jobs that ask for more CPUs, GPUs,
nodes or time than the partition can ever give.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from launcher.launchers import arrays as arr
from launcher.launchers import probe
from launcher.launchers.base import Launched, ShardLauncher, counts
from launcher.launchers.cluster import (
    DEFAULT_PARALLELISM,
    Cluster,
    SubmitError,
    check_options,
    check_request,
    sbatch,
    sbatch_options,
    sbatch_script,
)
from launcher.launchers.config import SlurmConfig
from launcher.layout import SweepDir, chunk_pickle, element_log, sbatch_file

log = logging.getLogger("launcher")

POLL_S = 2.0


# -- the launcher --------------------------------------------------------------------------------


@dataclass
class SbatchArray:
    """The elements of one array that one ``sbatch --array`` submits."""

    array: arr.Array
    number: int
    offset: int | None
    elements: list[arr.Element]

    @property
    def task_ids(self) -> list[int]:
        return [0 if e.shard is None else e.shard - (self.offset or 0) for e in self.elements]


def chunks(array: arr.Array, max_array_size: int) -> list[SbatchArray]:
    """Split an array so that every task id is below the cluster's MaxArraySize."""
    todo = array.todo
    if todo and todo[0].shard is None:
        return [SbatchArray(array, 0, None, todo)]
    by_chunk: dict[int, list[arr.Element]] = {}
    for e in todo:
        assert e.shard is not None
        by_chunk.setdefault(e.shard // max_array_size, []).append(e)
    return [SbatchArray(array, c, c * max_array_size, els) for c, els in sorted(by_chunk.items())]


class SlurmLauncher(ShardLauncher):
    backend = "slurm"
    options_class = SlurmConfig
    wait_default: ClassVar[bool] = False

    def preflight(self) -> None:
        super().preflight()
        probe.require_controller()

    def _sbatch_arrays(self, arrays: list[arr.Array], cluster: Cluster) -> list[SbatchArray]:
        check_options(self.opts)
        for a in arrays:
            check_request(self.opts, self._cpus(a), cluster)
        return [c for a in arrays for c in chunks(a, cluster.max_array_size)]

    def _cpus(self, array: arr.Array) -> int | None:
        if self.opts.cpus_per_task is not None:
            return self.opts.cpus_per_task
        workers = array.config.backbone.get("num_workers")
        return workers if isinstance(workers, int) and workers > 0 else None

    def _script(self, chunk: SbatchArray, directory: str, log: str) -> tuple[str, str]:
        a = chunk.array
        p = self.opts.array_parallelism or DEFAULT_PARALLELISM
        ids = chunk.task_ids
        array = f"{arr.ranges(ids)}%{min(p, len(ids))}"
        name = self.opts.job_name or str(a.config.hydra.runtime.choices.get("task") or "shard")
        folder = SweepDir(directory).submitit(a.submission)
        pickle_path = chunk_pickle(folder, a.index, chunk.number)
        python = self.opts.python or shlex.quote(sys.executable)
        command = [python, "-u", "-m", "launcher.launchers.element", "--slurm"]
        command.append(shlex.quote(pickle_path))
        offset = "itself" if chunk.offset is None else f"SLURM_ARRAY_TASK_ID + {chunk.offset}"
        note = f"shard-launcher: array {a.index} of {directory}; shard.idx = {offset}"
        params = sbatch_options(self.opts, name, array, log, self._cpus(a))
        return sbatch_script(params, list(self.opts.setup), command, note), pickle_path

    def start(self, arrays: list[arr.Array], directory: str) -> Launched:
        from submitit.helpers import DelayedSubmission

        from launcher.launchers.element import ShardElement

        cluster = Cluster.query()
        parts = self._sbatch_arrays(arrays, cluster)
        for a in arrays:
            os.makedirs(SweepDir(directory).submitit(a.submission), exist_ok=True)
        os.makedirs(SweepDir(directory).logs, exist_ok=True)
        submitted: list[dict[str, Any]] = []
        for chunk in parts:
            script, pickle_path = self._script(chunk, directory, SweepDir(directory).slurm_logs)
            delayed = DelayedSubmission(ShardElement(chunk.array.spec_path, chunk.offset))
            delayed.set_timeout(self.opts.timeout_min, self.opts.max_num_timeout)
            delayed.dump(pickle_path)
            script_path = sbatch_file(pickle_path)
            with open(script_path, "w", encoding="utf-8") as f:
                f.write(script)
            try:
                job_id = sbatch(script_path)
            except SubmitError as e:  # all or nothing: a half-submitted sweep has no record
                ids = [s["job_id"] for s in submitted]
                if ids:
                    subprocess.run(["scancel", *ids], capture_output=True, timeout=60)
                    e.args = (f"{e}; cancelled the array job(s) already submitted: {ids}",)
                raise
            shards = [e.shard for e in chunk.elements]
            submitted.append({"array": chunk.array.index, "job_id": job_id, "shards": shards})
            for e, task in zip(chunk.elements, chunk.task_ids, strict=True):
                e.extra["slurm_id"] = f"{job_id}_{task}"
                e.extra["log"] = element_log(f"{job_id}_{task}")
            chunk.array.extra.setdefault("slurm_jobs", []).append(job_id)
        todo, skipped = counts(arrays)
        done = f"; {skipped} shard(s) already done, not submitted" if skipped else ""
        headline = f"Submitted {todo} shard(s) as {len(submitted)} SLURM array job(s){done}:"
        ids = []
        for s in submitted:
            shards = "(own selection)" if s["shards"] == [None] else arr.ranges(s["shards"])
            what = " ".join(arrays[s["array"]].shown)
            ids.append(f"  job {s['job_id']}: shards {shards} {what}".rstrip())
        return Launched({"max_array_size": cluster.max_array_size}, headline, ids)

    def describe_backend(self, arrays: list[arr.Array], directory: str) -> list[str]:
        cluster = Cluster.query()
        lines = []
        for chunk in self._sbatch_arrays(arrays, cluster):
            script, _ = self._script(chunk, directory, SweepDir(directory).slurm_logs)
            lines.append(f"  sbatch script of array {chunk.array.index}, chunk {chunk.number}:")
            lines.extend("    " + x for x in script.rstrip().splitlines())
        return lines

    def wait(self, launched: Launched, directory: str) -> dict[tuple[int, int | None], int]:
        from launcher.status import collect

        while True:
            summary = collect(directory, write=False)
            if all(row.final for row in summary.shards if row.launched):
                break
            time.sleep(POLL_S)
        return {
            (row.array, row.shard): 0 if row.state == "done" else 1
            for row in summary.shards
            if row.launched
        }
