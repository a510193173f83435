"""A real S3 server for the tests: moto's S3 HTTP API on 127.0.0.1, started by the project.

The same server ``moto.server.ThreadedMotoServer`` runs (moto's WSGI app under
werkzeug), with one thin layer in front of it that keeps a log of the requests
it answered, so a test can count listings and HEADs, and that can answer some
requests with an error first (S3's ``SlowDown``), as a throttled store does, or
drop their connection unanswered, as a flaky network does.
Child processes find it through the standard ``AWS_ENDPOINT_URL`` and dummy
credentials (:meth:`S3Server.env`).

``python tests/s3_server.py`` serves until Ctrl-C and prints the environment to
export, for trying a command by hand.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

STALL_S = 5.0  # how long a stalled request waits for its answer

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # /bucket/key
    query: str

    @property
    def is_listing(self) -> bool:
        return self.method == "GET" and "list-type=2" in self.query

    @property
    def is_head(self) -> bool:
        return self.method == "HEAD"


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """One line per request would drown a test's output."""


class S3Server:
    """moto's S3 on a free port of 127.0.0.1, with a request log and injected faults."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults_served = 0  # requests answered with an injected fault
        self._faults: list[tuple[str, Callable[[Request], bool], int]] = []
        self._lock = threading.Lock()
        app = DomainDispatcherApplication(create_backend_app)

        def logged(environ: dict, start_response: Callable) -> Iterable[bytes]:
            request = Request(
                environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", "")
            )
            with self._lock:
                self.requests.append(request)
                fault = self._take_fault(request)
                self.faults_served += fault is not None
            if fault == "drop":
                sock = environ["werkzeug.socket"]
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                return []
            if fault == "throttle":
                start_response("503 Slow Down", [("Content-Type", "application/xml")])
                return [SLOW_DOWN]
            if fault == "stall":
                time.sleep(STALL_S)
            return app(environ, start_response)

        self._server = make_server(
            "127.0.0.1", 0, logged, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        """What a process needs to talk to this server as to AWS."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def throttle(self, match: Callable[[Request], bool], times: int) -> None:
        """Answer the next ``times`` requests that ``match`` with 503 SlowDown."""
        with self._lock:
            self._faults.append(("throttle", match, times))

    def drop(self, match: Callable[[Request], bool], times: int) -> None:
        """Close the connection of the next ``times`` requests that ``match``, unanswered."""
        with self._lock:
            self._faults.append(("drop", match, times))

    def stall(self, match: Callable[[Request], bool], times: int) -> None:
        """Answer the next ``times`` requests that ``match`` only after ``STALL_S`` seconds,
        as an overloaded store does: a client with a shorter read timeout gives up first."""
        with self._lock:
            self._faults.append(("stall", match, times))

    def faults_left(self) -> int:
        """Injected faults not met yet."""
        with self._lock:
            return sum(times for _, _, times in self._faults)

    def _take_fault(self, request: Request) -> str | None:
        for i, (kind, match, times) in enumerate(self._faults):
            if times > 0 and match(request):
                self._faults[i] = (kind, match, times - 1)
                return kind
        return None

    def reset(self) -> None:
        """Forget every bucket, object, logged request and pending fault."""
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        ).read()
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.faults_served = 0

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


if __name__ == "__main__":
    server = S3Server()
    for name, value in server.env().items():
        print(f"export {name}={value}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
    os._exit(0)
