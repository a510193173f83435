"""``python -m launcher status DIR``: the command line, the watch loop and the exit code."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from launcher.io import atomic_write
from launcher.status.collect import NotARun, collect
from launcher.status.document import document
from launcher.status.failures import render_failed
from launcher.status.grid import grid
from launcher.status.jobfiles import RecordError
from launcher.status.page import html
from launcher.status.render import header, table, totals
from launcher.status.summary import Summary

PORT = 8765  # --serve's default port
GRID_FROM = 64  # shards: from this many on, a grid by default instead of a table

EXIT_CODES = """\
exit codes:
  0  every shard is done
  1  a shard failed (or its records are damaged)
  2  DIR is not a run or sweep directory, or its sweep record is damaged
  3  no shard failed, but some have not finished (pending, held, running or stale),
     or done shards lost their completion marker (a relaunch would run them again)
--html FILE exits as above once FILE is written (2 if it cannot be); --serve exits 0
when Ctrl-C stops it, 2 when DIR cannot be read or it cannot listen where asked.
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


def write_html(summary: Summary, path: str) -> int:
    """``--html FILE``: the page as one file (whole or not at all); the exit code as ``status``."""
    try:
        with atomic_write(path, "w", create_dirs=False, encoding="utf-8") as f:
            f.write(html(document(summary)))
    except OSError as e:
        print(f"status --html: cannot write {path} ({e.strerror or e}).", file=sys.stderr)
        return 2
    print(f"wrote {path}: the status of {summary.dir} at {summary.updated_at}")
    return exit_code(summary)


def wants_colour() -> bool:
    """Colour on a terminal only, and never with ``NO_COLOR`` set (https://no-color.org)."""
    term = os.environ.get("TERM", "")
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and term != "dumb"


def parse(argv: list[str]) -> argparse.Namespace:
    from launcher.command import launcher_command

    parser = argparse.ArgumentParser(
        prog=f"{launcher_command()} status",  # as the user typed it: shard-launcher status
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
    page = parser.add_argument_group("the page (a grid, throughput, failures; in a browser)")
    page.add_argument(
        "--serve", action="store_true", help="serve a live page until Ctrl-C (read-only)"
    )
    page.add_argument("--port", type=int, help=f"with --serve (default {PORT}; 0: any free one)")
    page.add_argument("--host", help="with --serve: the address to bind (default 127.0.0.1)")
    page.add_argument("--html", metavar="FILE", help="write the page, as one file, to FILE")
    args = parser.parse_args(argv)
    if args.serve and (args.html or args.json or args.watch):
        parser.error("--serve shows the page itself: leave out --html, --json and --watch")
    if args.html and (args.json or args.watch):
        parser.error("--html writes one snapshot: leave out --json and --watch")
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: a port is 0 to 65535 (0: any free one)")
    if not args.serve and (args.port is not None or args.host is not None):
        parser.error("--port and --host go with --serve")
    return args


def main(argv: list[str]) -> int:
    """Show the state of DIR (once, or until it ends with ``--watch``); see ``EXIT_CODES``."""
    args = parse(argv)
    colour = wants_colour()
    try:
        if args.serve:
            from launcher.status.serve import serve  # http.server: only for the page

            port = PORT if args.port is None else args.port
            return serve(args.dir, args.host or "127.0.0.1", port)
        if args.html:
            return write_html(collect(args.dir), args.html)
        while True:
            summary = collect(args.dir)
            if args.json:
                text = json.dumps(document(summary, args.failed), indent=2, default=str)
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
