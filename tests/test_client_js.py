"""liveops.js in real Chromium: applying frames, events, htmx, and the socket lifecycle.

No server is needed. Frame tests build the page with `page.set_content` and give the
container no `data-liveop-ws`, so the client does not connect and `liveops.applyFrame`
is the only input. Socket tests serve the page from a routed origin and answer the
WebSocket with Playwright's `route_web_socket`, with the page clock paused so backoff
timers fire only when a test moves time forward.

Run in its own pytest invocation (Playwright's sync API runs an event loop):
    .venv/bin/python -m pytest -p no:django tests/test_client_js.py tests/test_vendored_htmx.py
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.pages import wait_until
from tests.chromium import launch_chromium, liveops_console_errors
from tests.conftest import REQUIRE_SERVICES
from tests.dom import canonical
from tests.region_cases import Case
from tests.region_cases import container as case_container
from tests.test_region_cases import MERGE_IGNORES, case_params, expected, merged_frame

try:
    from playwright.sync_api import (
        Browser,
        Locator,
        Page,
        Route,
        WebSocketRoute,
        expect,
    )
except ImportError:  # pragma: no cover - depends on the machine
    if REQUIRE_SERVICES:
        raise
    pytest.skip("playwright is not installed: pip install playwright", allow_module_level=True)

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parent.parent / "src" / "liveops" / "static" / "liveops"
LIVEOPS_JS = STATIC / "liveops.js"

PK = "0b7f5c1e-2f4a-4c59-9b8e-3d2a1f6e7a01"
TOKEN = f"jobs.export:{PK}"
PK_B = "5d0c9a42-7e1b-4f3a-a6d2-8c4e1b2f9a02"
TOKEN_B = f"jobs.export:{PK_B}"
PK_C = "9e3b1d70-4a2c-4b8e-b1f5-0d6a7c8e2b03"
TOKEN_C = f"jobs.export:{PK_C}"

ORIGIN = "http://liveops.test"
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
LOST = "Connection lost. Retrying…"
RANDOM = 0.9999  # Math.random() in backoff tests: each delay lands just under its ceiling


# ---- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """Give a fresh page; fail the test if the page threw an uncaught error."""
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


# ---- page builders ----------------------------------------------------------------


def rid(name: str, pk: str = PK) -> str:
    return f"liveop-{pk}-{name}"


def region(
    name: str,
    body: str = "",
    *,
    v: int = 1,
    attempt: int = 1,
    terminal: bool = False,
    state: str | None = None,
    pk: str = PK,
    tag: str = "div",
    oob: str = "true",
    extra: str = "",
) -> str:
    """Render one region element the way docs/protocol.md describes it."""
    attrs = f'id="{rid(name, pk)}" class="liveops-{name}" hx-swap-oob="{oob}"'
    attrs += f' data-liveop-v="{v}" data-liveop-attempt="{attempt}"'
    if terminal:
        attrs += " data-liveop-terminal"
    if state:
        attrs += f' data-liveop-state="{state}"'
    return f"<{tag} {attrs}{extra}>{body}</{tag}>"


def line(seq: int, text: str | None = None, pk: str = PK) -> str:
    body = text if text is not None else f"line {seq}"
    return f'<li id="{rid(f"log-{seq}", pk)}" data-liveop-seq="{seq}">{body}</li>'


def log(
    seqs: tuple[int, ...],
    *,
    v: int = 1,
    attempt: int = 1,
    terminal: bool = False,
    log_max: int | None = None,
    pk: str = PK,
) -> str:
    """Render a log append carrying the lines with these seqs."""
    extra = f' data-liveop-log-max="{log_max}"' if log_max is not None else ""
    body = "".join(line(s, pk=pk) for s in seqs)
    return region(
        "log",
        body,
        v=v,
        attempt=attempt,
        terminal=terminal,
        pk=pk,
        tag="ol",
        oob="beforeend",
        extra=extra,
    )


def container(
    *,
    pk: str = PK,
    token: str = TOKEN,
    ws: str | None = None,
    status: str = "Queued",
    log_seqs: tuple[int, ...] = (1, 2, 3),
    log_max: int = 5,
    terminal: bool = False,
    texts: dict[str, str] | None = None,
) -> str:
    """Render a container as `{% live_operation %}` would, regions at version 1."""
    ws_attr = f' data-liveop-ws="{ws}"' if ws else ""
    if texts is not None:
        ws_attr += f' data-liveop-texts="{html.escape(json.dumps(texts))}"'
    state = "FINISHED_OK" if terminal else None
    connection_id = rid("connection", pk)
    return f"""
    <section id="liveop-{pk}" class="liveops" data-liveop="{token}"{ws_attr} aria-label="Export">
      <p id="{connection_id}" class="liveops-connection" role="status" aria-live="polite"></p>
      <div class="liveops-live" aria-live="polite" aria-atomic="true">
        {region("status", status, pk=pk, terminal=terminal, state=state)}
      </div>
      {region("progress", "0%", pk=pk, terminal=terminal)}
      {region("stages", "", pk=pk, terminal=terminal)}
      {log(log_seqs, log_max=log_max, pk=pk, terminal=terminal)}
      <div class="liveops-live" aria-live="polite">
        {region("result", pk=pk, terminal=terminal)}
      </div>
    </section>"""


def document(*bodies: str) -> str:
    return "<!doctype html><html><head><meta charset='utf-8'><title>t</title></head><body>" + (
        "".join(bodies) + "</body></html>"
    )


def load(page: Page, *bodies: str, htmx: bool = False) -> None:
    """Set the page content and run liveops.js (after htmx when asked)."""
    page.set_content(document(*bodies))
    if htmx:
        (htmx_file,) = (STATIC / "vendor").glob("htmx-*.min.js")
        page.add_script_tag(path=htmx_file)
    page.add_script_tag(path=LIVEOPS_JS)
    assert page.evaluate("typeof window.liveops.applyFrame") == "function"


# ---- page helpers -----------------------------------------------------------------


def apply(page: Page, *elements: str) -> list[str]:
    return page.evaluate(
        "html => liveops.applyFrame(JSON.stringify({liveop_html: html}))", "".join(elements)
    )


def apply_raw(page: Page, text: str) -> list[str]:
    return page.evaluate("text => liveops.applyFrame(text)", text)


def text(page: Page, name: str, pk: str = PK) -> str:
    return page.evaluate("id => document.getElementById(id).textContent", rid(name, pk))


def attr(page: Page, name: str, attribute: str, pk: str = PK) -> str | None:
    return page.evaluate(
        "([id, a]) => document.getElementById(id).getAttribute(a)", [rid(name, pk), attribute]
    )


def log_seqs(page: Page, pk: str = PK) -> list[int]:
    return page.evaluate(
        "id => [...document.getElementById(id).children].map(li => +li.dataset.liveopSeq)",
        rid("log", pk),
    )


def container_html(page: Page, pk: str = PK) -> str:
    return page.evaluate("id => document.getElementById(id).outerHTML", f"liveop-{pk}")


def record_events(page: Page) -> None:
    page.evaluate(
        """() => {
          window.recorded = [];
          for (const type of ["liveops:update", "liveops:finished"]) {
            document.addEventListener(type, e => window.recorded.push(
              {type: e.type, target: e.target.id, detail: e.detail}));
          }
        }"""
    )


def events(page: Page) -> list[dict[str, object]]:
    return page.evaluate("window.recorded")


# ---- applying regions -------------------------------------------------------------


def test_newer_version_replaces_region(page: Page) -> None:
    load(page, container())
    assert apply(page, region("status", "Running", v=2)) == [rid("status")]
    assert text(page, "status") == "Running"
    assert attr(page, "status", "data-liveop-v") == "2"


def test_same_fragment_twice_equals_once(page: Page) -> None:
    load(page, container())
    record_events(page)
    frame = [region("status", "Running", v=2), region("progress", "40%", v=2), log((4,), v=2)]
    assert apply(page, *frame) == [rid("status"), rid("progress"), rid("log")]
    once = container_html(page)
    # The page already shows it: nothing is applied and nothing is announced.
    assert apply(page, *frame) == []
    assert container_html(page) == once
    assert [e["type"] for e in events(page)] == ["liveops:update"]


def test_older_version_after_newer_is_dropped(page: Page) -> None:
    load(page, container())
    apply(page, region("status", "Step 3", v=3))
    assert apply(page, region("status", "Step 2", v=2)) == []
    assert text(page, "status") == "Step 3"


def test_terminal_region_not_replaced_by_non_terminal_of_same_attempt(page: Page) -> None:
    load(page, container())
    apply(page, region("status", "Done", v=5, terminal=True, state="FINISHED_OK"))
    assert apply(page, region("status", "Running", v=6)) == []
    assert text(page, "status") == "Done"
    assert attr(page, "status", "data-liveop-terminal") == ""


def test_an_end_decided_elsewhere_wins_over_newer_live_regions(page: Page) -> None:
    """A lost worker's end carries the stored version, below the live ones shown."""
    load(page, container())
    apply(page, region("status", "Working", v=500))
    lost = region("status", "Interrupted", v=13, terminal=True, state="FINISHED_ERROR")
    assert apply(page, lost) == [rid("status")]
    assert text(page, "status") == "Interrupted"
    assert attr(page, "status", "data-liveop-terminal") == ""


