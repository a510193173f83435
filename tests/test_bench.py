"""bench/ smoke: the harness runs a workload against its peers and prints the ratios.

Speed itself is never asserted here; the figures live in bench/results/.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_quick_bench_runs_and_prints_ratios(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "W1", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr
    assert "target W1 >= 1.0x tuned Pool" in r.stdout
    assert "ours" in r.stdout and "pool" in r.stdout
    (result,) = tmp_path.glob("*.json")
    data = json.loads(result.read_text())
    assert "W1" in json.dumps(data)
