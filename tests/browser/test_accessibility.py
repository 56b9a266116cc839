"""No axe-core violations on the demo's pages, in the light and the dark colour scheme.

Every page is checked in each state a person meets: logged out and in, an operation
running, finished, failed (for its owner and for staff), cancelled, several at once, and
the connection line when the socket is refused or lost. One more page holds every state
the package's stylesheet draws, rendered by the package's own templates, with
liveops.css alone (the demo cannot reach some of them: a failed stage, warning levels).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.axe import assert_accessible
from tests.browser.pages import start
from tests.browser.support import ROOT, EndsHeld, LivePage, Server

pytestmark = pytest.mark.browser

DURATION = "Duration (seconds)"
LIVEOPS_CSS = ROOT / "src" / "liveops" / "static" / "liveops" / "liveops.css"


def _log_lines(live: LivePage, at_least: int) -> None:
    expect(live.region("log").locator("li").nth(at_least - 1)).to_be_attached(timeout=15_000)


# --- pages without an operation ----------------------------------------------------


def test_login_page(site: Server, open_page: Any) -> None:
    page = open_page()
    page.goto(f"{site.url}/accounts/login/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert_accessible(page, "the login page")


def test_home_page(site: Server, open_page: Any) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    expect(page.get_by_role("region", name="Long import")).to_be_visible()
    assert_accessible(page, "the home page")


# --- one operation's live page --------------------------------------------------------


def test_live_page_while_running(site: Server, open_page: Any) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "60"})
    expect(live.region("status")).to_contain_text("In progress", timeout=15_000)
    expect(live.region("progress").locator("progress")).to_be_visible()
    expect(live.region("stages")).to_contain_text("(in progress)")
    _log_lines(live, 2)
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    live.wait_for_connection("state === 'open'")
    assert_accessible(page, "a long import while it runs")
    page.get_by_role("button", name="Cancel").click()  # no need to let it run on
    expect(live.region("status")).to_contain_text("Cancelled", timeout=15_000)


def test_live_page_cancelling_then_cancelled(site: Server, open_page: Any) -> None:
    page = open_page("alice")
    ends = EndsHeld(page)  # or the end could replace "Cancelling…" before axe looks
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "20"})
    expect(live.region("status")).to_contain_text("In progress", timeout=15_000)
    _log_lines(live, 2)
    page.get_by_role("button", name="Cancel").click()
    expect(live.region("notice")).to_have_text("Cancelling…", timeout=5_000)
    assert_accessible(page, "a long import being cancelled")
    ends.release()

    expect(live.region("status")).to_contain_text("Cancelled", timeout=15_000)
    expect(page.get_by_role("button", name="Run again")).to_be_visible()
    expect(live.region("stages")).to_contain_text("(cancelled)")
    assert_accessible(page, "a cancelled long import")


def test_live_page_finished_quick_count(site: Server, open_page: Any) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Quick count", "Start a quick count")
    expect(live.region("result")).to_contain_text("Counted", timeout=15_000)
    expect(page.get_by_role("button", name="Run again")).to_be_visible()
    assert_accessible(page, "a finished quick count")


def test_live_page_finished_long_import(site: Server, open_page: Any) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "2"})
    expect(live.region("result")).to_contain_text("Import finished", timeout=30_000)
    expect(live.region("stages")).to_contain_text("3 of 3 stages done")
    expect(page.get_by_role("button", name="Run again")).to_be_visible()
    assert_accessible(page, "a finished long import")


def test_live_page_failed_seen_by_owner_and_by_staff(site: Server, open_page: Any) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Failing job", "Start a failing job")
    expect(live.region("status")).to_contain_text("Failed", timeout=15_000)
    expect(live.region("result").get_by_role("alert")).to_contain_text("The operation failed")
    assert_accessible(page, "a failed job, seen by its owner")

    staff = open_page("stella")
    staff.goto(page.url)
    result = LivePage.of(staff).region("result")
    result.get_by_text("Traceback (visible to staff)").click()
    expect(result.locator("pre")).to_contain_text("ConnectionError")
    assert_accessible(staff, "a failed job, seen by staff with its traceback open")


def test_several_at_once(site: Server, open_page: Any) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    section = page.get_by_role("region", name="Several at once")
    # The imports stop at their next cancel check (within a second); the failing job,
    # which never checks, is still running then.
    section.get_by_label("Duration of the longest (seconds)").fill("30")
    section.get_by_role("button", name="Start all three").click()
    page.wait_for_url(re.compile(r"/several/\d+/$"))
    containers = page.locator("[data-liveop]")
    expect(containers).to_have_count(3)
    for n in range(3):
        expect(containers.nth(n).locator(".liveops-status")).to_contain_text("In progress")
    assert_accessible(page, "three operations at once, running")

    imports = range(2)  # the long import and the streamed one
    for n in imports:
        containers.nth(n).get_by_role("button", name="Cancel").click()
    for n in imports:
        status = containers.nth(n).locator(".liveops-status")
        expect(status).to_contain_text("Cancelled", timeout=15_000)
        expect(containers.nth(n).get_by_role("button", name="Run again")).to_be_visible()
    assert_accessible(page, "three operations at once, two of them cancelled")


def test_sales_report_with_its_chart_then_its_sending(site: Server, open_page: Any) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    fields = {DURATION: "6", "Recipients": "40"}
    report = start(page, "Sales report", "Start a sales report", **fields)
    expect(report.region("chart").locator("meter")).not_to_have_count(0, timeout=15_000)
    assert_accessible(page, "a sales report drawing its chart (a custom region)")
    page.wait_for_url(re.compile(r"/operations/demo\.sendreport/"), timeout=20_000)
    sending = page.locator("[data-liveop]")
    expect(sending.locator(".liveops-eta")).to_contain_text("left", timeout=15_000)
    assert_accessible(page, "the sending the report continued in, with its time left")


def test_a_live_page_in_another_language(site: Server, open_page: Any) -> None:
    page = open_page("bob")
    page.goto(f"{site.url}/")
    page.get_by_label("Language of new operations").select_option("uk")
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_label("Language of new operations")).to_have_value("uk")
    live = start(page, "Quick count", "Start a quick count")
    expect(page.locator("[data-liveop]")).to_have_attribute("lang", "uk")
    expect(live.region("status")).to_have_attribute("data-liveop-terminal", "", timeout=15_000)
    assert_accessible(page, "a finished quick count in Ukrainian")


# --- the connection line ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "state", "text"),
    [
        (4403, "rejected", "You are not allowed to watch this operation."),
        (1011, "closed", re.compile(r"Connection lost|Reconnecting in")),
    ],
    ids=["rejected", "lost"],
)
def test_connection_refused_or_lost(
    site: Server, open_page: Any, code: int, state: str, text: Any
) -> None:
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Long import", "Start a long import", **{DURATION: "60"})
    expect(live.region("status")).to_contain_text("In progress", timeout=15_000)
    # Playwright answers the page's sockets in the server's stead and closes them at once.
    page.route_web_socket(re.compile(r".*"), lambda ws: ws.close(code=code))
    page.reload()
    live.wait_for_connection(f"state === {state!r}")
    expect(live.region("connection")).to_have_text(text)
    assert_accessible(page, f"a live page whose socket was {state}")
    # No need to let it run on: it stops at its next cancel check. (Cancelled before the
    # reload, it could end first, and a page of an ended operation does not reconnect.)
    page.get_by_role("button", name="Cancel").click()


# --- every state the package's stylesheet draws ------------------------------------------

CONNECTION_TEXT = {
    "open": "Live",
    "connecting": "Connecting…",
    "closed": "Reconnecting in 3 s…",
    "rejected": "You are not allowed to watch this operation.",
}


def _gallery() -> str:
    """Return a page of containers in every state, rendered by the package's templates.

    Nothing runs and nothing is stored: each container is rendered from a state view,
    then given the connection state liveops.js would set (without the script, it stays).
    """
    from liveops._fragments import render_container
    from liveops._state import Phase, StageState, StateView
    from tests.testapp.models import Scripted

    stages = tuple(
        (state.capitalize(), StageState(state))
        for state in ("done", "failed", "active", "cancelled", "pending")
    )
    log = tuple((n, f"Line {n}: {'a line long enough to wrap ' * (n % 4)}") for n in range(1, 40))
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nConnectionError: 503'
    views = {
        "open": StateView(
            phase=Phase.STARTED,
            status_text="Working",
            percent=42.0,
            done=42,
            total=100,
            stages=stages,
            log_tail=log,
        ),
        "connecting": StateView(phase=Phase.STARTED, status_text="Starting"),
        "closed": StateView(
            phase=Phase.STARTED,
            status_text="Slow source",
            status_level="warning",
            done=1234,
            track_label="Rows",
            track_unit="row",
            cancel_requested=True,
        ),
        "rejected": StateView(phase=Phase.NOT_STARTED),
        "finished": StateView(
            phase=Phase.FINISHED_OK,
            status_text="All good",
            status_level="success",
            percent=100.0,
            result_context={"rows": 226, "skipped": 3},
        ),
        "failed": StateView(
            phase=Phase.FINISHED_ERROR,
            status_text="It broke",
            status_level="error",
            error_message="The billing service did not answer.",
            traceback=traceback,
        ),
        "cancelled": StateView(phase=Phase.CANCELLED, status_text="Stopped"),
    }
    parts = []
    for name, view in views.items():
        op = Scripted(pk=uuid.uuid4())
        op.get_success_url = lambda: "#next"  # type: ignore[method-assign]
        html = render_container(
            op,
            view,
            staff=True,
            ws_path="/ws/liveops/",
            log_max=200,
            cancel_url="#cancel",
            retry_url="#retry",
            csrf_token="token",
        )
        if name == "connecting":  # liveops.js disables a button while its form posts
            html = html.replace('class="liveops-button"', 'class="liveops-button" disabled')
        details = '<details class="liveops-traceback"'
        html = html.replace(details, f"{details} open")
        state = name if name in CONNECTION_TEXT else "closed"
        html = html.replace('class="liveops"', f'class="liveops" data-liveop-connection="{state}"')
        head, tail = html.split('class="liveops-connection"', 1)
        text = CONNECTION_TEXT.get(name, "")
        html = f'{head}class="liveops-connection"{tail.replace("></p>", f">{text}</p>", 1)}'
        parts.append(f"<h2>{name.capitalize()}</h2>\n{html}")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Every state</title>'
        "</head><body><main><h1>Every state of liveops.css</h1>\n"
        + "\n".join(parts)
        + "</main></body></html>"
    )


def _open_gallery(open_page: Any) -> Any:
    page = open_page()
    page.set_content(_gallery())
    page.add_style_tag(path=str(LIVEOPS_CSS))
    expect(page.locator(".liveops")).to_have_count(7)
    return page


def test_every_state_the_package_stylesheet_draws(open_page: Any) -> None:
    page = _open_gallery(open_page)
    assert_accessible(page, "every state of liveops.css, alone")


# --- the dark scheme applies ------------------------------------------------------------

# An element's text and background colours, the background's relative luminance and the
# contrast ratio between the two, as WCAG 2 defines them.
COLOURS = """(selector) => {
  const el = document.querySelector(selector);
  const style = getComputedStyle(el);
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [r, g, b] = rgb(c).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [hi, lo] = [lum(style.color), lum(style.backgroundColor)].sort((a, b) => b - a);
  return {color: style.color, background: style.backgroundColor,
          luminance: lum(style.backgroundColor), contrast: (hi + 0.05) / (lo + 0.05)};
}"""


def _assert_dark_applies(page: Any) -> None:
    schemes = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        schemes[scheme] = page.evaluate(COLOURS, ".liveops")
    light, dark = schemes["light"], schemes["dark"]
    assert dark["background"] != light["background"], schemes
    assert dark["luminance"] < light["luminance"], schemes
    for colours in schemes.values():
        assert colours["contrast"] >= 4.5, schemes


def test_dark_scheme_applies(site: Server, open_page: Any) -> None:
    # liveops.css alone...
    _assert_dark_applies(_open_gallery(open_page))

    # ...and in the demo, whose stylesheet sets the container's colours to the page's.
    page = open_page("alice")
    page.goto(f"{site.url}/")
    live = start(page, "Quick count", "Start a quick count")
    expect(live.region("result")).to_contain_text("Counted", timeout=15_000)
    _assert_dark_applies(page)


# --- the developer's notices (DEBUG) ------------------------------------------------------

SCRIPT_MISSING = (
    '<p class="liveops-dev-notice" data-liveop-script-missing>liveops.js has not run.</p>'
)
DEV_NOTICE = '<p class="liveops-dev-notice" data-liveop-dev-notice>Served over WSGI.</p>'
VISIBILITY = "el => getComputedStyle(el).visibility"


def test_developer_notices(open_page: Any) -> None:
    page = open_page()
    # Nothing removes the "has not run" notice here: the page has no liveops.js.
    head, tail = _gallery().split('<p id="', 1)
    page.set_content(f'{head}{SCRIPT_MISSING}{DEV_NOTICE}<p id="{tail}')
    page.add_style_tag(path=str(LIVEOPS_CSS))
    missing = page.locator("[data-liveop-script-missing]")
    notice = page.locator("[data-liveop-dev-notice]")
    # Hidden at first, from assistive technology too: a slow script does not flash it.
    assert missing.evaluate(VISIBILITY) == "hidden"
    expect(page.get_by_text("liveops.js has not run.")).to_be_hidden()
    expect(notice).to_be_visible()
    assert missing.evaluate("el => getComputedStyle(el).animationDelay") == "2s"
    expect(missing).to_be_visible(timeout=5_000)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        colours = page.evaluate(COLOURS, "[data-liveop-dev-notice]")
        assert colours["contrast"] >= 4.5, (scheme, colours)
    assert_accessible(page, "the developer's notices")
