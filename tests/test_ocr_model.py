"""The offline OCR model reads every bundled sample page exactly (lines and words)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("easyocr_en_models")
from PIL import Image  # noqa: E402

from launcher.examples import ocr_model  # noqa: E402

SAMPLES = Path(ocr_model.__file__).parent / "samples" / "ocr"
TRUTH: dict[str, list[str]] = json.loads((SAMPLES / "truth.json").read_text())


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return ocr_model.load_recognizer("cpu")


def test_weights_load_strictly(model: torch.nn.Module) -> None:
    assert not model.training
    assert model.Prediction.out_features == len(ocr_model.CHARACTERS) + 1 == 97
    assert len(set(ocr_model.CHARACTERS)) == 96


def test_samples_are_complete() -> None:
    files = sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".png", ".jpg"))
    assert files == sorted(TRUTH)
    assert len(files) >= 20
    assert any(f.endswith(".jpg") for f in files)


def test_reads_every_sample_exactly(model: torch.nn.Module) -> None:
    words = right = 0
    wrong = []
    for name, expected in TRUTH.items():
        image = Image.open(SAMPLES / name)
        boxes = ocr_model.find_lines(image)
        assert len(boxes) == len(expected), name
        with torch.inference_mode():
            logits = model(ocr_model.collate_lines(ocr_model.line_tensors(image, boxes)))
        for (text, conf), truth in zip(ocr_model.decode(logits), expected, strict=True):
            assert 0.0 < conf <= 1.0
            got, want = text.split(), truth.split()
            words += len(want)
            right += (
                sum(g == w for g, w in zip(got, want, strict=True)) if len(got) == len(want) else 0
            )
            if text != truth:
                wrong.append((name, truth, text))
    assert not wrong, f"word accuracy {right / words:.1%}: {wrong}"
    assert right == words


def test_padding_does_not_change_the_reading(model: torch.nn.Module) -> None:
    """A line reads the same alone and right-padded inside a batch of wider lines."""
    image = Image.open(SAMPLES / next(iter(TRUTH)))
    lines = ocr_model.line_tensors(image, ocr_model.find_lines(image))
    wide = torch.ones(1, ocr_model.IMG_HEIGHT, max(t.shape[-1] for t in lines) + 200)
    with torch.inference_mode():
        alone = [ocr_model.decode(model(ocr_model.collate_lines([t])))[0][0] for t in lines]
        batched = ocr_model.decode(model(ocr_model.collate_lines([*lines, wide])))
    assert [t for t, _ in batched[:-1]] == alone


def test_find_lines_edge_cases() -> None:
    assert ocr_model.find_lines(Image.new("L", (50, 40), 255)) == []
    assert ocr_model.find_lines(Image.new("RGBA", (50, 40), (0, 0, 0, 0))) == []
    assert ocr_model.decode(torch.zeros(0, 5, 97)) == []
    assert ocr_model.collate_lines([]).shape == (0, 1, ocr_model.IMG_HEIGHT, 0)
