"""Launch Debian's Chromium for the browser tests (Playwright cannot download its own here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import need

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Without the background-networking flags Chromium keeps dialling hosts this machine
# cannot reach; see ENVIRONMENT.md.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """Return $LIVEOPS_CHROMIUM or a system Chromium, if one is executable."""
    for candidate in (os.environ.get("LIVEOPS_CHROMIUM"), *CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """Yield a headless Chromium browser; skip (or fail in CI) when there is none.

    Use it from a module-scoped fixture: one thread runs one sync Playwright at a time.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "Playwright is not installed (pip install playwright)")
    executable = find_chromium()
    need(
        executable is not None,
        "No Chromium found at $LIVEOPS_CHROMIUM, /usr/bin/chromium or /usr/bin/chromium-browser "
        "(apt-get install chromium, or scripts/ensure-chromium)",
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def liveops_console_errors(page: Any) -> list[str]:
    """Return a list that fills with what liveops.js says by console.error.

    The browser's own lines (a failed resource, say) are left out.
    """
    errors: list[str] = []

    def record(message: Any) -> None:
        if message.type == "error" and message.text.startswith("liveops:"):
            errors.append(message.text)

    page.on("console", record)
    return errors
