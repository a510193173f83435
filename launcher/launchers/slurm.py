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
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from launcher.errors import ConfigError, UserError
from launcher.launchers import arrays as arr
from launcher.launchers import probe
from launcher.launchers.base import ShardLauncher
from launcher.launchers.config import SlurmConfig

log = logging.getLogger("launcher")

DEFAULT_PARALLELISM = 256
SUBMITIT = "submitit"  # in <sweep>/.launcher/: pickles and results of submitit's runner
POLL_S = 2.0


class SubmitError(UserError):
    """sbatch refused the job: its message says why."""


# -- what the cluster can give -------------------------------------------------------------------


@dataclass
class Node:
    cpus: int
    mem_mb: int
    gpus: int
    partitions: list[str]


@dataclass
class Cluster:
    """What ``scontrol`` says about the partitions and nodes (read once per launch)."""

    max_array_size: int = 1001
    partitions: dict[str, dict[str, str]] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)

    @classmethod
    def query(cls) -> Cluster:
        if shutil.which("scontrol") is None:
            return cls()
        cmds = {
            "config": ["scontrol", "show", "config"],
            "partition": ["scontrol", "-o", "show", "partition"],
            "node": ["scontrol", "-o", "show", "node"],
        }
        procs = {
            k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k, c in cmds.items()
        }
        out = {}
        for k, p in procs.items():
            stdout, stderr = p.communicate(timeout=60)
            if p.returncode:
                raise SubmitError(f"`{' '.join(cmds[k])}` failed: {stderr.strip()}")
            out[k] = stdout
        cluster = cls()
        m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out["config"], re.M)
        if m:
            cluster.max_array_size = int(m.group(1))
        for line in out["partition"].splitlines():
            kv = _fields(line)
            if "PartitionName" in kv:
                cluster.partitions[kv["PartitionName"]] = kv
        for line in out["node"].splitlines():
            kv = _fields(line)
            if "NodeName" in kv:
                cluster.nodes[kv["NodeName"]] = Node(
                    cpus=int(kv.get("CPUTot", 0) or 0),
                    mem_mb=int(kv.get("RealMemory", 0) or 0),
                    gpus=_gpus(kv.get("Gres", "")),
                    partitions=[p for p in kv.get("Partitions", "").split(",") if p],
                )
        return cluster

    def default_partition(self) -> str | None:
        for name, kv in self.partitions.items():
            if kv.get("Default") == "YES":
                return name
        return None


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(?:^|\s)(\w+)=(\S*)", line))


def _gpus(gres: str) -> int:
    """GPUs in a node's Gres, e.g. ``gpu:a100:4(S:0-1),shard:8`` -> 4."""
    total = 0
    for part in gres.split(","):
        fields = part.split("(")[0].split(":")
        if fields[0] == "gpu" and fields[-1].isdigit():
            total += int(fields[-1])
    return total


def _minutes(limit: str) -> int | None:
    """A SLURM time (``1-00:00:00``, ``2-12``, ``30:00``, ``90``, ``UNLIMITED``) in minutes."""
    if not limit or limit.upper() in ("UNLIMITED", "INFINITE", "NONE"):
        return None
    days, _, rest = limit.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        h, m, s = (parts + [0, 0])[:3]
    else:  # minutes, minutes:seconds or hours:minutes:seconds
        h, m, s = [0] * (3 - len(parts)) + parts if len(parts) == 3 else (0, *(parts + [0])[:2])
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def _mem_mb(mem: str) -> int | None:
    m = re.fullmatch(r"(\d+)([KMGT]?)B?", mem.strip().upper())
    if not m:
        return None
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]
    return int(int(m.group(1)) * scale)


