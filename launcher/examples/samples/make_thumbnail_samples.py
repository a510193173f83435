"""Regenerate the bundled thumbnail sample images (deterministic)."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).parent / "thumbnail"
FORMATS = [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")]


def make(seed: int) -> Image.Image:
    rng = random.Random(seed)
    w, h = rng.choice([(320, 240), (240, 320), (300, 300), (400, 200)])
    im = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = [x0, y0, x0 + rng.randrange(20, w), y0 + rng.randrange(20, h)]
        color = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
    return im


def main() -> None:
    for i in range(36):
        ext, fmt = FORMATS[i % 3]
        folder = OUT / ("landscape" if i % 2 else "portrait") / f"set{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        im = make(i)
        path = folder / f"img{i:03d}.{ext}"
        if fmt == "JPEG":
            exif = Image.Exif()
            exif[0x0112] = 6 if i % 5 == 0 else 1  # some photos need rotating
            im.save(path, fmt, quality=70, exif=exif)
        else:
            im.save(path, fmt)


if __name__ == "__main__":
    main()
