"""T2/T3: the main jobs at default settings against what a user would write instead.

Both contenders are whole processes, timed from exec to exit under
``bench.reaper`` (imports, model load, work and writes included): ``launch.py
task=embed`` / ``task=ocr`` with no tuning flag, and the scripts in
:mod:`bench.user_scripts`. Each repetition writes into a fresh folder. The
``-1cpu`` rows run both under ``taskset -c 0``; the ``-cuda`` rows run the same
commands where torch sees a GPU (both pick it by themselves) with the GPU's
utilization sampled, and are skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable

from bench.cuda_loop import gpu_busy
from bench.harness import Sample
from bench.startup import REPO, time_process

Argv = Callable[[str], list[str]]
TIMEOUT_S = 1800  # a whole job on a busy 2-CPU machine can take minutes


def embed_ours(docs: str) -> Argv:
    return lambda tmp: [
        sys.executable, str(REPO / "launch.py"), "task=embed", f"task.jsonl={docs}",
        f"task.output_dir={tmp}/out", "run.progress=off", f"hydra.run.dir={tmp}/job",
    ]  # fmt: skip


def embed_script(docs: str) -> Argv:
    return lambda tmp: [sys.executable, "-m", "bench.user_scripts", "embed", docs, f"{tmp}/out"]


def ocr_ours(pages: str) -> Argv:
    return lambda tmp: [
        sys.executable, str(REPO / "launch.py"), "task=ocr", f"task.input_dir={pages}",
        f"task.output_dir={tmp}/out", "run.progress=off", f"hydra.run.dir={tmp}/job",
    ]  # fmt: skip


def ocr_loop(pages: str) -> Argv:
    return lambda tmp: [sys.executable, "-m", "bench.user_scripts", "ocr", pages, f"{tmp}/out"]


def on_cpu0(argv: Argv) -> Argv:
    """The same command on one CPU."""
    return lambda tmp: ["taskset", "-c", "0", *argv(tmp)]


def command(
    argv: Argv, outputs: int, suffix: str, sample_gpu: bool = False
) -> Callable[[], Callable]:
    """A contender's ``prepare``: one fresh folder per repetition; the run must write
    ``outputs`` files ending in ``suffix`` (a document's ``.npy``, a page's ``.txt``)."""

    def prepare() -> Callable[[], Sample]:
        def runner() -> Sample:
            with tempfile.TemporaryDirectory(prefix="bench-t2-") as tmp:
                if sample_gpu:
                    with gpu_busy() as busy:
                        sample = time_process(argv(tmp), TIMEOUT_S)
                else:
                    busy = []
                    sample = time_process(argv(tmp), TIMEOUT_S)
                wrote = [f for f in _files(f"{tmp}/out") if f.endswith(suffix)]
            if len(wrote) != outputs:
                raise RuntimeError(f"{argv(tmp)[:4]} wrote {len(wrote)} results of {outputs}")
            if busy:
                sample.extra["gpu_busy"] = round(sum(busy) / len(busy), 3)
            return sample

        return runner

    return prepare


def _files(root: str) -> list[str]:
    return [name for _, _, names in os.walk(root) for name in names]