def check_request(opts: SlurmConfig, cpus: int | None, cluster: Cluster) -> None:
    """Refuse what no node of the partition can ever give (SLURM would let it pend forever)."""
    if not cluster.partitions:
        return
    name = opts.partition or cluster.default_partition()
    if name is None:
        return
    if name not in cluster.partitions:
        raise ConfigError(
            f"hydra.launcher.partition={name!r}: no such partition on this cluster "
            f"(partitions: {', '.join(sorted(cluster.partitions))})."
        )
    part = cluster.partitions[name]
    nodes = [n for n in cluster.nodes.values() if name in n.partitions]
    where = f"partition {name!r}"
    forever = "SLURM would accept the job and keep it pending forever"
    if opts.nodes > len(nodes) and nodes:
        raise ConfigError(
            f"hydra.launcher.nodes={opts.nodes}: {where} has {len(nodes)} node(s); {forever}."
        )
    max_cpus = max((n.cpus for n in nodes), default=0)
    per_node = part.get("MaxCPUsPerNode", "UNLIMITED")
    if per_node.isdigit():
        max_cpus = min(max_cpus, int(per_node))
    if cpus and max_cpus and cpus > max_cpus:
        raise ConfigError(
            f"hydra.launcher.cpus_per_task={cpus}: no node in {where} has more than "
            f"{max_cpus} CPUs; {forever} (reason PartitionConfig). Ask for at most {max_cpus}, "
            "or lower backbone.num_workers (cpus_per_task defaults to it)."
        )
    gpus = opts.gpus_per_task or (_gpus(opts.gres) if opts.gres else 0)
    max_gpus = max((n.gpus for n in nodes), default=0)
    if gpus and gpus > max_gpus:
        raise ConfigError(
            f"hydra.launcher: {gpus} GPU(s) per task requested, but no node in {where} has "
            f"more than {max_gpus}; {forever}."
        )
    limit = _minutes(part.get("MaxTime", ""))
    if limit is not None and opts.timeout_min > limit:
        raise ConfigError(
            f"hydra.launcher.timeout_min={opts.timeout_min}: {where} allows at most "
            f"{limit} minutes ({part['MaxTime']}); {forever} (reason PartitionTimeLimit)."
        )
    mem = _mem_mb(opts.mem) if opts.mem else None
    max_mem = max((n.mem_mb for n in nodes), default=0)
    if mem and max_mem and mem > max_mem:
        raise ConfigError(
            f"hydra.launcher.mem={opts.mem}: no node in {where} has more than {max_mem} MB."
        )


def check_options(opts: SlurmConfig) -> None:
    """Refuse SLURM options that can never work, naming the key (ranges: arrays.check_options)."""
    if opts.signal_delay_s >= opts.timeout_min * 60:
        raise ConfigError(
            f"hydra.launcher.signal_delay_s={opts.signal_delay_s}: the USR2 that asks an element "
            f"to stop and requeue would come at once (the time limit, "
            f"hydra.launcher.timeout_min={opts.timeout_min}, is {opts.timeout_min * 60} s): "
            "every element would be requeued until it fails. Use fewer seconds than the limit."
        )
    for i, line in enumerate(opts.setup):
        if not isinstance(line, str) or line in ("True", "False", "None") or not line.strip():
            raise ConfigError(
                f"hydra.launcher.setup[{i}]={line!r} is not a shell line (YAML read an unquoted "
                "true/false/null, or it is empty): quote each line, "
                """e.g. 'hydra.launcher.setup=["module load cuda","false"]'."""
            )