def test_higher_attempt_replaces_terminal_and_lower_attempt_is_dropped(page: Page) -> None:
    load(page, container())
    apply(page, region("status", "Failed", v=5, terminal=True, state="FINISHED_ERROR"))
    # A retry wins even with a smaller version: the attempt is compared first.
    assert apply(page, region("status", "Retrying", v=1, attempt=2)) == [rid("status")]
    assert text(page, "status") == "Retrying"
    assert attr(page, "status", "data-liveop-terminal") is None
    assert apply(page, region("status", "Failed", v=9, attempt=1, terminal=True)) == []
    assert text(page, "status") == "Retrying"


# ---- log appends ------------------------------------------------------------------


def test_log_appends_and_takes_the_larger_version(page: Page) -> None:
    load(page, container())
    assert apply(page, log((4, 5), v=3)) == [rid("log")]
    assert log_seqs(page) == [1, 2, 3, 4, 5]
    assert attr(page, "log", "data-liveop-v") == "3"
    assert text(page, "log-5") == "line 5"


def test_log_redelivered_line_is_not_duplicated(page: Page) -> None:
    load(page, container())
    apply(page, region("log", line(3) + line(4), tag="ol", oob="beforeend", v=2))
    assert log_seqs(page) == [1, 2, 3, 4]
    # Same id with new content replaces the line in place.
    apply(page, region("log", line(2, "line 2, edited"), tag="ol", oob="beforeend", v=2))
    assert log_seqs(page) == [1, 2, 3, 4]
    assert text(page, "log-2") == "line 2, edited"


