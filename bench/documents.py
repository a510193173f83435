"""T2/T3's inputs, built once and cached: mixed-length JSONL documents, a folder of pages."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile

VOCABULARY = (
    "the a model data token batch river city night market light paper cloud engine quiet "
    "green fast slow ancient modern train sound window garden winter summer music number "
    "reads writes finds builds carries follows opens closes keeps under over between"
)


def mixed_docs(n: int, seed: int = 0, shortest: int = 6, longest: int = 160) -> str:
    """A JSONL file of ``n`` documents of ``shortest``-``longest`` words, in no length order."""
    path = os.path.join(tempfile.gettempdir(), f"bench-docs-{n}-{shortest}-{longest}-{seed}.jsonl")
    if not os.path.exists(path):
        rng = random.Random(seed)
        words = VOCABULARY.split()
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            for i in range(n):
                text = " ".join(rng.choice(words) for _ in range(rng.randint(shortest, longest)))
                f.write(json.dumps({"id": f"{i:06d}", "text": text}) + "\n")
        os.replace(tmp, path)
    return path


def pages(copies: int) -> str:
    """A folder with the bundled OCR pages ``copies`` times over (``<copy>-<name>``)."""
    from launcher.resolvers import sample_dir

    path = os.path.join(tempfile.gettempdir(), f"bench-pages-x{copies}")
    if not os.path.isdir(path):
        src = sample_dir("ocr")
        tmp = f"{path}.{os.getpid()}"
        os.makedirs(tmp)
        for c in range(copies):
            for name in sorted(os.listdir(src)):
                if name.endswith((".png", ".jpg")):
                    shutil.copyfile(os.path.join(src, name), os.path.join(tmp, f"{c}-{name}"))
        os.replace(tmp, path)
    return path
