"""Regenerate the OCR sample pages and ``truth.json`` (deterministic: same Pillow, same bytes).

Run: ``python launcher/examples/samples/ocr/make_samples.py``. Pages are black DejaVu Sans text
on white, about 600 px wide, so the bundled English recognizer reads them exactly. The text
avoids glyph pairs that no reader can tell apart in isolation (l/I/1, O/0, lone x/X) and the
spots where EasyOCR's english_g2 model is measurably unstable on this font: a period or "!"
right after a word (read as ":" / "l"), a colon between digits (read as "."), a comma ending a
short line. Every line was checked to read exactly at font sizes 24, 26 and 28, as PNG and as
JPEG.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
WIDTH = 600
MARGIN = 24

# (file name, font size, lines). A few JPEGs check that compression noise does not matter.
PAGES: list[tuple[str, int, list[str]]] = [
    (
        "page_01.png",
        26,
        [
            "The quick brown fox jumps",
            "over the lazy dog near 42 trees",
            "Check (a) and (b) first",
        ],
    ),
    ("page_02.png", 26, ["Invoice number 58731", "Total due: $249.95", "Payment within 30 days"]),
    (
        "page_03.png",
        24,
        [
            "Meeting moved to Thursday afternoon",
            "room 217, second floor",
            "Bring snacks, drinks and games",
        ],
    ),
    ("page_04.png", 28, ["Chapter 7", "A Walk in the Garden", "The museum opens on Tuesday"]),
    (
        "page_05.png",
        26,
        [
            "two eggs and 300 ml milk;",
            "bake for 25 minutes at 180 degrees",
            "Add salt & pepper to taste",
            "Water boils at 100 degrees",
        ],
    ),
    (
        "page_06.jpg",
        26,
        [
            "thank you for the lovely gift",
            "Warm regards, Peter",
            "Call me at 555-8620 tonight",
        ],
    ),
    (
        "page_07.png",
        24,
        [
            "Order #4829 shipped on 2024-03-15",
            "via express courier",
            "Tracking code ZX-93847-QT",
        ],
    ),
    (
        "page_08.png",
        26,
        [
            "Temperature rose by 3.5%",
            "during the past week",
            "Discount of 25% on all shoes",
        ],
    ),
    (
        "page_09.png",
        26,
        ["Is this the right answer?", "Maybe; let us check again", "Yes, it is correct"],
    ),
    (
        "page_10.jpg",
        24,
        [
            "Contact: help@example.com",
            "Phone: +44 20 7946 8823",
            "Open Monday to Friday",
            "from 9 am to 5 pm",
        ],
    ),
    (
        "page_11.png",
        26,
        [
            "Science is a way of thinking",
            "much more than it is",
            "a body of knowledge",
        ],
    ),
    (
        "page_12.png",
        28,
        [
            "Battery level: 87%",
            "Charging time: 45 minutes",
            "Her score was 98 out of 100",
        ],
    ),
    (
        "page_13.png",
        24,
        [
            "The committee approved the budget",
            "of $2,750,000 for the new bridge,",
            "which will open in spring 2027",
        ],
    ),
    (
        "page_14.jpg",
        26,
        [
            "Keep calm and carry on",
            "Reading makes a full man",
            "What time does the shop close?",
            "Everything is fine here",
        ],
    ),
    (
        "page_15.png",
        26,
        [
            "Version 3.12 adds faster startup",
            "and better error messages",
            "Press Enter to continue",
        ],
    ),
    (
        "page_16.png",
        24,
        [
            "Step 2: unpack the box",
            "Step 3: connect the cable",
            "Step 4: press the power button",
            "Step 5: wait for the green light",
            "Step 6: enjoy the music",
        ],
    ),
    (
        "page_17.png",
        26,
        [
            "Mountains, rivers and forests",
            "cover most of the region",
            "Winter is coming soon",
        ],
    ),
    ("page_18.jpg", 28, ["Flight BA 286 departs", "at 6 pm from gate 34", "Tickets cost $15 each"]),
    (
        "page_19.png",
        26,
        [
            'She said: "Do not be late"',
            "He replied: 'I will try'",
            "Then they both laughed",
        ],
    ),
    (
        "page_20.png",
        24,
        [
            "Inventory: 36 chairs, 12 tables",
            "and 84 glasses (some broken)",
            "Next audit in June",
        ],
    ),
]


def render(size: int, lines: list[str]) -> Image.Image:
    """One page: lines at 1.6x font size pitch, left aligned, fixed margins."""
    font = ImageFont.truetype(FONT, size)
    pitch = round(size * 1.6)
    for line in lines:
        assert font.getlength(line) <= WIDTH - 2 * MARGIN, line
    image = Image.new("L", (WIDTH, 2 * MARGIN + pitch * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + i * pitch), line, font=font, fill=0)
    return image


def main() -> None:
    truth = {}
    for name, size, lines in PAGES:
        image = render(size, lines)
        if name.endswith(".jpg"):
            image.save(HERE / name, quality=90)
        else:
            image.save(HERE / name, optimize=True)
        truth[name] = lines
    (HERE / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")


if __name__ == "__main__":
    main()