def test_log_late_line_goes_to_its_place_by_seq(page: Page) -> None:
    load(page, container(log_seqs=(1, 2, 5), log_max=10))
    apply(page, log((3,), v=2))
    apply(page, log((4, 0), v=2))
    assert log_seqs(page) == [0, 1, 2, 3, 4, 5]


def test_log_is_trimmed_to_log_max_keeping_the_newest(page: Page) -> None:
    load(page, container(log_max=5))
    apply(page, log((4, 5, 6, 7, 8), v=2))
    assert log_seqs(page) == [4, 5, 6, 7, 8]
    assert page.locator(f"#{rid('log-3')}").count() == 0


def test_log_of_a_higher_attempt_starts_empty_and_keeps_appending(page: Page) -> None:
    load(page, container())
    apply(page, log((1,), v=2, attempt=2))
    assert log_seqs(page) == [1]
    assert attr(page, "log", "data-liveop-attempt") == "2"
    # The log now belongs to attempt 2, so the next append of attempt 2 is not emptied.
    apply(page, log((2,), v=3, attempt=2))
    assert log_seqs(page) == [1, 2]


def test_log_follows_new_lines_unless_the_reader_scrolled_up(page: Page) -> None:
    load(page, container(log_seqs=tuple(range(1, 40))))
    page.add_style_tag(content=".liveops-log { max-height: 5em; overflow: auto; }")
    gap = "el => el.scrollHeight - el.scrollTop - el.clientHeight"
    log_el = page.locator(f"#{rid('log')}")
    log_el.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    apply(page, log(tuple(range(40, 60)), v=2))
    assert log_el.evaluate(gap) < 8  # followed the new lines
    log_el.evaluate("el => { el.scrollTop = 0; }")  # the reader goes back up to read
    apply(page, log(tuple(range(60, 80)), v=3))
    assert log_el.evaluate("el => el.scrollTop") == 0
    # A full replacement (the terminal frame) keeps the reader's place too.
    full = log(tuple(range(1, 80)), v=4, terminal=True).replace('"beforeend"', '"true"')
    apply(page, full)
    assert page.locator(f"#{rid('log')}").evaluate("el => el.scrollTop") == 0


def test_log_append_follows_rules_one_to_three(page: Page) -> None:
    load(page, container())
    apply(page, log((4,), v=4))
    assert apply(page, log((5,), v=3)) == []  # rule 3: an older version is dropped
    apply(page, log((6,), v=5, terminal=True))
    assert apply(page, log((7,), v=6)) == []  # rule 2: terminal stays terminal
    assert log_seqs(page) == [1, 2, 3, 4, 6]


# ---- robustness ---------------------------------------------------------------------


def test_unknown_ids_and_the_connection_region_are_ignored(page: Page) -> None:
    load(page, container(), "<div id='bystander'>keep me</div>")
    before = container_html(page)
    assert apply(page, '<div id="nope">x</div>', region("status", "x", v=9, pk=PK_B)) == []
    assert (
        apply(page, '<div id="bystander">x</div>', '<p id="' + rid("connection") + '">x</p>') == []
    )
    assert container_html(page) == before
    assert page.evaluate("document.getElementById('bystander').textContent") == "keep me"
    # Known regions in the same frame still apply.
    assert apply(page, '<div id="nope"></div>', region("status", "Running", v=2)) == [rid("status")]


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "null",
        "[]",
        '"text"',
        '{"liveop_html": 5}',
        '{"unknown": 1}',
        '{"liveop_rejected": "nope"}',
        '{"liveop_rejected": {"op": 5}}',
        '{"liveop_html": "<div id=\\"' + rid("status") + '\\" data-liveop-v=\\"zz\\">',
    ],
)
def test_malformed_frames_do_not_throw(page: Page, frame: str) -> None:
    load(page, container())
    before = container_html(page)
    assert apply_raw(page, frame) == []  # the page fixture fails the test on any uncaught error
    assert container_html(page) == before


def test_unparsable_frame_is_reported_with_console_warn(page: Page) -> None:
    load(page, container())
    with page.expect_console_message(lambda m: m.type == "warning" and "liveops" in m.text):
        assert apply_raw(page, "{not json") == []


# ---- events ---------------------------------------------------------------------------


def test_update_event_bubbles_from_container_with_region_names(page: Page) -> None:
    load(page, container())
    record_events(page)
    apply(page, region("status", "Running", v=2), region("progress", "40%", v=2))
    assert events(page) == [
        {
            "type": "liveops:update",
            "target": f"liveop-{PK}",
            "detail": {"op": TOKEN, "regions": ["status", "progress"]},
        }
    ]


def test_finished_fires_once_per_attempt_with_state(page: Page) -> None:
    load(page, container())
    record_events(page)
    done = [
        region("progress", "100%", v=3, terminal=True, state="FINISHED_OK"),
        region("status", "Done", v=3, terminal=True, state="FINISHED_OK"),
    ]
    apply(page, *done)
    apply(page, region("result", "<a href='/x'>file</a>", v=4, terminal=True, state="FINISHED_OK"))
    finished = [e for e in events(page) if e["type"] == "liveops:finished"]
    assert finished == [
        {
            "type": "liveops:finished",
            "target": f"liveop-{PK}",
            "detail": {"op": TOKEN, "state": "FINISHED_OK"},
        }
    ]
    apply(page, region("status", "Retrying", v=5, attempt=2))
    apply(page, region("status", "Failed", v=6, attempt=2, terminal=True, state="FINISHED_ERROR"))
    states = [e["detail"]["state"] for e in events(page) if e["type"] == "liveops:finished"]  # type: ignore[index]
    assert states == ["FINISHED_OK", "FINISHED_ERROR"]


