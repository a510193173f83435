"""The object store's transient errors (throttling such as ``SlowDown``, timeouts, dropped
connections), counted per process for ``report.json``.

s3fs retries them with backoff around botocore's own retries; nothing said how often
that happened. A hook on each s3fs filesystem's botocore client (botocore's
``needs-retry`` event, emitted after every attempt) counts every attempt that failed
that way, by botocore's own standard-mode rules of what is transient or throttled:
each was retried, but for the last try of a request that kept failing (that one
fails its item). A worker process hands its count on with its results
(:func:`take`); the job's process adds it (:func:`add`) to its own listings and
records' count (:func:`total`).
"""

from __future__ import annotations

import os
from typing import Any

_HOOK = "launcher-transient-errors"
_seen = 0  # attempts of this process that met a transient error
_handed = 0  # of them, handed on to the parent process by take()
_received = 0  # handed to this process by its workers


def watch(fs: Any) -> None:
    """Count the transient errors of ``fs``'s requests, when it is an s3fs filesystem
    (other fsspec filesystems keep their own retries, uncounted). Cheap to call again."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    if "s3" not in protocols or getattr(fs, "asynchronous", False):
        return
    # first: botocore's legacy retry handler raises a connection error it gives up on
    fs.s3.meta.events.register_first("needs-retry.s3", _on_attempt, unique_id=_HOOK)


def _on_attempt(**kwargs: Any) -> None:
    """botocore's ``needs-retry`` hook: note a transient failure, decide nothing (None)."""
    global _seen
    if _is_transient(kwargs):
        _seen += 1


def _is_transient(kwargs: dict[str, Any]) -> bool:
    response = kwargs.get("response")
    if kwargs.get("caught_exception") is None and response and response[0].status_code < 400:
        return False  # most attempts: answered
    from botocore.retries.standard import (
        OrRetryChecker,
        RetryEventAdapter,
        ThrottledRetryableChecker,
        TransientRetryableChecker,
    )

    context = RetryEventAdapter().create_retry_context(**kwargs)
    checker = OrRetryChecker([TransientRetryableChecker(), ThrottledRetryableChecker()])
    return checker.is_retryable(context)


def take() -> int:
    """This process's transient errors not yet handed on: a worker sends them to its
    parent with its results."""
    global _handed
    n, _handed = _seen - _handed, _seen
    return n


def add(n: int) -> None:
    """Count ``n`` transient errors a worker process met."""
    global _received
    _received += n


def total() -> int:
    """The transient errors this process met, and those its workers handed to it."""
    return _seen + _received


def _forget() -> None:
    """A forked child counts from zero: its parent's count stays its parent's."""
    global _seen, _handed, _received
    _seen = _handed = _received = 0


os.register_at_fork(after_in_child=_forget)
