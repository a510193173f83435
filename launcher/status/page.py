"""The status page as one HTML file: its style, scripts and data inline.

The page is package data (``launcher/status/web/``): a template, a stylesheet,
the page's script and a small canvas plotting script written for it. Nothing
is fetched from elsewhere, so it works on a login node with no internet and
as a file attached to an email. Served (``status --serve``), it polls
``status.json`` beside it; written (``status --html``), it carries the
document it shows.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any

ASSETS = files("launcher.status") / "web"
SOURCE = "status.json"  # the served document, relative to the page


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON that can sit inside a ``<script>`` element: no ``</script>`` can end it early."""
    return json.dumps(value, default=str).replace("<", "\\u003c")


def html(document: dict[str, Any] | None = None, poll_s: float = 2.0) -> str:
    """The page showing ``document`` (a snapshot), or polling ``status.json`` every ``poll_s``."""
    config: dict[str, Any] = (
        {"document": document} if document is not None else {"source": SOURCE, "poll_s": poll_s}
    )
    parts = {
        "style": _asset("status.css"),
        "config": _script_json(config),
        "plot": _asset("plot.js"),
        "script": _asset("status.js"),
    }
    # one pass over the template: text put in (a failure's message) is never searched again
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], _asset("status.html"))
