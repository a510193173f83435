"""``task=ocr`` end to end: bundled pages read exactly, resumably, sharded, on both backbones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, Launch, failures, files, report

pytest.importorskip("torch")
pytest.importorskip("easyocr_en_models")

SAMPLES = REPO / "launcher" / "examples" / "samples" / "ocr"
TRUTH: dict[str, list[str]] = json.loads((SAMPLES / "truth.json").read_text())


def pages(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SAMPLES / name, root / name)
    return root


def texts(out: Path) -> dict[str, list[str]]:
    return {p.name: p.read_text().splitlines() for p in sorted(out.glob("*.txt"))}


def word_accuracy(read: dict[str, list[str]], names: list[str]) -> float:
    right = total = 0
    for name in names:
        truth = " ".join(TRUTH[name]).split()
        got = " ".join(read.get(Path(name).stem + ".txt", [])).split()
        total += len(truth)
        right += sum(a == b for a, b in zip(truth, got, strict=False))
    return right / total


@pytest.fixture(scope="module")
def all_pages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Launch, list[str], Path]:
    """One run over every bundled page and a corrupt one, in batches of 8; the tests below
    read what it left (its launcher, its arguments, its output folder)."""
    launch = Launch(tmp_path_factory.mktemp("ocr"))
    src = pages(launch.tmp / "in", sorted(TRUTH))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    args = [
        "task=ocr",
        f"task.input_dir={src}",
        f"task.output_dir={launch.tmp / 'out'}",
        "backbone.batch_size=8",
    ]
    r = launch(*args)
    assert r.returncode == 1, r.stdout + r.stderr
    return launch, args, launch.tmp / "out"


def test_bundled_pages_read_exactly_rerun_skips_and_a_corrupt_page_fails_alone(all_pages):
    launch, args, out = all_pages
    rep = report(launch.job_dir)
    assert rep["backbone"]["name"] == "torch"  # backbone=auto picked it for a TorchTask
    assert (rep["processed"], rep["failed"]) == (len(TRUTH), 1)
    (fail,) = failures(launch.job_dir)
    assert fail["item"] == "broken.png" and fail["error"] == "UnidentifiedImageError"
    read = texts(out)
    assert word_accuracy(read, sorted(TRUTH)) == 1.0
    assert read == {Path(n).stem + ".txt": lines for n, lines in TRUTH.items()}
    detail = json.loads((out / "page_01.json").read_text())
    assert [line["text"] for line in detail["lines"]] == TRUTH["page_01.png"]
    assert all(0 < line["confidence"] <= 1 and len(line["box"]) == 4 for line in detail["lines"])

    r = launch(*args)
    assert r.returncode == 1, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["skipped"], rep["processed"], rep["failed"]) == (len(TRUTH), 0, 1)


SUBSET = sorted(TRUTH)[:8]


def test_sharded_two_ways_equals_the_truth(launch, tmp_path):
    src = pages(tmp_path / "in", SUBSET)
    r = launch(
        "task=ocr",
        f"task.input_dir={src}",
        f"task.output_dir={tmp_path / 'out'}",
        "backbone=torch",
        "backbone.num_workers=0",
        "shard.num=2",
        multirun=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert [report(launch.job_dir / str(i))["processed"] for i in range(2)] == [4, 4]
    assert texts(tmp_path / "out") == {Path(n).stem + ".txt": TRUTH[n] for n in SUBSET}


def test_the_ocr_task_on_the_mp_backbone_reads_the_same(launch, tmp_path):
    src = pages(tmp_path / "in", SUBSET)
    r = launch(
        "task=ocr",
        f"task.input_dir={src}",
        f"task.output_dir={tmp_path / 'out'}",
        "backbone=mp",
        "backbone.num_workers=2",
        "backbone.batch_size=4",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert report(launch.job_dir)["backbone"]["name"] == "mp"
    assert texts(tmp_path / "out") == {Path(n).stem + ".txt": TRUTH[n] for n in SUBSET}


def test_a_page_reads_the_same_whatever_its_batch(launch, tmp_path, all_pages):
    """Byte for byte, text and confidences: lines are padded only with their own page's.
    Pages one at a time read as the pages read in batches of 8 (``all_pages``)."""
    src = pages(tmp_path / "in", sorted(TRUTH))
    out = tmp_path / "out"
    r = launch(
        "task=ocr",
        f"task.input_dir={src}",
        f"task.output_dir={out}",
        "backbone=torch",
        "backbone.num_workers=1",
        "backbone.batch_size=1",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    alone, batched = files(out), files(all_pages[2])
    assert len(alone) == 2 * len(TRUTH)  # .txt and .json per page
    assert alone == batched
