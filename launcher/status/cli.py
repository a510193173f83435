"""``python -m launcher status DIR``: the command line, the watch loop and the exit code."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from launcher.status.collect import NotARun, collect
from launcher.status.failures import failures_digest, render_failed
from launcher.status.grid import grid
from launcher.status.jobfiles import RecordError
from launcher.status.render import header, table, totals
from launcher.status.summary import Summary

GRID_FROM = 64  # shards: from this many on, a grid by default instead of a table

EXIT_CODES = """\
exit codes:
  0  every shard is done
  1  a shard failed (or its records are damaged)
  2  DIR is not a run or sweep directory, or its sweep record is damaged
  3  no shard failed, but some have not finished (pending, held, running or stale),
     or done shards lost their completion marker (a relaunch would run them again)
"""


def exit_code(summary: Summary) -> int:
    """0 all done, 1 a shard failed, 3 some shard not (or no longer) done; see ``EXIT_CODES``."""
    n = summary.totals.shards
    if n["failed"]:
        return 1
    return 0 if n["done"] == n["total"] and not summary.totals.unmarked else 3


def render(
    summary: Summary, failed: bool = False, layout: str = "auto", colour: bool = False
) -> str:
    """What a person reads: a table (small sweeps) or a grid (big ones), then the totals."""
    if layout == "auto":
        layout = "grid" if len(summary.shards) >= GRID_FROM else "table"
    out = header(summary)
    if layout == "grid":
        out += grid(summary, shutil.get_terminal_size().columns, colour)
    else:
        out += table(summary)
    out += totals(summary)
    if failed:
        out.append(render_failed(summary))
    return "\n".join(out)


def wants_colour() -> bool:
    """Colour on a terminal only, and never with ``NO_COLOR`` set (https://no-color.org)."""
    term = os.environ.get("TERM", "")
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and term != "dumb"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m launcher status",
        description="Per-shard state, progress and ETA of a run or sweep directory.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", help="a job directory or a sweep (multirun) directory")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=5.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 5) until every shard has ended",
    )
    parser.add_argument(
        "--failed", action="store_true", help="failed items by error type, first example, files"
    )
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        "--table",
        dest="layout",
        action="store_const",
        const="table",
        help=f"one line per shard (the default below {GRID_FROM} shards)",
    )
    layout.add_argument(
        "--grid",
        dest="layout",
        action="store_const",
        const="grid",
        help=f"one cell per shard, coloured by state (the default from {GRID_FROM} shards)",
    )
    parser.set_defaults(layout="auto")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Show the state of DIR (once, or until it ends with ``--watch``); see ``EXIT_CODES``."""
    args = parse(argv)
    colour = wants_colour()
    try:
        while True:
            summary = collect(args.dir)
            if args.json:
                if args.failed:
                    summary.extra["failures"] = failures_digest(summary)
                text = json.dumps(summary.as_dict(), indent=2, default=str)
            else:
                text = render(summary, args.failed, args.layout, colour)
            if args.watch and sys.stdout.isatty():
                text = "\033[H\033[J" + text
            print(text, flush=True)
            if summary.extra.get("damaged"):
                print(f"status: {summary.extra['damaged']}", file=sys.stderr, flush=True)
            if not args.watch or summary.totals.finished:
                break
            time.sleep(args.watch)
    except (NotARun, RecordError) as e:
        print(f"status: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `status DIR | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        print(f"status: {args.dir}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2 if summary.extra.get("damaged") else exit_code(summary)
