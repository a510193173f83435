"""A headless Chromium driven by selenium, for the status page's tests and its bench row.

Debian's ``chromium`` and ``chromium-driver`` (``scripts/browser.sh install``);
playwright's own browsers cannot be downloaded on the machines this runs on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",  # required as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--force-device-scale-factor=1",  # one canvas pixel per CSS pixel, whatever the host says
)


def no_browser() -> str | None:
    """Why no browser can be driven here; None when one can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]' -c constraints.txt)"
    for path in (CHROMIUM, DRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (scripts/browser.sh install, as root with apt)"
    return None


class Browser:
    """One Chromium with a fresh profile, removed again by :meth:`quit`."""

    def __init__(self, width: int = 1280, height: int = 1000) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="status-page-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        self.driver: Any = webdriver.Chrome(service=Service(DRIVER), options=options)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
