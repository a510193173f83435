"""SLURM's own view of array elements: ``squeue`` (live) over ``sacct`` (accounting, lags)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

ACTIVE = {
    "PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
    "COMPLETING", "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT",
    "RESV_DEL_HOLD", "SPECIAL_EXIT",
}  # fmt: skip


@dataclass(frozen=True)
class SlurmView:
    """One element as SLURM shows it; ``source`` is ``squeue`` or ``sacct``."""

    state: str
    source: str
    reason: str = ""
    exit: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def expand(job_id: str) -> list[str]:
    """``12_[3,5-7%2]`` -> ``12_3 12_5 12_6 12_7`` (how squeue/sacct show pending elements)."""
    if "_[" not in job_id:
        return [job_id]
    main, spec = job_id.split("_[", 1)
    out = []
    for part in spec.rstrip("]").split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (hi.isdigit() or not hi):
            out += [f"{main}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def query(array_job_ids: list[str]) -> tuple[dict[str, SlurmView], bool]:
    """SLURM's view of each element (``"A_a"``), squeue over sacct; and whether squeue answered."""
    if not array_job_ids:
        return {}, False
    ids = ",".join(sorted(set(array_job_ids)))
    views: dict[str, SlurmView] = {}
    acct = _run(["sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobID,State,ExitCode"])
    for line in (acct or "").splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and parts[1].strip():
            view = SlurmView(parts[1].split()[0], "sacct", exit=parts[2])
            views.update(dict.fromkeys(expand(parts[0]), view))
    queue = _run(["squeue", "-h", "-r", "-j", ids, "-o", "%i|%T|%r"])
    for line in (queue or "").splitlines():
        parts = line.split("|")
        if len(parts) >= 3:
            reason = "" if parts[2] in ("None", "(null)") else parts[2]
            views.update(dict.fromkeys(expand(parts[0]), SlurmView(parts[1], "squeue", reason)))
    return views, queue is not None