def test_page_rendered_finished_does_not_announce_finished_again(page: Page) -> None:
    load(page, container(terminal=True))
    record_events(page)
    # A reconnect snapshot of the same finished attempt, rendered at a newer version.
    apply(page, region("status", "Done.", v=2, terminal=True, state="FINISHED_OK"))
    assert [e["type"] for e in events(page)] == ["liveops:update"]


NEXT = "http://liveops.test/next/"


def finish_with_continue_link(page: Page) -> None:
    link = f'<a href="{NEXT}" data-liveop-continue>Continue</a>'
    apply(
        page,
        region("status", "Done", v=3, terminal=True, state="FINISHED_OK"),
        region("result", link, v=3, terminal=True, state="FINISHED_OK"),
    )


def test_a_live_success_goes_to_the_success_url(page: Page) -> None:
    page.route(
        NEXT, lambda route: route.fulfill(body="<title>next</title>", content_type="text/html")
    )
    load(page, container())
    with page.expect_navigation(url=NEXT):
        finish_with_continue_link(page)


def test_a_finished_listener_can_keep_the_page(page: Page) -> None:
    load(page, container())
    page.evaluate("() => document.addEventListener('liveops:finished', e => e.preventDefault())")
    finish_with_continue_link(page)
    page.wait_for_timeout(200)  # a navigation would have started by now
    assert page.url == "about:blank"
    assert text(page, "result") == "Continue"


def test_a_failure_or_a_page_opened_finished_stays(page: Page) -> None:
    link = f'<a href="{NEXT}" data-liveop-continue>Continue</a>'
    load(page, container(terminal=True))
    apply(page, region("result", link, v=2, terminal=True, state="FINISHED_OK"))
    load(page, container())
    apply(
        page,
        region("status", "Failed", v=3, terminal=True, state="FINISHED_ERROR"),
        region("result", link, v=3, terminal=True, state="FINISHED_ERROR"),
    )
    page.wait_for_timeout(200)
    assert page.url == "about:blank"


# ---- htmx -------------------------------------------------------------------------------


def test_inserted_elements_are_processed_by_htmx(page: Page) -> None:
    load(page, container(), htmx=True)
    assert page.evaluate("htmx.version").startswith("2.")
    page.evaluate(
        """() => {
          window.processed = [];
          const real = htmx.process;
          htmx.process = elt => { window.processed.push(elt.id); return real(elt); };
        }"""
    )
    button = '<button id="again" hx-get="/again" hx-target="this">Run again</button>'
    apply(page, region("result", button, v=2), log((4,), v=2), region("status", "Old", v=0))
    assert page.evaluate("window.processed") == [rid("result"), rid("log-4")]
    # Real htmx wired the button (it keeps its state in this property once processed).
    assert page.evaluate("!!document.getElementById('again')['htmx-internal-data']?.initHash")


HTMX_BUILDS = {
    "2": next((STATIC / "vendor").glob("htmx-2.*.min.js")),
    # htmx 4 is not shipped; the test keeps a copy from the npm registry (htmx.org@4).
    "4": Path(__file__).parent / "fixtures" / "htmx-4.0.1.min.js",
}


