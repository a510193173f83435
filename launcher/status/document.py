"""The ``status --json --failed`` document, built in one place.

The terminal (``--json --failed``), the served page's ``/status.json`` and the
``--html`` snapshot all take it from here, so the page and the terminal can
never show two versions of the same sweep.
"""

from __future__ import annotations

from typing import Any

from launcher.status.failures import failures_digest
from launcher.status.summary import Summary


def document(summary: Summary, failed: bool = True) -> dict[str, Any]:
    """The summary as JSON data; with ``failed``, the failures digest under ``failures``."""
    if failed:
        summary.extra["failures"] = failures_digest(summary)
    return summary.as_dict()
