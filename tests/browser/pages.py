"""Steps the browser tests take on the demo's pages."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.browser.support import LIVE_URL, LivePage


def start(page: Any, card: str, button: str, **fields: str) -> LivePage:
    """On the home page, fill the card named ``card``, press ``button``, land on the live page.

    ``fields`` maps a field's label to its value.
    """
    section = page.get_by_role("region", name=card)
    for label, value in fields.items():
        section.get_by_label(label).fill(value)
    section.get_by_role("button", name=button).click()
    page.wait_for_url(LIVE_URL)
    return LivePage.of(page)


def wait_until(page: Any, condition: Callable[[], bool], why: str, timeout: float = 15.0) -> None:
    """Wait until ``condition()`` holds, letting Playwright deliver events meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {why}"
        page.wait_for_timeout(50)  # polling a condition, with the deadline above
