"""``status`` for people: a table of shards (small sweeps, ``--table``), then the totals."""

from __future__ import annotations

from launcher.progress import format_duration
from launcher.status.summary import STATES, ShardRow, Summary


def _dur(seconds: float | None) -> str:
    return format_duration(seconds, "-")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def header(summary: Summary) -> list[str]:
    out = [f"{summary.dir} ({summary.backend})"]
    if len(summary.arrays) > 1:
        for a in summary.arrays:
            out.append(f"  array {a.index}: {' '.join(a.overrides) or '(no overrides)'}")
    return out


def table(summary: Summary) -> list[str]:
    """One line per shard: state, SLURM's view, items, rate, ETA and a note."""
    rows = summary.shards
    multi = len(summary.arrays) > 1
    slurm = any(r.slurm_id for r in rows)
    head = ["array"] * multi + ["shard", "state"] + ["slurm", "job"] * slurm
    head += ["done/total", "failed", "items/s", "ETA", "note"]
    lines = [head]
    for r in rows:
        line = [str(r.array)] * multi + [_shard(r), r.state]
        line += [r.slurm_state or "-", r.slurm_id or "-"] * slurm
        line += [f"{r.done}/{_total(r)}", str(r.failed_items), _rate(r.items_per_s)]
        line += [_dur(r.eta_s), r.note]
        lines.append(line)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head) - 1)]
    out = []
    for row in lines:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)] + [row[-1]]
        out.append("  ".join(cells).rstrip())
    return out


def _shard(r: ShardRow) -> str:
    return r.tag if r.shard is None else str(r.shard)


def _total(r: ShardRow) -> str:
    return "?" if r.total is None else f"{r.total}{'' if r.planned else '+'}"


def totals(summary: Summary) -> list[str]:
    """Shards by state and items; for an ended sweep, what its records prove and when."""
    t = summary.totals
    n, it = t.shards, t.items
    states = ", ".join(f"{n[s]} {s}" for s in STATES if n[s])
    est = "" if it["estimated_total"] == it["total"] else f" (~{it['estimated_total']} estimated)"
    items = f"items: {it['done']}/{it['total']}{est} done, {it['failed']} failed"
    if not t.finished and t.items_per_s:
        items += f"; {t.items_per_s:.1f} items/s; ETA {_dur(t.eta_s)}"
    elif not t.finished:
        items += "; rate and ETA once items are processed"
    out = [f"shards: {n['total']} ({states})", items]
    if t.finished and t.last_ended_at:
        out.append(f"ended at {t.last_ended_at} (the shards' records; outputs not re-checked)")
    if t.unmarked:
        out.append(
            f"{t.unmarked} done shard(s) no longer have their completion marker "
            "(outputs deleted?): a relaunch runs them again"
        )
    return out


def progress_line(directory: str) -> str | None:
    """The totals of a sweep in one line, for a launcher that waits on it; None while its
    records cannot be read."""
    from launcher.status.collect import collect

    try:
        summary = collect(directory, write=False)
    except (OSError, ValueError):  # NotARun and RecordError among them
        return None
    return "; ".join(totals(summary)[:2])
