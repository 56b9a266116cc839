"""liveops.js in Chromium: the event of django-liveops 0.4, for pages written for it.

0.4's client dispatched ``liveop:finished`` on ``document``, detail ``{pk, state, url,
success_url}``, when an operation finished. Ours dispatches it right after each
``liveops:finished`` (docs/protocol.md, "Events"). The page builders are those of
tests/test_client_js.py; run in its own pytest invocation, as that file says:

    .venv/bin/python -m pytest -p no:django tests/test_client_js_upgrade.py
"""

from __future__ import annotations

import json

import pytest

from tests.test_client_js import (
    PK,
    apply,
    chromium,
    container,
    load,
    page,
    region,
)

try:
    from playwright.sync_api import Page
except ImportError:  # pragma: no cover - test_client_js skipped the module already
    pytest.skip("playwright is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser
__all__ = ["chromium", "page"]  # the fixtures, imported for pytest to find

LIVE_PAGE = f"/liveops/jobs.export/{PK}/"
NEXT = "http://liveops.test/next/"


def page_for_0_4(page: Page, *, terminal: bool = False) -> None:
    """Load one container (with its live page URL) and record the 0.4 event on document."""
    section = container(terminal=terminal).replace(
        'data-liveop="', f'data-liveop-url="{LIVE_PAGE}" data-liveop="', 1
    )
    load(page, section)
    page.evaluate(
        """() => {
          window.recorded = [];
          document.addEventListener("liveop:finished", e => window.recorded.push(
            {target: e.target === document ? "document" : e.target.id, detail: e.detail,
             cancelable: e.cancelable}));
        }"""
    )


def recorded(page: Page) -> list[dict[str, object]]:
    return page.evaluate("window.recorded")


def finished(state: str, *, v: int, attempt: int = 1, result: str = "") -> list[str]:
    return [
        region("status", state, v=v, attempt=attempt, terminal=True, state=state),
        region("result", result, v=v, attempt=attempt, terminal=True, state=state),
    ]


def test_a_failure_is_announced_once_on_document_in_the_0_4_shape(page: Page) -> None:
    page_for_0_4(page)
    apply(page, region("status", "Running", v=2))
    assert recorded(page) == []
    apply(page, *finished("FINISHED_ERROR", v=3))
    # A reconnect snapshot re-applies the same end, newer: no second event.
    apply(page, *finished("FINISHED_ERROR", v=4, result="Error"))
    assert recorded(page) == [
        {
            "target": "document",
            "cancelable": False,
            "detail": {
                "pk": PK,
                "state": "FINISHED_ERROR",
                "url": LIVE_PAGE,
                "success_url": None,
            },
        }
    ]
    # A retry is a new attempt: its end is announced too.
    apply(page, region("status", "Again", v=5, attempt=2))
    apply(page, *finished("CANCELLED", v=6, attempt=2))
    assert [e["detail"]["state"] for e in recorded(page)] == ["FINISHED_ERROR", "CANCELLED"]  # type: ignore[index]


def test_a_success_carries_its_success_url_then_goes_there(page: Page) -> None:
    page.route(
        NEXT, lambda route: route.fulfill(body="<title>next</title>", content_type="text/html")
    )
    page_for_0_4(page)
    # The page is left for the success URL: the listener reports through the console.
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text))
    page.evaluate(
        """() => document.addEventListener("liveop:finished",
             e => console.log(JSON.stringify(e.detail)))"""
    )
    link = f'<a href="{NEXT}" data-liveop-continue>Continue</a>'
    with page.expect_navigation(url=NEXT):
        apply(page, *finished("FINISHED_OK", v=3, result=link))
    assert [json.loads(text) for text in seen] == [
        {"pk": PK, "state": "FINISHED_OK", "url": LIVE_PAGE, "success_url": NEXT}
    ]


def test_a_success_without_a_success_url_has_null(page: Page) -> None:
    page_for_0_4(page)
    apply(page, *finished("FINISHED_OK", v=3, result="<dl><dt>rows</dt><dd>3</dd></dl>"))
    assert recorded(page) == [
        {
            "target": "document",
            "cancelable": False,
            "detail": {"pk": PK, "state": "FINISHED_OK", "url": LIVE_PAGE, "success_url": None},
        }
    ]


def test_the_success_url_is_given_as_the_server_wrote_it(page: Page) -> None:
    page_for_0_4(page)
    # Keep the page: the event is there either way, the navigation is ours to prevent.
    page.evaluate("() => document.addEventListener('liveops:finished', e => e.preventDefault())")
    link = '<a href="/orders/7/?tab=files&amp;x=1" data-liveop-continue>Continue</a>'
    apply(page, *finished("FINISHED_OK", v=3, result=link))
    (event,) = recorded(page)
    assert event["detail"] == {
        "pk": PK,
        "state": "FINISHED_OK",
        "url": LIVE_PAGE,
        "success_url": "/orders/7/?tab=files&x=1",
    }


def test_an_operation_the_page_was_rendered_finished_with_is_not_announced(page: Page) -> None:
    page_for_0_4(page, terminal=True)
    apply(page, *finished("FINISHED_OK", v=2, result="Done"))
    assert recorded(page) == []


def test_without_the_live_page_attribute_url_is_empty(page: Page) -> None:
    load(page, container())
    page.evaluate(
        """() => { window.recorded = [];
          document.addEventListener("liveop:finished", e => window.recorded.push(e.detail)); }"""
    )
    apply(page, *finished("FINISHED_ERROR", v=3))
    assert recorded(page) == [{"pk": PK, "state": "FINISHED_ERROR", "url": "", "success_url": None}]
