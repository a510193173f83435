"""Is there a SLURM cluster to submit to? One probe for ``auto``, ``slurm``, tests and bench.

``sbatch`` on PATH is not enough: workstations and CI images often carry
SLURM's client with no controller to talk to. ``scontrol ping`` asks the
controller and fails at once where ``sinfo`` retries a down one for ~9 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from launcher.errors import ConfigError

PING_TIMEOUT_S = 10.0


def no_controller(timeout_s: float = PING_TIMEOUT_S) -> str | None:
    """Why no SLURM controller takes jobs from here, or None when one answers."""
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH"
    try:
        r = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"scontrol ping failed: {e}"
    if r.returncode or "UP" not in r.stdout:
        said = r.stdout.strip().splitlines()[:1] or r.stderr.strip().splitlines()[-1:]
        return f"scontrol ping exited {r.returncode}: {''.join(said)}"
    return None


def require_controller() -> None:
    """Refuse ``hydra/launcher=slurm`` in one paragraph when no controller answers."""
    if no_controller() is None:
        return
    if shutil.which("sbatch") is None:
        what = "SLURM's client (sbatch) is not on PATH"
    else:
        conf = os.environ.get("SLURM_CONF")
        where = f"SLURM_CONF={conf}" if conf else "SLURM_CONF is not set"
        what = f"no SLURM controller answered `scontrol ping` ({where})"
    raise SlurmUnreachable(
        f"hydra/launcher=slurm: {what}, so nothing was submitted; use hydra/launcher=local "
        "to run on this machine, or set SLURM_CONF to the slurm.conf of a cluster you can reach."
    )


class SlurmUnreachable(ConfigError):
    """No SLURM controller answered: a setting of this machine, not of the sweep."""