@pytest.mark.parametrize("major", sorted(HTMX_BUILDS))
def test_htmx_wires_inserted_elements(page: Page, major: str) -> None:
    """A button in a live fragment works as an htmx control with htmx 2 and htmx 4."""
    # htmx resolves URLs against the page's; about:blank has none, so serve a real origin.
    origin = "http://liveops.test"
    html = document(container())
    page.route(f"{origin}/", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto(f"{origin}/")
    page.add_script_tag(path=HTMX_BUILDS[major])
    page.add_script_tag(path=LIVEOPS_JS)
    assert page.evaluate("htmx.version").startswith(f"{major}.")
    page.evaluate(
        """() => {
          window.processed = [];
          const real = htmx.process.bind(htmx);
          htmx.process = elt => { window.processed.push(elt.id); return real(elt); };
        }"""
    )
    url = f"{origin}/again"
    page.route(url, lambda route: route.fulfill(body="<b>again</b>"))
    button = f'<button id="again" hx-get="{url}" hx-swap="none">Again</button>'
    apply(page, region("result", button, v=2))
    assert page.evaluate("window.processed") == [rid("result")]
    # Only a button htmx has wired sends a request when clicked.
    with page.expect_request(url, timeout=5000) as request:
        page.click("#again")
    assert request.value.method == "GET"


def test_works_without_htmx(page: Page) -> None:
    load(page, container())
    assert page.evaluate("typeof window.htmx") == "undefined"
    assert apply(page, region("result", "<button hx-get='/x'>go</button>", v=2)) == [rid("result")]


# ---- the region cases (tests/region_cases.py) ---------------------------------------------


def case_result(page: Page, case: Case, ignore: tuple[str, ...] = ()) -> str | None:
    """Return the case's element as it is in the page, canonical, or None when absent."""
    outer = page.evaluate("id => document.getElementById(id)?.outerHTML ?? null", case.element_id)
    return None if outer is None else canonical(outer, ignore)


@pytest.mark.parametrize("case", case_params())
def test_region_case(page: Page, case: Case) -> None:
    """liveops.js ends each case as the case table says, frame by frame."""
    load(page, case_container(case.page))
    applied = [apply(page, element) != [] for element in case.arriving]
    assert applied == list(case.applied)
    assert case_result(page, case) == expected(case)


@pytest.mark.parametrize("case", case_params())
def test_region_case_merged_for_a_lagging_socket(page: Page, case: Case) -> None:
    """The one frame the hub merges for a lagging socket leaves the page the same."""
    load(page, case_container(case.page))
    apply_raw(page, merged_frame(case))
    assert case_result(page, case, MERGE_IGNORES) == expected(case, MERGE_IGNORES)


# ---- rejection and the no-socket case -----------------------------------------------------


@pytest.mark.parametrize(
    ("code", "sentence"),
    [
        (4401, "Please log in again to watch this operation."),
        (4403, "You are not allowed to watch this operation."),
        (4404, "This operation no longer exists."),
        (4499, "Custom reason from the server."),
    ],
)
def test_rejected_frame_explains_in_the_connection_region(
    page: Page, code: int, sentence: str
) -> None:
    load(page, container(), container(pk=PK_B, token=TOKEN_B))
    frame = {
        "liveop_rejected": {"op": TOKEN, "code": code, "reason": "Custom reason from the server."}
    }
    assert apply_raw(page, json.dumps(frame)) == []
    assert text(page, "connection") == sentence
    assert page.get_attribute(f"#liveop-{PK}", "data-liveop-rejected") == str(code)
    assert page.get_attribute(f"#liveop-{PK}", "data-liveop-connection") == "rejected"
    assert text(page, "connection", PK_B) == ""  # the other operation is untouched


def test_without_data_liveop_ws_the_client_does_not_connect(page: Page) -> None:
    load(page, container())
    assert page.evaluate("liveops.sockets.size") == 0
    assert text(page, "connection") == ""
    assert page.get_attribute(f"#liveop-{PK}", "data-liveop-connection") is None
    assert page.evaluate("Object.keys(window.liveops).sort()") == [
        "applyFrame",
        "connect",
        "sockets",
    ]


# ---- sockets (Playwright stands in for the server) ---------------------------------------


class FakeServer:
    """Answer the page's WebSockets in place of the liveops consumer and record them."""

    def __init__(self, page: Page, on_connect: Callable[[WebSocketRoute, int], None]) -> None:
        self.urls: list[str] = []
        self.routes: list[WebSocketRoute] = []
        self._on_connect = on_connect
        page.route_web_socket(re.compile(r"^ws://liveops\.test/"), self._accept)

    def _accept(self, ws: WebSocketRoute) -> None:
        self.urls.append(ws.url)
        self.routes.append(ws)
        self._on_connect(ws, len(self.urls))

    def ops(self, index: int) -> list[str]:
        return parse_qs(urlsplit(self.urls[index]).query)["op"]


def snapshot(ws: WebSocketRoute, n: int, *, terminal: bool = False) -> None:
    """Send what the server sends first: the status of every operation asked for."""
    pks = [op.split(":", 1)[1] for op in parse_qs(urlsplit(ws.url).query)["op"]]
    html = "".join(region("status", f"snapshot {n}", v=n, pk=pk, terminal=terminal) for pk in pks)
    ws.send(json.dumps({"liveop_html": html, "unknown_key": True}))


def serve(
    page: Page,
    *bodies: str,
    random: float | None = None,
    paused: bool = True,
    http_answers: bool = False,
) -> list[str]:
    """Load the page from a routed origin (so location.host is real) and run liveops.js.

    Routed sockets that the handler closes never open, as to a server that is down; so
    the origin answers the client's HEAD probes only with ``http_answers`` (a server that
    is up and refuses WebSockets), and otherwise fails them as a down server does.
    Return the list of the probes' URLs, which grows as they come.
    """
    if random is not None:
        page.add_init_script(f"Math.random = () => {random};")
    if paused:
        page.clock.install(time=T0)
        page.clock.pause_at(T0 + dt.timedelta(seconds=1))

    def origin(route: Route) -> None:
        if route.request.method == "HEAD":
            probes.append(route.request.url)
            if not http_answers:
                route.abort("connectionrefused")
                return
        route.fulfill(content_type="text/html", body=document(*bodies))

    probes: list[str] = []
    page.route(f"{ORIGIN}/", origin)
    page.goto(f"{ORIGIN}/")
    # Every attempt passes through "connecting"; the list lets tests count attempts.
    page.evaluate(
        """() => {
          window.states = [];
          new MutationObserver(records => records.forEach(r => window.states.push(
            r.target.getAttribute("data-liveop-connection")))).observe(document.body,
            {subtree: true, attributeFilter: ["data-liveop-connection"]});
        }"""
    )
    page.add_script_tag(path=LIVEOPS_JS)
    return probes


def connection(page: Page, pk: str = PK) -> Locator:
    return page.locator(f"#{rid('connection', pk)}")


def states(page: Page) -> list[str]:
    return page.evaluate("window.states")


def wait_for_attempts(page: Page, attempts: int) -> None:
    """Wait until the page has tried `attempts` connections and the last one dropped."""
    page.wait_for_function(f"() => window.states.length === {2 * attempts}")
    assert states(page) == ["connecting", "closed"] * attempts


def test_one_socket_per_path_carries_every_operation(page: Page) -> None:
    server = FakeServer(page, snapshot)
    serve(
        page,
        container(ws="/ws/liveops/"),
        container(pk=PK_B, token=TOKEN_B, ws="/ws/liveops/"),
        container(pk=PK_C, token=TOKEN_C, ws="/ws/other/"),
        container(pk="no-socket", token="jobs.export:no-socket"),
        paused=False,
    )
    for pk in (PK, PK_B, PK_C):
        expect(page.locator(f"#{rid('status', pk)}")).to_have_text(re.compile(r"^snapshot [12]$"))
        expect(connection(page, pk)).to_have_text("Live")
        expect(page.locator(f"#liveop-{pk}")).to_have_attribute("data-liveop-connection", "open")
    by_path = {urlsplit(u).path: u for u in server.urls}
    assert sorted(by_path) == ["/ws/liveops/", "/ws/other/"]
    assert urlsplit(by_path["/ws/liveops/"]).query == (
        f"op=jobs.export%3A{PK}&op=jobs.export%3A{PK_B}"
    )
    assert sorted(page.evaluate("[...liveops.sockets.keys()]")) == ["/ws/liveops/", "/ws/other/"]
    assert page.get_attribute("#liveop-no-socket", "data-liveop-connection") is None


@pytest.mark.parametrize(
    ("code", "sentence"),
    [
        (4400, "The page asked for operations in a form the server does not accept."),
        (4401, "Please log in again to watch this operation."),
        (4403, "You are not allowed to watch this operation."),
        (4404, "This operation no longer exists."),
    ],
)
def test_close_code_44xx_is_final_and_explained(page: Page, code: int, sentence: str) -> None:
    server = FakeServer(page, lambda ws, n: ws.close(code=code, reason="no"))
    serve(page, container(ws="/ws/liveops/"), container(pk=PK_B, token=TOKEN_B, ws="/ws/liveops/"))
    for pk in (PK, PK_B):
        expect(connection(page, pk)).to_have_text(sentence)
        expect(page.locator(f"#liveop-{pk}")).to_have_attribute(
            "data-liveop-connection", "rejected"
        )
    page.clock.run_for(60_000)
    assert page.evaluate("liveops.sockets.size") == 0
    assert "connecting" not in states(page)[2:]  # one attempt for both containers, never again
    assert len(server.urls) == 1


GERMAN = {
    "connecting": "Verbindung wird aufgebaut…",
    "live": "Live verbunden",
    "4403": "Sie dürfen diesen Vorgang nicht verfolgen.",
    "reconnecting": "Neuer Versuch in {seconds} s…",
}


def test_connection_texts_are_the_container_s_own(page: Page) -> None:
    FakeServer(page, snapshot)
    serve(page, container(ws="/ws/liveops/", texts=GERMAN), paused=False)
    expect(connection(page)).to_have_text("Live verbunden")


def test_a_refusal_is_explained_in_the_container_s_language(page: Page) -> None:
    FakeServer(page, lambda ws, n: ws.close(code=4403, reason="no"))
    serve(page, container(ws="/ws/liveops/", texts=GERMAN))
    expect(connection(page)).to_have_text("Sie dürfen diesen Vorgang nicht verfolgen.")


def test_the_countdown_fills_in_its_seconds_and_missing_texts_fall_back_to_english(
    page: Page,
) -> None:
    FakeServer(page, lambda ws, n: ws.close(code=1011, reason="restart"))
    serve(page, container(ws="/ws/liveops/", texts=GERMAN), random=0.99)
    wait_for_attempts(page, 1)
    expect(connection(page)).to_have_text("Connection lost. Retrying…")  # not in GERMAN
    page.clock.run_for(500)
    page.clock.run_for(1_000)
    wait_for_attempts(page, 3)
    expect(connection(page)).to_have_text("Neuer Versuch in 2 s…")


# 1011: a server's internal error; 4503: ours, the server's channel layer failed.
@pytest.mark.parametrize("code", [1011, 4503])
def test_reconnect_backoff_doubles_with_full_jitter_up_to_the_cap(page: Page, code: int) -> None:
    FakeServer(page, lambda ws, n: ws.close(code=code, reason="restart"))
    # random() near 1 makes every delay just under its ceiling: 500 ms * 2**n, at most 15 s.
    serve(page, container(ws="/ws/liveops/"), random=RANDOM)
    ceilings = [500, 1000, 2000, 4000, 8000, 15000, 15000]
    texts = [LOST, LOST, "Reconnecting in 2 s…", "Reconnecting in 4 s…", "Reconnecting in 8 s…"]
    texts += ["Reconnecting in 15 s…"] * 2
    for attempt, (ceiling, shown) in enumerate(zip(ceilings, texts, strict=True), start=1):
        wait_for_attempts(page, attempt)
        expect(connection(page)).to_have_text(shown)
        # Up to 10 ms short of the delay (ceiling * RANDOM), then past it: a margin, since
        # timers are whole milliseconds and the delay is not.
        page.clock.run_for(math.floor(ceiling * RANDOM) - 10)
        assert len(states(page)) == 2 * attempt, "reconnected before the backoff delay"
        page.clock.run_for(11)
        page.wait_for_function(f"() => window.states.length > {2 * attempt}")


@pytest.mark.parametrize(("open_for", "shown"), [(9_999, "Reconnecting in 4 s…"), (10_000, LOST)])
def test_backoff_resets_after_a_connection_stayed_open_ten_seconds(
    page: Page, open_for: int, shown: str
) -> None:
    # Three quick failures raise the backoff to 4 s; the fourth connection stays up.
    def accept(ws: WebSocketRoute, n: int) -> None:
        if n <= 3:
            ws.close(code=1011)
        else:
            snapshot(ws, n)

    server = FakeServer(page, accept)
    serve(page, container(ws="/ws/liveops/"), random=RANDOM)
    for attempt, ceiling in enumerate((500, 1000, 2000), start=1):
        wait_for_attempts(page, attempt)
        page.clock.run_for(ceiling)
    expect(connection(page)).to_have_text("Live")
    page.clock.run_for(open_for)
    server.routes[-1].close(code=1011)
    expect(connection(page)).to_have_text(shown)


def test_no_reconnect_when_every_operation_on_the_socket_is_finished(page: Page) -> None:
    server = FakeServer(page, lambda ws, n: snapshot(ws, n, terminal=True))
    serve(page, container(ws="/ws/liveops/"))
    expect(page.locator(f"#{rid('status')}")).to_have_text("snapshot 1")
    server.routes[0].close(code=1000)
    expect(page.locator(f"#liveop-{PK}")).to_have_attribute("data-liveop-connection", "closed")
    expect(connection(page)).to_have_text("")
    page.clock.run_for(60_000)
    assert states(page)[-1] == "closed"
    assert states(page).count("connecting") == 1
    assert page.evaluate("liveops.sockets.size") == 0


def test_rejected_operation_is_left_out_of_the_next_connection(page: Page) -> None:
    def accept(ws: WebSocketRoute, n: int) -> None:
        if n == 1:
            ws.send(json.dumps({"liveop_rejected": {"op": TOKEN, "code": 4404, "reason": "gone"}}))
            ws.close(code=1011)
        else:
            snapshot(ws, n)

    server = FakeServer(page, accept)
    serve(page, container(ws="/ws/liveops/"), container(pk=PK_B, token=TOKEN_B, ws="/ws/liveops/"))
    expect(connection(page)).to_have_text("This operation no longer exists.")
    expect(connection(page, PK_B)).to_have_text(LOST)
    page.clock.run_for(500)
    expect(page.locator(f"#{rid('status', PK_B)}")).to_have_text("snapshot 2")
    assert server.ops(1) == [TOKEN_B]
    expect(connection(page)).to_have_text("This operation no longer exists.")


def test_socket_closes_when_every_operation_on_it_is_rejected(page: Page) -> None:
    rejection = {"liveop_rejected": {"op": TOKEN, "code": 4403, "reason": "no"}}
    FakeServer(page, lambda ws, n: ws.send(json.dumps(rejection)))
    serve(page, container(ws="/ws/liveops/"))
    expect(connection(page)).to_have_text("You are not allowed to watch this operation.")
    assert page.evaluate("liveops.sockets.size") == 0
    page.clock.run_for(60_000)
    assert states(page).count("connecting") == 1


def test_connect_rescans_after_containers_are_added_or_removed(page: Page) -> None:
    server = FakeServer(page, snapshot)
    serve(page, container(ws="/ws/liveops/"), paused=False)
    expect(page.locator(f"#{rid('status')}")).to_have_text("snapshot 1")
    page.evaluate(
        "html => { document.body.insertAdjacentHTML('beforeend', html); liveops.connect(); }",
        container(pk=PK_B, token=TOKEN_B, ws="/ws/liveops/"),
    )
    expect(page.locator(f"#{rid('status', PK_B)}")).to_have_text("snapshot 2")
    assert server.ops(1) == [TOKEN, TOKEN_B]
    assert page.evaluate("liveops.sockets.size") == 1
    page.evaluate(
        "ids => { ids.forEach(id => document.getElementById(id).remove()); liveops.connect(); }",
        [f"liveop-{PK}", f"liveop-{PK_B}"],
    )
    assert page.evaluate("liveops.sockets.size") == 0


# ---- a server that does not take WebSockets, or has no channel layer ----------------------

NOWS = (
    "This server does not accept WebSockets: serve the site with an ASGI server (uvicorn or "
    "daphne); see “Reconnecting… forever” in django-liveops' troubleshooting guide."
)
NOT_SET_UP = "Live updates are not set up on this server; its log says how to fix it."
CAP = 15_000


def attempts(page: Page) -> int:
    return states(page).count("connecting")


def wait_for_drop(page: Page, attempt: int) -> None:
    """Wait until the page's `attempt`-th connection has come and gone."""
    page.wait_for_function(
        f"""() => window.states.filter(s => s === "connecting").length === {attempt}
                  && window.states[window.states.length - 1] === "closed" """
    )


def retry_after(page: Page, delay: int, attempt: int) -> None:
    """Move the clock to just short of ``delay`` (no new attempt yet), then past it."""
    page.clock.run_for(math.floor(delay * RANDOM) - 10)
    assert attempts(page) == attempt, "reconnected before the backoff delay"
    page.clock.run_for(11)
    page.wait_for_function(
        f"() => window.states.filter(s => s === 'connecting').length > {attempt}"
    )


def test_handshakes_that_never_open_on_a_server_that_answers_say_it_takes_no_websockets(
    page: Page,
) -> None:
    # Closed by the handler, a routed socket never opens: a WSGI server's 404, say.
    fixed = False

    def accept(ws: WebSocketRoute, n: int) -> None:
        if fixed:
            snapshot(ws, n)
        else:
            ws.close(code=1006)

    errors = liveops_console_errors(page)
    FakeServer(page, accept)
    probes = serve(
        page, container(ws="/ws/liveops/", texts=GERMAN), random=RANDOM, http_answers=True
    )
    for attempt, ceiling in enumerate((500, 1000), start=1):
        wait_for_drop(page, attempt)
        expect(connection(page)).to_have_text(LOST)  # two failures may be a restart
        page.clock.run_for(ceiling)
    wait_for_drop(page, 3)
    expect(connection(page)).to_have_text(NOWS)  # not in GERMAN: the English text
    assert probes == [f"{ORIGIN}/"]  # one HEAD of the page itself, after the third
    assert len(errors) == 1
    assert "ws://liveops.test/ws/liveops/ never opened" in errors[0]
    assert "ASGI server" in errors[0]
    assert "op=" not in errors[0]  # the socket's address, without its grants

    # It keeps trying, at the cap, and keeps saying why (also while connecting).
    retry_after(page, 2000, 3)
    expect(connection(page)).to_have_text(NOWS)
    wait_for_drop(page, 4)
    retry_after(page, CAP, 4)
    wait_for_drop(page, 5)
    expect(connection(page)).to_have_text(NOWS)
    assert len(errors) == 1, "said once, not at every attempt"
    assert len(probes) == 3

    fixed = True  # the server was fixed and restarted: the page picks it up by itself
    page.clock.run_for(CAP)
    expect(connection(page)).to_have_text("Live verbunden")
    expect(page.locator(f"#{rid('status')}")).to_have_text("snapshot 6")


def test_a_server_that_is_down_is_not_taken_for_one_without_websockets(page: Page) -> None:
    errors = liveops_console_errors(page)
    FakeServer(page, lambda ws, n: ws.close(code=1006))
    probes = serve(page, container(ws="/ws/liveops/"), random=RANDOM)  # HEAD fails too
    for attempt, ceiling in enumerate((500, 1000, 2000, 4000), start=1):
        wait_for_drop(page, attempt)
        page.clock.run_for(ceiling)
    wait_for_drop(page, 5)
    # It asked after the third, fourth and fifth; the first two answers came back long
    # before this drop, and the countdown goes on.
    wait_until(page, lambda: len(probes) == 3, "three probes")
    expect(connection(page)).to_have_text("Reconnecting in 8 s…")
    assert errors == []


def test_the_notice_goes_back_to_the_countdown_when_the_server_goes_down(page: Page) -> None:
    FakeServer(page, lambda ws, n: ws.close(code=1006))
    probes = serve(page, container(ws="/ws/liveops/"), random=RANDOM, http_answers=True)
    for attempt, ceiling in enumerate((500, 1000), start=1):
        wait_for_drop(page, attempt)
        page.clock.run_for(ceiling)
    wait_for_drop(page, 3)
    expect(connection(page)).to_have_text(NOWS)
    page.route(f"{ORIGIN}/", lambda route: route.abort("connectionrefused"))  # now down
    page.clock.run_for(2000)
    wait_for_drop(page, 4)
    expect(connection(page)).to_have_text(re.compile(r"^Reconnecting in \d+ s…$"))
    assert len(probes) == 1  # the later probe went to the route that fails


def test_close_code_4500_is_explained_and_retried_at_the_cap(page: Page) -> None:
    fixed = False

    def accept(ws: WebSocketRoute, n: int) -> None:
        if fixed:
            snapshot(ws, n)
        else:
            ws.close(code=4500, reason="no channel layer")

    server = FakeServer(page, accept)
    probes = serve(page, container(ws="/ws/liveops/"), random=RANDOM, http_answers=True)
    wait_for_drop(page, 1)
    expect(connection(page)).to_have_text(NOT_SET_UP)
    expect(page.locator(f"#liveop-{PK}")).to_have_attribute("data-liveop-connection", "closed")
    # Not final, unlike 44xx; and no hurry: the first retry already waits at the cap.
    retry_after(page, CAP, 1)
    expect(connection(page)).to_have_text(NOT_SET_UP)  # still said while connecting
    wait_for_drop(page, 2)
    retry_after(page, CAP, 2)
    wait_for_drop(page, 3)
    expect(connection(page)).to_have_text(NOT_SET_UP)
    assert probes == []  # the server answered the socket: nothing to ask

    fixed = True
    page.clock.run_for(CAP)
    expect(connection(page)).to_have_text("Live")
    expect(page.locator(f"#{rid('status')}")).to_have_text("snapshot 4")
    assert len(server.urls) == 4


def test_the_client_removes_the_script_missing_notices_when_it_starts(page: Page) -> None:
    notice = '<p class="liveops-dev-notice" data-liveop-script-missing>liveops.js has not run</p>'
    page.set_content(document(container().replace("</section>", notice + "</section>"), notice))
    assert page.locator("[data-liveop-script-missing]").count() == 2
    page.add_script_tag(path=LIVEOPS_JS)
    expect(page.locator("[data-liveop-script-missing]")).to_have_count(0)
    # A container inserted later (a chained operation's) brings its own: connect() removes it.
    page.evaluate(
        "html => { document.body.insertAdjacentHTML('beforeend', html); liveops.connect(); }",
        container(pk=PK_B, token=TOKEN_B).replace("</section>", notice + "</section>"),
    )
    expect(page.locator("[data-liveop-script-missing]")).to_have_count(0)
    other = '<p class="liveops-dev-notice" data-liveop-dev-notice>served over WSGI</p>'
    page.evaluate("html => document.body.insertAdjacentHTML('beforeend', html)", other)
    page.evaluate("liveops.connect()")
    expect(page.locator("[data-liveop-dev-notice]")).to_have_count(1)  # the server's: kept
