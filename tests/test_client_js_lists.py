"""liveops.js and the live operations list in real Chromium: rows, order, trim, sockets.

Row tests build the page with `page.set_content` and `liveops.applyFrame` (no server);
socket tests answer the WebSocket with Playwright, as tests/test_client_js.py does.

Run in its own pytest invocation (Playwright's sync API runs an event loop):
    .venv/bin/python -m pytest -p no:django tests/test_client_js_lists.py
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.chromium import launch_chromium
from tests.conftest import REQUIRE_SERVICES

try:
    from playwright.sync_api import Browser, Page, WebSocketRoute, expect
except ImportError:  # pragma: no cover - depends on the machine
    if REQUIRE_SERVICES:
        raise
    pytest.skip("playwright is not installed: pip install playwright", allow_module_level=True)

from tests.test_client_js import (
    LIVEOPS_JS,
    NOT_SET_UP,
    NOWS,
    ORIGIN,
    FakeServer,
    container,
    document,
    serve,
    wait_for_drop,
)

pytestmark = pytest.mark.browser

LABEL = "jobs.export"
STATUS = "list-status"
TEXTS = {"live": "Live", "4404": "This list does not exist.", "4401": "Log in to see it live."}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


# ---- page builders ----------------------------------------------------------------------


def pk(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def row(
    n: int,
    sort: int | None = None,
    text: str = "",
    *,
    v: int = 1,
    attempt: int = 1,
    terminal: bool = False,
    state: str = "NOT_STARTED",
    label: str = LABEL,
) -> str:
    """Render one row element as liveops.lists.render_row does (sort defaults to n)."""
    attrs = f'id="liveop-row-{pk(n)}" class="liveops-row" hx-swap-oob="true"'
    attrs += f' data-liveop-row="{label}" data-liveop-sort="{n if sort is None else sort}"'
    attrs += f' data-liveop-v="{v}" data-liveop-attempt="{attempt}" data-liveop-state="{state}"'
    if terminal:
        attrs += " data-liveop-terminal"
    return f"<tr {attrs}><td>{text or f'op {n}'}</td><td>{state}</td></tr>"


def table(
    *rows: str,
    label: str = LABEL,
    page: int = 1,
    per_page: int = 3,
    insert: bool = True,
    ws: str | None = None,
    status: str = STATUS,
) -> str:
    """Render a list as {% live_operation_list %} does."""
    attrs = f'data-liveop-list="{label}" data-liveop-list-page="{page}"'
    attrs += f' data-liveop-list-per-page="{per_page}" data-liveop-list-status="{status}"'
    attrs += f" data-liveop-texts='{json.dumps(TEXTS)}'"
    if insert:
        attrs += " data-liveop-list-insert"
    if ws:
        attrs += f' data-liveop-ws="{ws}"'
    hidden = " hidden" if rows else ""
    empty = f"<tr data-liveop-list-empty{hidden}><td>No operations yet.</td></tr>"
    return (
        f'<table class="liveops-list"><tbody {attrs}>{"".join(rows)}{empty}</tbody></table>'
        f'<p id="{status}" role="status"></p>'
    )


def load(page: Page, *bodies: str) -> None:
    page.set_content(document(*bodies))
    page.add_script_tag(path=LIVEOPS_JS)
    page.evaluate(
        """() => {
          window.rows = [];
          document.addEventListener("liveops:row", e => window.rows.push(
            {target: e.target.getAttribute("data-liveop-list-page"), detail: e.detail}));
        }"""
    )


def apply(page: Page, *elements: str) -> list[str]:
    return page.evaluate(
        "html => liveops.applyFrame(JSON.stringify({liveop_html: html}))", "".join(elements)
    )


def shown(page: Page, list_page: int = 1) -> list[int]:
    """The rows of a list, top to bottom, by their number."""
    ids = page.evaluate(
        """n => [...document.querySelector(`[data-liveop-list-page="${n}"]`).children]
                 .filter(el => el.hasAttribute("data-liveop-row")).map(el => el.id)""",
        list_page,
    )
    return [int(i.rsplit("-", 1)[1]) for i in ids]


def row_text(page: Page, n: int) -> str:
    return page.evaluate("id => document.getElementById(id).textContent", f"liveop-row-{pk(n)}")


def events(page: Page) -> list[dict[str, object]]:
    return page.evaluate("window.rows")


# ---- rows -----------------------------------------------------------------------------------


def test_new_rows_go_in_order_newest_first(page: Page) -> None:
    load(page, table(row(30), row(10), per_page=5))
    assert apply(page, row(20)) == [f"liveop-row-{pk(20)}"]
    apply(page, row(40))
    apply(page, row(5))
    assert shown(page) == [40, 30, 20, 10, 5]


def test_ties_are_ordered_by_id_like_the_server(page: Page) -> None:
    load(page, table(row(2, sort=7), per_page=5))
    apply(page, row(1, sort=7), row(3, sort=7))
    assert shown(page) == [3, 2, 1]


def test_a_list_keeps_its_page_size_dropping_the_oldest(page: Page) -> None:
    load(page, table(row(30), row(20), row(10)))
    apply(page, row(40))
    assert shown(page) == [40, 30, 20]
    # Older than everything on a full page 1: it belongs to a later page.
    assert apply(page, row(1)) == []
    assert shown(page) == [40, 30, 20]
    assert [e["detail"] for e in events(page)] == [
        {"op": f"{LABEL}:{pk(40)}", "state": "NOT_STARTED"}
    ]


def test_rows_follow_the_rank_rules_of_regions(page: Page) -> None:
    load(page, table(row(1, text="v3", v=3)))
    assert apply(page, row(1, text="v2", v=2)) == []  # older
    assert row_text(page, 1) == "v3NOT_STARTED"
    apply(page, row(1, text="done", v=4, terminal=True, state="FINISHED_OK"))
    assert apply(page, row(1, text="live", v=9, state="STARTED")) == []  # terminal stays
    assert row_text(page, 1) == "doneFINISHED_OK"
    assert apply(page, row(1, text="again", v=1, attempt=2)) != []  # a retry outranks all
    assert row_text(page, 1) == "againNOT_STARTED"
    assert shown(page) == [1]


def test_an_identical_row_is_not_applied_again(page: Page) -> None:
    load(page, table(row(1)))
    new = row(1, text="running", v=2, state="STARTED")
    assert apply(page, new) == [f"liveop-row-{pk(1)}"]
    page.evaluate("id => { document.getElementById(id).marked = true; }", f"liveop-row-{pk(1)}")
    assert apply(page, new) == []
    assert page.evaluate("id => document.getElementById(id).marked", f"liveop-row-{pk(1)}")
    assert len(events(page)) == 1


def test_later_pages_update_rows_but_never_gain_any(page: Page) -> None:
    load(page, table(row(5), row(4), page=2, insert=False))
    assert apply(page, row(9), row(1)) == []
    assert shown(page, 2) == [5, 4]
    assert apply(page, row(4, text="running", v=2, state="STARTED")) == [f"liveop-row-{pk(4)}"]
    assert row_text(page, 4) == "runningSTARTED"
    assert events(page) == [
        {"target": "2", "detail": {"op": f"{LABEL}:{pk(4)}", "state": "STARTED"}}
    ]


def test_one_row_updates_every_list_of_its_type_only(page: Page) -> None:
    load(
        page,
        table(row(1), per_page=5),
        table(row(1), page=2, insert=False, status="s2"),
        table(label="jobs.other", page=3, status="s3"),
    )
    apply(page, row(1, v=2, state="STARTED"), row(2))
    assert page.evaluate(
        """() => [...document.querySelectorAll("[data-liveop-list]")].map(l =>
             [...l.querySelectorAll("[data-liveop-row]")].map(r => r.dataset.liveopState))"""
    ) == [["NOT_STARTED", "STARTED"], ["STARTED"], []]


def test_a_row_is_never_applied_outside_a_list(page: Page) -> None:
    elsewhere = f'<div id="liveop-row-{pk(1)}">keep me</div>'
    load(page, elsewhere, container(), table(label="jobs.other"))
    before = page.content()
    assert apply(page, row(1, v=5), row(1, v=5).replace("data-liveop-row", "data-x")) == []
    assert row_text(page, 1) == "keep me"
    assert page.content() == before
    assert events(page) == []


def test_the_empty_state_goes_once_a_row_arrives(page: Page) -> None:
    load(page, table())
    empty = page.locator("[data-liveop-list-empty]")
    expect(empty).to_be_visible()
    apply(page, row(1))
    expect(empty).to_be_hidden()
    assert shown(page) == [1]


def test_rows_need_no_htmx(page: Page) -> None:
    load(page, table())
    assert page.evaluate("typeof window.htmx") == "undefined"
    assert apply(page, row(1, text="<button hx-get='/x'>go</button>")) == [f"liveop-row-{pk(1)}"]


# ---- sockets ----------------------------------------------------------------------------------


def queries(server: FakeServer) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(url).query) for url in server.urls]


def snapshot_rows(ws: WebSocketRoute, n: int) -> None:
    ws.send(json.dumps({"liveop_html": row(7, text=f"snapshot {n}", v=n)}))


def test_a_page_with_only_a_list_opens_one_socket(page: Page) -> None:
    server = FakeServer(page, snapshot_rows)
    serve(page, table(ws="/ws/liveops/"), paused=False)
    expect(page.locator(f"#liveop-row-{pk(7)}")).to_contain_text("snapshot 1")
    expect(page.locator(f"#{STATUS}")).to_have_text("Live")
    assert queries(server) == [{"list": [f"{LABEL}:1:3"]}]
    assert page.evaluate("[...liveops.sockets.keys()]") == ["/ws/liveops/"]


def test_lists_share_the_first_socket_of_their_path(page: Page) -> None:
    server = FakeServer(page, lambda ws, n: None)
    many = [
        container(pk=f"{n:08d}-0000-4000-8000-000000000000", token=f"jobs.export:{n}", ws="/ws/")
        for n in range(51)
    ]
    serve(page, *many, table(ws="/ws/"), table(page=2, ws="/ws/", status="s2"), paused=False)
    page.wait_for_function("() => liveops.sockets.size === 2")
    first, second = sorted(queries(server), key=lambda q: -len(q.get("op", [])))
    assert len(first["op"]) == 50
    assert first["list"] == [f"{LABEL}:1:3", f"{LABEL}:2:3"]
    assert len(second["op"]) == 1
    assert "list" not in second


def test_a_list_reconnects_after_a_drop(page: Page) -> None:
    def accept(ws: WebSocketRoute, n: int) -> None:
        snapshot_rows(ws, n)
        if n == 1:
            ws.close(code=1011)

    server = FakeServer(page, accept)
    serve(page, table(ws="/ws/liveops/"), random=0.5)
    page.clock.run_for(1_000)
    expect(page.locator(f"#liveop-row-{pk(7)}")).to_contain_text("snapshot 2")
    assert len(server.urls) == 2


def test_a_rejected_list_says_why_and_is_not_asked_for_again(page: Page) -> None:
    def accept(ws: WebSocketRoute, n: int) -> None:
        rejection = {"list": f"{LABEL}:1:3", "code": 4404, "reason": "not found"}
        ws.send(json.dumps({"liveop_rejected": rejection}))

    server = FakeServer(page, accept)
    serve(page, table(ws="/ws/liveops/"))
    expect(page.locator(f"#{STATUS}")).to_have_text("This list does not exist.")
    body = page.locator("[data-liveop-list]")
    expect(body).to_have_attribute("data-liveop-rejected", "4404")
    assert page.evaluate("liveops.sockets.size") == 0  # nothing left on it: closed
    page.clock.run_for(60_000)
    assert len(server.urls) == 1


def test_a_list_beside_an_operation_keeps_the_socket_when_rejected(page: Page) -> None:
    def accept(ws: WebSocketRoute, n: int) -> None:
        rejection = {"list": f"{LABEL}:1:3", "code": 4401, "reason": "login required"}
        ws.send(json.dumps({"liveop_rejected": rejection}))

    server = FakeServer(page, accept)
    serve(page, container(ws="/ws/liveops/"), table(ws="/ws/liveops/"))
    expect(page.locator(f"#{STATUS}")).to_have_text("Log in to see it live.")
    assert page.evaluate("liveops.sockets.size") == 1
    assert set(queries(server)[0]) == {"op", "list"}


def test_a_44xx_close_is_final_for_a_list(page: Page) -> None:
    server = FakeServer(page, lambda ws, n: ws.close(code=4401, reason="no"))
    serve(page, table(ws="/ws/liveops/"))
    expect(page.locator(f"#{STATUS}")).to_have_text("Log in to see it live.")
    expect(page.locator("[data-liveop-list]")).to_have_attribute(
        "data-liveop-connection", re.compile("rejected")
    )
    page.clock.run_for(60_000)
    assert len(server.urls) == 1


def test_a_list_says_when_the_server_takes_no_websockets_and_when_it_has_no_layer(
    page: Page,
) -> None:
    # Three handshakes that never open (1006) while the page's URL answers, then a 4500.
    def accept(ws: WebSocketRoute, n: int) -> None:
        ws.close(code=1006 if n <= 3 else 4500)

    server = FakeServer(page, accept)
    probes = serve(page, table(ws="/ws/liveops/"), random=0.9999, http_answers=True)
    status = page.locator(f"#{STATUS}")
    for attempt, ceiling in enumerate((500, 1_000), start=1):
        wait_for_drop(page, attempt)
        page.clock.run_for(ceiling)
    wait_for_drop(page, 3)
    expect(status).to_have_text(NOWS)  # TEXTS has none: the client's English
    assert probes == [f"{ORIGIN}/"]
    page.clock.run_for(2_000)
    wait_for_drop(page, 4)
    expect(status).to_have_text(NOT_SET_UP)
    page.clock.run_for(15_000)
    page.wait_for_function("() => liveops.sockets.size === 0")
    assert len(server.urls) == 5  # not final for a list either


def test_the_client_removes_a_list_s_script_missing_notice(page: Page) -> None:
    notice = '<p class="liveops-dev-notice" data-liveop-script-missing>liveops.js has not run</p>'
    load(page, notice + table())
    expect(page.locator("[data-liveop-script-missing]")).to_have_count(0)
