"""``python -m bench.markdown bench/results/<file>.json``: the README's figures table from a run.

Figures are quoted from a results file, never typed by hand, so the README
and the committed JSON cannot disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report import _fmt

COLUMNS = ["ours", "pool", "ppe", "kagurazaka", "pqdm", "mtasklite"]


def _cell(summary: dict[str, Any], name: str, unit: str) -> str:
    s = summary.get(name)
    if s is None:
        return "-"
    text = _fmt(s["median"], unit)
    if name != "ours" and s.get("ratio_ours_over_this") is not None:
        text += f" ({s['ratio_ours_over_this']:.2f}x)"
    return text


def figures(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Measured {results['started_at'][:10]} on `{m['host']}`: {m['cpus']} CPUs "
        f"({m['cpu_model']}), Python {m['versions']['python']}, commit "
        f"`{(m.get('git') or {}).get('commit', '?')[:8]}`"
        f"{' (launcher/ modified)' if (m.get('git') or {}).get('dirty') else ''}. "
        "Medians; in brackets the median over repetitions of ours/peer.",
        "",
        "| workload | unit | " + " | ".join(COLUMNS) + " | ideal | others | clean |",
        "|---|---|" + "---|" * (len(COLUMNS) + 3),
    ]
    for name, w in results["workloads"].items():
        summary, unit = w["summary"], w["unit"]
        cells = [_cell(summary, c, unit) for c in COLUMNS]
        serial = summary.get("serial")
        ideal = _fmt(2 * serial["median"], unit) if serial and unit == "items/s" else "-"
        others = [c for c in summary if c not in COLUMNS and not (c == "serial" and ideal != "-")]
        other = "; ".join(f"{c} {_cell(summary, c, unit)}" for c in others) or "-"
        clean = "yes" if w["clean"] else "**no**"
        row = [name, unit, *cells, ideal, other, clean]
        lines.append("| " + " | ".join(row) + " |")
    commits = {(w.get("git") or {}).get("commit", "")[:8] for w in results["workloads"].values()}
    if len(commits) > 1:  # workloads re-run later, on newer code
        when = ", ".join(
            f"{name} `{(w.get('git') or {}).get('commit', '?')[:8]}`"
            for name, w in results["workloads"].items()
        )
        lines += ["", f"Commits per workload: {when}."]
    lines += ["", "| target | measured | status |", "|---|---|---|"]
    for w in results["workloads"].values():
        for t in w["targets"]:
            status = "met" if t["met"] else f"**missed** ({t['shortfall']})"
            lines.append(f"| {t['target']} | {t['measured']:.3g} | {status} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(figures(json.loads(Path(sys.argv[1]).read_text())))
