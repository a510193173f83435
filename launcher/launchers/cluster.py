"""The SLURM cluster's own commands: what it can give (``scontrol``), a request checked
against that, which jobs still live (``squeue``), and an sbatch script submitted.

SLURM accepts, then keeps pending forever, jobs that ask for more CPUs, GPUs,
nodes or time than the partition can ever give: requests are checked here first.
Nothing here knows launchers or sweeps, so the shard launcher, the general
launcher and the sweep state all use it.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from launcher.errors import ConfigError, UserError
from launcher.launchers.config import SlurmConfig
from launcher.layout import ERR, OUT

log = logging.getLogger("launcher")

DEFAULT_PARALLELISM = 256


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
        # unset, it came from our app's backbone.num_workers: name what the user set
        lower = "" if opts.cpus_per_task else ", or lower backbone.num_workers (its default)"
        raise ConfigError(
            f"hydra.launcher.cpus_per_task={cpus}: no node in {where} has more than "
            f"{max_cpus} CPUs; {forever} (reason PartitionConfig). Ask for at most "
            f"{max_cpus}{lower}."
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
        "output": log + OUT,
        "error": log + ERR,
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
