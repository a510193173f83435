"""Thumbnails of a folder tree of photos: EXIF-aware, JPEG/PNG/WebP in, any Pillow format out."""

from __future__ import annotations

from PIL import Image, ImageOps

import launcher.io
from launcher import InputMode, OutputMode, Task, atomic_write

FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}


class ThumbnailTask(Task):
    def __init__(
        self,
        input_dir: str,
        output_dir: str,
        input: InputMode,
        output: OutputMode,
        size: int = 128,
        format: str = "jpeg",
        quality: int = 85,
    ) -> None:
        super().__init__(input_dir, output_dir, input, output)
        if format.lower() not in FORMATS:
            raise ValueError(f"task.format={format!r}: expected one of {sorted(FORMATS)}")
        self.size = size
        self.format = FORMATS[format.lower()]
        self.quality = quality

    def process(self, key: str, input: str, output: str) -> None:
        with launcher.io.open(input) as f, Image.open(f) as im:
            im = ImageOps.exif_transpose(im)
            im.thumbnail((self.size, self.size))
            if self.format == "JPEG" and im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            with atomic_write(output) as f:
                im.save(f, format=self.format, quality=self.quality)
