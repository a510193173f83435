"""bench/ smoke: the harness runs a workload against its peers and prints the ratios.

Speed itself is never asserted here; the figures live in bench/results/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, need_slurm


def bench(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m bench --quick ARGS``, results under ``out``."""
    return subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *args, "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **env},
    )


def test_quick_bench_runs_and_prints_ratios(tmp_path):
    r = bench(tmp_path, "--only", "W1")
    assert r.returncode == 0, r.stderr
    assert "target W1 >= 1.0x tuned Pool" in r.stdout
    assert "ours" in r.stdout and "pool" in r.stdout
    (result,) = tmp_path.glob("*.json")
    data = json.loads(result.read_text())
    assert "W1" in json.dumps(data)


def test_l1_without_a_slurm_cluster_is_skipped_with_the_reason(tmp_path):
    (tmp_path / "slurm.conf").touch()  # scontrol refuses an empty config at once
    r = bench(tmp_path, "--only", "L1", SLURM_CONF=str(tmp_path / "slurm.conf"))
    assert r.returncode == 0, r.stderr
    assert "skipped: no SLURM cluster (scontrol ping exited 1" in r.stdout
    assert "scripts/slurm/cluster.sh start" in r.stdout
    assert not list(tmp_path.glob("*.json"))  # nothing measured, nothing written


@pytest.mark.slurm
def test_l1_submits_to_slurm_and_leaves_none_of_its_jobs_queued(tmp_path):
    need_slurm()
    r = bench(tmp_path, "--only", "L1", "--reps", "1")
    assert r.returncode == 0, r.stderr
    assert "target L1 <= 5 s" in r.stdout
    (result,) = tmp_path.glob("*.json")
    runs = json.loads(result.read_text())["workloads"]["L1"]["runs"]
    assert runs and all(run["shards"] == 20 for run in runs)
    queue = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
    assert "bench-l1-" not in queue
