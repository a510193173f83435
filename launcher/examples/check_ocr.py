"""How well ``task=ocr`` read the bundled pages: its ``.txt`` outputs against ``truth.json``.

``python -m launcher.examples.check_ocr [OUTPUT_DIR]`` (default ``outputs/ocr``, the
task's default output folder) prints the lines read exactly, the word accuracy, and
each line that differs, expected beside read. Exit code 0 when every page was read,
1 when some page has no output yet, 2 when OUTPUT_DIR holds no output of these pages.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from launcher.resolvers import sample_dir

TRUTH_FILE = "truth.json"


# this tool runs as `python -m launcher.examples.check_ocr`: the job, the same way (any install)
OCR_COMMAND = "python -m launcher task=ocr"


def truth() -> dict[str, list[str]]:
    """The expected lines of each bundled page, by image file name."""
    return json.loads((Path(sample_dir("ocr")) / TRUTH_FILE).read_text(encoding="utf-8"))


def compare(output_dir: Path, expected: dict[str, list[str]]) -> tuple[list[str], int]:
    """The report's lines, and how many pages have no output."""
    lines_right = lines_total = words_right = words_total = missing = 0
    differ: list[str] = []
    for name, want in sorted(expected.items()):
        path = output_dir / (Path(name).stem + ".txt")
        got = path.read_text(encoding="utf-8").splitlines() if path.is_file() else None
        lines_total += len(want)
        words = " ".join(want).split()
        words_total += len(words)
        if got is None:
            missing += 1
            continue
        read_words = " ".join(got).split()
        words_right += sum(a == b for a, b in zip(words, read_words, strict=False))
        for i, line in enumerate(want):
            read = got[i] if i < len(got) else ""
            if read == line:
                lines_right += 1
            else:
                differ.append(f"  {name} line {i + 1}: expected {line!r}, read {read!r}")
    report = [
        f"{output_dir}: {lines_right}/{lines_total} lines read exactly "
        f"({100 * lines_right / lines_total:.1f}%), word accuracy "
        f"{100 * words_right / words_total:.1f}%, {len(expected) - missing}/{len(expected)} pages",
        *differ,
    ]
    if missing:
        report.append(f"  {missing} page(s) have no .txt yet: run `{OCR_COMMAND}`")
    return report, missing


def main(argv: list[str]) -> int:
    output_dir = Path(argv[0] if argv else "outputs/ocr")
    expected = truth()
    report, missing = compare(output_dir, expected)
    if missing == len(expected):
        print(
            f"{output_dir}: no OCR output of the bundled pages here; run "
            f"`{OCR_COMMAND}` first (or name the task.output_dir you used).",
            file=sys.stderr,
        )
        return 2
    print("\n".join(report))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