def live_jobs(ids: list[str]) -> list[str]:
    """The array jobs of ``ids`` that SLURM still has pending or running (``squeue``)."""
    if not ids or shutil.which("squeue") is None:
        return []
    r = subprocess.run(
        ["squeue", "-h", "-o", "%F", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode and "Invalid job id" not in r.stderr:
        raise SubmitError(f"`squeue -j {','.join(ids)}` failed: {r.stderr.strip()}")
    return sorted(set(r.stdout.split()) & set(ids))


# -- the sbatch script ---------------------------------------------------------------------------


def sbatch_options(
    opts: SlurmConfig, job_name: str, array: str, log: str, cpus: int | None
) -> dict[str, Any]:
    """Every ``#SBATCH`` line of one array chunk, in order; ``additional_parameters`` last."""
    params: dict[str, Any] = {
        "job-name": job_name,
        "array": array,
        "output": f"{log}.out",
        "error": f"{log}.err",
        "open-mode": "append",  # a requeued element adds to its logs
        "signal": f"USR2@{opts.signal_delay_s}",
        "time": opts.timeout_min,
        "nodes": opts.nodes,
        "ntasks-per-node": 1,
        "cpus-per-task": cpus,
        "gpus-per-task": opts.gpus_per_task,
        "gres": opts.gres,
        "mem": opts.mem,
        "partition": opts.partition,
        "account": opts.account,
        "qos": opts.qos,
        "constraint": opts.constraint,
        "exclude": opts.exclude,
    }
    params.update({k.replace("_", "-"): v for k, v in opts.additional_parameters.items()})
    return {k: v for k, v in params.items() if v is not None}


def sbatch_script(params: dict[str, Any], setup: list[str], command: list[str], note: str) -> str:
    lines = ["#!/bin/bash", f"# {note}"]
    for k, v in params.items():
        lines.append(f"#SBATCH --{k}" if v is True else f"#SBATCH --{k}={shlex.quote(str(v))}")
    if setup:
        lines += ["", "# setup: a line that fails ends the element, saying which"]
        for i, line in enumerate(setup, 1):
            said = shlex.quote(f"shard-launcher: setup line {i} of {len(setup)} failed: {line}")
            lines += [f"{{ {line}", f"}} || {{ echo {said} >&2; exit 1; }}"]
    srun = [
        "srun",
        "--unbuffered",
        "--open-mode=append",
        f"--output={params['output']}",
        f"--error={params['error']}",
    ]
    lines += [
        "",
        "export SUBMITIT_EXECUTOR=slurm",
        " ".join(shlex.quote(x) for x in srun) + " " + " ".join(command),
        "",
    ]
    return "\n".join(lines)


def sbatch(script_path: str) -> str:
    """Submit; return the job id."""
    r = subprocess.run(
        ["sbatch", "--parsable", script_path], capture_output=True, text=True, timeout=120
    )
    if r.returncode:
        raise SubmitError(f"sbatch refused {script_path}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout.strip().split(";")[0]


# -- the launcher --------------------------------------------------------------------------------


@dataclass
class Chunk:
    """The elements of one array that one ``sbatch --array`` submits."""

    array: arr.Array
    number: int
    offset: int | None
    elements: list[arr.Element]

    @property
    def task_ids(self) -> list[int]:
        return [0 if e.shard is None else e.shard - (self.offset or 0) for e in self.elements]


def chunks(array: arr.Array, max_array_size: int) -> list[Chunk]:
    """Split an array so that every task id is below the cluster's MaxArraySize."""
    todo = array.todo
    if todo and todo[0].shard is None:
        return [Chunk(array, 0, None, todo)]
    by_chunk: dict[int, list[arr.Element]] = {}
    for e in todo:
        assert e.shard is not None
        by_chunk.setdefault(e.shard // max_array_size, []).append(e)
    return [Chunk(array, c, c * max_array_size, els) for c, els in sorted(by_chunk.items())]


class SlurmLauncher(ShardLauncher):
    backend = "slurm"
    options_class = SlurmConfig
    wait_default: ClassVar[bool] = False

    def preflight(self) -> None:
        super().preflight()
        probe.require_controller()

    def _plan_chunks(self, arrays: list[arr.Array], cluster: Cluster) -> list[Chunk]:
        check_options(self.opts)
        for a in arrays:
            check_request(self.opts, self._cpus(a), cluster)
        return [c for a in arrays for c in chunks(a, cluster.max_array_size)]

    def _cpus(self, array: arr.Array) -> int | None:
        if self.opts.cpus_per_task is not None:
            return self.opts.cpus_per_task
        workers = array.config.backbone.get("num_workers")
        return workers if isinstance(workers, int) and workers > 0 else None

    def _script(self, chunk: Chunk, directory: str, log: str) -> tuple[str, str]:
        a = chunk.array
        p = self.opts.array_parallelism or DEFAULT_PARALLELISM
        ids = chunk.task_ids
        array = f"{arr.ranges(ids)}%{min(p, len(ids))}"
        name = self.opts.job_name or str(a.config.hydra.runtime.choices.get("task") or "shard")
        folder = os.path.join(arr.submission_dir(directory, a.submission), SUBMITIT)
        pickle_path = os.path.join(folder, f"array-{a.index}.{chunk.number}.pkl")
        python = self.opts.python or shlex.quote(sys.executable)
        command = [python, "-u", "-m", "launcher.launchers.element", "--slurm"]
        command.append(shlex.quote(pickle_path))
        offset = "itself" if chunk.offset is None else f"SLURM_ARRAY_TASK_ID + {chunk.offset}"
        note = f"shard-launcher: array {a.index} of {directory}; shard.idx = {offset}"
        params = sbatch_options(self.opts, name, array, log, self._cpus(a))
        return sbatch_script(params, list(self.opts.setup), command, note), pickle_path

    def start(self, arrays: list[arr.Array], directory: str) -> dict[str, Any]:
        from submitit.helpers import DelayedSubmission

        from launcher.launchers.element import ShardElement

        cluster = Cluster.query()
        plan = self._plan_chunks(arrays, cluster)
        for a in arrays:
            folder = os.path.join(arr.submission_dir(directory, a.submission), SUBMITIT)
            os.makedirs(folder, exist_ok=True)
        os.makedirs(os.path.join(directory, arr.LOGS), exist_ok=True)
        submitted: list[dict[str, Any]] = []
        for chunk in plan:
            log_base = os.path.join(directory, arr.LOGS, "%A_%a")
            script, pickle_path = self._script(chunk, directory, log_base)
            delayed = DelayedSubmission(ShardElement(chunk.array.spec_path, chunk.offset))
            delayed.set_timeout(self.opts.timeout_min, self.opts.max_num_timeout)
            delayed.dump(pickle_path)
            script_path = pickle_path[: -len(".pkl")] + ".sbatch"
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
                e.extra["log"] = os.path.join(arr.LOGS, f"{job_id}_{task}")
            chunk.array.extra.setdefault("slurm_jobs", []).append(job_id)
        self._submitted = submitted
        return {"max_array_size": cluster.max_array_size}

    def launched_line(self, arrays: list[arr.Array], todo: int, skipped: int) -> str:
        done = f"; {skipped} shard(s) already done, not submitted" if skipped else ""
        jobs = len(self._submitted)
        return f"Submitted {todo} shard(s) as {jobs} SLURM array job(s){done}:"

    def id_lines(self, arrays: list[arr.Array]) -> list[str]:
        lines = []
        for s in self._submitted:
            shards = "(own selection)" if s["shards"] == [None] else arr.ranges(s["shards"])
            what = " ".join(arrays[s["array"]].shown)
            lines.append(f"  job {s['job_id']}: shards {shards} {what}".rstrip())
        return lines

    def describe_backend(self, arrays: list[arr.Array], directory: str) -> list[str]:
        cluster = Cluster.query()
        lines = []
        for chunk in self._plan_chunks(arrays, cluster):
            script, _ = self._script(chunk, directory, os.path.join(directory, arr.LOGS, "%A_%a"))
            lines.append(f"  sbatch script of array {chunk.array.index}, chunk {chunk.number}:")
            lines.extend("    " + x for x in script.rstrip().splitlines())
        return lines

    def wait(self, arrays: list[arr.Array], directory: str) -> dict[tuple[int, int | None], int]:
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
