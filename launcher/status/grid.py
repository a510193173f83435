"""Big sweeps at a glance: one cell per shard, coloured by state, a legend with counts.

A table of a thousand rows is unreadable on a login node; a grid of a
thousand cells fits one screen. Each state has its own glyph, so the grid
reads without colour too (``NO_COLOR``, a pipe, a log file); colour is added
only when asked for. The shards that need attention (failed, stale, held) are
listed under the grid with their notes.
"""

from __future__ import annotations

from launcher.status.summary import STATES, ShardRow, Summary

GLYPH = {"done": "#", "running": ">", "pending": ".", "held": "h", "failed": "X", "stale": "?"}
COLOUR = {  # ANSI SGR codes
    "done": "32",  # green
    "running": "36",  # cyan
    "pending": "2",  # dim
    "held": "33",  # yellow
    "failed": "1;31",  # bold red
    "stale": "35",  # magenta
}
BLOCK = 10  # cells between spaces
LISTED = 10  # shards needing attention listed by name, then a count
ATTENTION = ("failed", "stale", "held")


def cell(state: str, colour: bool) -> str:
    glyph = GLYPH[state]
    return f"\033[{COLOUR[state]}m{glyph}\033[0m" if colour else glyph


def per_line(width: int, label: int) -> int:
    """Cells per line: whole blocks of ten that fit ``width`` after the row label."""
    blocks = max(1, (width - label - 1) // (BLOCK + 1))
    return blocks * BLOCK


def grid(summary: Summary, width: int = 80, colour: bool = False) -> list[str]:
    """The grid of every array (one block per array), its legend, and shards to look at."""
    out = []
    multi = len(summary.arrays) > 1
    by_array: dict[int, list[ShardRow]] = {}
    for r in summary.shards:
        by_array.setdefault(r.array, []).append(r)
    for index, rows in by_array.items():
        if multi:
            info = next((a for a in summary.arrays if a.index == index), None)
            what = " ".join(info.overrides) if info and info.overrides else "(no overrides)"
            out.append(f"array {index}: {what}")
        out.extend(_cells(rows, width, colour))
    counts = summary.totals.shards
    legend = [f"{cell(s, colour)} {s} {counts[s]}" for s in STATES if counts[s]]
    out.append("legend: " + "  ".join(legend))
    out.extend(_attention(summary.shards))
    return out


def _cells(rows: list[ShardRow], width: int, colour: bool) -> list[str]:
    label = max(len(_first(r, i)) for i, r in enumerate(rows))
    n = per_line(width, label)
    lines = []
    for start in range(0, len(rows), n):
        chunk = rows[start : start + n]
        blocks = [
            "".join(cell(r.state, colour) for r in chunk[i : i + BLOCK])
            for i in range(0, len(chunk), BLOCK)
        ]
        lines.append(f"{_first(chunk[0], start):>{label}} " + " ".join(blocks))
    return lines


def _first(row: ShardRow, position: int) -> str:
    return str(position if row.shard is None else row.shard)


def _attention(rows: list[ShardRow]) -> list[str]:
    out = []
    for state in ATTENTION:
        hit = [r for r in rows if r.state == state]
        for r in hit[:LISTED]:
            name = r.tag if r.shard is None else f"shard {r.shard}"
            out.append(f"  {state} {name}: {r.note or state}")
        if len(hit) > LISTED:
            out.append(f"  ... and {len(hit) - LISTED} more {state} (--table lists every shard)")
    return out
