"""Page images in, text out: offline English OCR on a TorchTask.

Line finding and cropping run in DataLoader workers (``load_data``); the
recognizer sees only tensors. Each page's lines are sorted by width and
recognized in groups, so little compute goes to padding; lines are never
grouped with other pages' lines, whose widths would change the padding (and
so the text and confidences): a page reads the same whatever the batch size,
shard or resume point.
Writes ``<name>.json`` (lines with boxes and confidences) and then
``<name>.txt``; the ``.txt`` is what the finish check looks for.
"""

from __future__ import annotations

import json
import os
from typing import Any

import launcher.io
from launcher import InputMode, OutputMode, TorchTask, atomic_write


class OcrTask(TorchTask):
    def __init__(
        self,
        input_dir: str,
        output_dir: str,
        input: InputMode,
        output: OutputMode,
        line_batch: int = 32,
    ) -> None:
        super().__init__(input_dir, output_dir, input, output)
        self.line_batch = line_batch

    def load_model(self, device: Any) -> None:
        from launcher.examples.ocr_model import load_recognizer

        self.model = load_recognizer(device)

    def load_data(self, key: str, input: str, output: str) -> dict[str, Any]:
        from PIL import Image

        from launcher.examples.ocr_model import find_lines, line_tensors

        with launcher.io.open(input) as f, Image.open(f) as im:
            im.load()
            boxes = find_lines(im)
            return {"lines": line_tensors(im, boxes), "boxes": boxes}

    def inference(self, device: Any, batch_size: int, lines: list, **_: Any) -> dict[str, list]:
        return {"read": [self.read_lines(page, device) for page in lines]}

    def read_lines(self, lines: list, device: Any) -> list[tuple[str, float]]:
        """One page's lines, ``(text, confidence)`` in page order."""
        from launcher.examples.ocr_model import collate_lines, decode

        order = sorted(range(len(lines)), key=lambda i: lines[i].shape[-1])
        read: list[tuple[str, float]] = [("", 0.0)] * len(lines)
        for start in range(0, len(order), self.line_batch):
            group = order[start : start + self.line_batch]
            batch = collate_lines([lines[i] for i in group]).to(device, non_blocking=True)
            for i, result in zip(group, decode(self.model(batch)), strict=True):
                read[i] = result
        return read

    def postprocess_each(
        self, batch_idx: int, batch_size: int, output: str, boxes: list, read: list, **_: Any
    ) -> None:
        record = {
            "lines": [
                {"text": text, "confidence": round(conf, 4), "box": list(box)}
                for (text, conf), box in zip(read, boxes, strict=True)
            ]
        }
        with atomic_write(os.path.splitext(output)[0] + ".json", "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        with atomic_write(output, "w", encoding="utf-8") as f:
            f.write("".join(text + "\n" for text, _ in read))
