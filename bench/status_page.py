"""ST2: the status page of a 10,000-shard sweep, timed inside a headless Chromium.

The sweep is ST1's synthetic one at 10,000 shards. Each repetition starts a
fresh ``status DIR --serve`` process (untimed: it reads the records once
before it prints its URL) and a fresh browser, then reads the page's own
clocks (``performance.now()``, from the start of navigation):

- first paint: until the grid, totals, plot and failures are drawn and a frame
  has been produced (``statusPage.firstPaintMs``);
- refresh: one polling cycle with the page already drawn, from the fetch of
  ``status.json`` to the next frame after redrawing (``statusPage.lastRefreshMs``).

``ours[html]`` is the first paint of the ``--html`` file of the same sweep.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.browser import Browser
from bench.fixtures import cache_root
from bench.harness import Sample
from bench.status_read import REPO, write_sweep

SHARDS = 10_000
PAINTED = "return window.statusPage && window.statusPage.firstPaintMs"


def fresh_sweep() -> str:
    """Rebuilt for every bench run; its running shards' heartbeats name this process and stay
    fresh for an hour, so the page shows the same states in every repetition."""
    directory = os.path.join(cache_root(), f"status-page-{SHARDS}")
    shutil.rmtree(directory, ignore_errors=True)
    return write_sweep(directory, SHARDS, heartbeat_s=3600.0)


def _until(driver, script: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return float(value)
        time.sleep(0.05)
    raise RuntimeError(f"the page did not answer {script!r} within {timeout}s")


def _serve(sweep: str) -> tuple[subprocess.Popen, str]:
    argv = [sys.executable, "-m", "launcher", "status", sweep, "--serve", "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if "Ctrl-C stops" not in line:
        proc.kill()
        raise RuntimeError(f"status --serve did not start: {line!r}")
    return proc, line.split(": ", 1)[1].split()[0]


def served(what: str, sweep: str) -> Callable[[], Callable[[], Sample]]:
    """A contender's ``prepare``: ``what`` is ``paint`` or ``refresh`` of the served page."""

    def prepare() -> Callable[[], Sample]:
        proc, url = _serve(sweep)
        browser = Browser()

        def runner() -> Sample:
            try:
                browser.driver.get(url)
                paint = _until(browser.driver, PAINTED) / 1000
                if what == "paint":
                    return Sample(paint)
                _until(browser.driver, "return window.statusPage.refreshes >= 2")
                refresh = _until(browser.driver, "return window.statusPage.lastRefreshMs")
                return Sample(refresh / 1000, {"first_paint_s": paint})
            finally:
                browser.quit()
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)

        return runner

    return prepare


def snapshot(sweep: str) -> Callable[[], Callable[[], Sample]]:
    """``ours[html]``: the first paint of ``status DIR --html`` opened from disk."""

    def prepare() -> Callable[[], Sample]:
        page = Path(sweep).with_suffix(".html")
        argv = [sys.executable, "-m", "launcher", "status", sweep, "--html", str(page)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(argv, cwd=REPO, env=env, capture_output=True, check=False)
        browser = Browser()

        def runner() -> Sample:
            try:
                browser.driver.get(page.as_uri())
                return Sample(_until(browser.driver, PAINTED) / 1000)
            finally:
                browser.quit()

        return runner

    return prepare
