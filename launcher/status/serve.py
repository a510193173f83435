"""``status DIR --serve``: the status page and its JSON document over HTTP, read-only.

The standard library's threading HTTP server is enough: one page, one JSON
document, a handful of readers. Records are read by one background thread,
not per request, so any number of open pages cost the sweep's file system (and
SLURM) one read per cycle; a cycle waits at least a few times as long as the
last read took, so a 100,000-shard sweep never keeps a CPU busy.
"""

from __future__ import annotations

import errno
import json
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import AF_INET6

from launcher.status.collect import NotARun, collect
from launcher.status.document import document
from launcher.status.jobfiles import RecordError
from launcher.status.page import SOURCE, html

POLL_S = 2.0  # how often the page asks, and the shortest time between two reads
READ_SHARE = 4  # a read repeats no sooner than this many times its own duration
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Snapshots:
    """The latest ``status --json --failed`` document of a directory, as bytes, kept fresh."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.latest = (0, b"")  # (version, body): the version is bumped when the body changes
        self.error: str | None = None
        self.took_s = 0.0
        self._stop = threading.Event()

    def read(self) -> None:
        """Read the records once; a read that fails keeps the last document and says why."""
        t0 = time.monotonic()
        try:
            doc = document(collect(self.directory, write=False))
            body = json.dumps(doc, default=str).encode()
            version, last = self.latest
            if body != last:
                self.latest = (version + 1, body)  # one assignment: readers never see a mix
            self.error = None
        except (NotARun, RecordError, OSError) as e:
            self.error = str(e)
        self.took_s = time.monotonic() - t0

    def follow(self, poll_s: float) -> None:
        while not self._stop.wait(max(poll_s, READ_SHARE * self.took_s)):
            try:
                self.read()
            except Exception as e:  # a bug must show on the page, not freeze it at old news
                self.error = f"reading the records failed: {e!r}"

    def stop(self) -> None:
        self._stop.set()


def handler(snapshots: Snapshots, poll_s: float) -> type[BaseHTTPRequestHandler]:
    page = html(None, poll_s).encode()

    class Handler(BaseHTTPRequestHandler):
        """GET only: the page and its document; anything else is refused (501)."""

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", page)
            elif path == "/" + SOURCE and snapshots.error is None:
                version, body = snapshots.latest
                tag = f'"{version}"'
                if self.headers.get("If-None-Match") == tag:
                    self._send(HTTPStatus.NOT_MODIFIED, "application/json", b"", tag)
                else:
                    self._send(HTTPStatus.OK, "application/json", body, tag)
            elif path == "/" + SOURCE:
                body = json.dumps({"error": snapshots.error}).encode()
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "application/json", body)
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

        def _send(self, code: HTTPStatus, kind: str, body: bytes, tag: str | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if tag:
                self.send_header("ETag", tag)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Quiet: a page polling every two seconds would fill the terminal."""

    return Handler


def serve(directory: str, host: str, port: int, poll_s: float = POLL_S) -> int:
    """Serve the page until Ctrl-C; 0 then, 2 when DIR cannot be read or the port is taken."""
    snapshots = Snapshots(directory)
    snapshots.read()
    if snapshots.error is not None:
        print(f"status: {snapshots.error}", file=sys.stderr)
        return 2
    server_class = ThreadingHTTPServer
    if ":" in host:  # an IPv6 address
        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": AF_INET6})
    try:
        server = server_class((host, port), handler(snapshots, poll_s))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            hint = "another program holds that port: pick another with --port N, or --port 0"
        else:
            hint = "--host must be an address of this machine (the default is 127.0.0.1)"
        print(f"status --serve: cannot listen on {host}:{port} ({e.strerror or e}); {hint}.",
              file=sys.stderr)  # fmt: skip
        return 2
    server.daemon_threads = True
    reader = threading.Thread(target=snapshots.follow, args=(poll_s,), daemon=True)
    reader.start()
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.server_address[1]}/"
    print(f"status of {directory}: {url} (read-only; Ctrl-C stops)", flush=True)
    if host not in LOOPBACK:
        print(f"anyone who can reach {host} can read this page", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        snapshots.stop()
        server.server_close()
    return 0
