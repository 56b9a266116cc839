"""The package's own pages (liveops/base.html, its live page and list), as a person sees them.

Served by the demo with ``demo_site.settings_plain``: the same project, except that the
package's ``liveops/base.html`` is used instead of the demo's override. Each page is
checked at a phone's width and a desktop's, in the light and the dark scheme: no axe-core
violation, nothing wider than the screen, and a bar that shows how its operation ended.
A screenshot of each lands in test-artifacts/browser/default-pages/.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.axe import assert_accessible
from tests.browser.pages import start
from tests.browser.support import ARTIFACTS, HELPER, Demo, LivePage, Server

pytestmark = pytest.mark.browser

#: The user whose operations these pages show: nobody else's tests start any for her.
USER = "dora"
DURATION = "Duration (seconds)"
LIST_PATH = "/operations/demo.longimport/"
SHOTS = ARTIFACTS / "default-pages"

WIDTHS = (390, 1280)
SCHEMES = ("light", "dark")
VIEWS = [pytest.param((w, s), id=f"{w}px-{s}") for w in WIDTHS for s in SCHEMES]


@pytest.fixture(scope="module")
def plain_site(demo: Demo) -> Iterator[Server]:
    """The demo under uvicorn with the package's own liveops/base.html."""
    demo.run(str(HELPER), "users", USER)
    server = demo.server("uvicorn", DJANGO_SETTINGS_MODULE="demo_site.settings_plain").start()
    yield server
    server.stop()


@dataclass(frozen=True)
class Operations:
    """The live pages of one operation in each state, all long imports but the failing job."""

    running: str
    cancelled: str
    finished: str
    failed: str
    failing_job: str


def _status(page: Any) -> Any:
    return LivePage.of(page).region("status")


@pytest.fixture(scope="module")
def operations(
    demo: Demo, plain_site: Server, browser: Any, login_state: Any
) -> Iterator[Operations]:
    """Start, through the pages, one operation that runs on and one of each end."""
    context = browser.new_context(storage_state=login_state(USER))
    page = context.new_page()
    page.set_default_timeout(15_000)
    home = f"{plain_site.url}/"

    page.goto(home)
    start(page, "Long import", "Start a long import", **{DURATION: "300"})
    expect(_status(page)).to_contain_text("In progress")
    running = page.url

    page.goto(home)
    start(page, "Long import", "Start a long import", **{DURATION: "300"})
    expect(_status(page)).to_contain_text("In progress")
    page.get_by_role("button", name="Cancel").click()
    expect(_status(page)).to_contain_text("Cancelled")
    cancelled = page.url

    page.goto(home)
    start(page, "Long import", "Start a long import", **{DURATION: "0.5"})
    expect(_status(page)).to_contain_text("Finished")
    finished = page.url

    page.goto(home)
    start(page, "Failing job", "Start a failing job")
    expect(_status(page)).to_contain_text("Failed")
    failing_job = page.url

    # A long import that fails: a negative duration makes its first time.sleep() raise.
    op = demo.create("demo.longimport", USER, seconds=-1)
    worker = demo.worker(op, demo.env)
    assert worker.wait(60) == 0, worker.log_path.read_text()  # type: ignore[attr-defined]
    failed = plain_site.url + op.url

    yield Operations(running, cancelled, finished, failed, failing_job)

    page.goto(running)
    page.get_by_role("button", name="Cancel").click()
    expect(_status(page)).to_contain_text("Cancelled")
    context.close()


@pytest.fixture
def view(request: pytest.FixtureRequest, open_page: Any) -> Any:
    """A page of ``USER`` at the parametrized width, in the parametrized scheme."""
    width, scheme = request.param
    page = open_page(USER)
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    return page


def _check(page: Any, what: str) -> None:
    """No axe violation in the page's scheme, nothing wider than the screen; a screenshot."""
    width = page.viewport_size["width"]
    scheme = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    scheme = "dark" if scheme else "light"
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = what.replace(" ", "-").replace("'", "")
    page.screenshot(path=str(SHOTS / f"{name}-{width}-{scheme}.png"), full_page=True)
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{what} is {widths[0]} px wide in a {widths[1]} px window"
    assert_accessible(page, f"{what} at {width} px", schemes=(scheme,))


@pytest.mark.parametrize("view", VIEWS, indirect=True)
def test_list_page(plain_site: Server, operations: Operations, view: Any) -> None:
    view.goto(plain_site.url + LIST_PATH)
    states = view.locator(".liveops-row .liveops-row-state")
    for state in ("In progress", "Cancelled", "Failed", "Finished"):
        expect(states.filter(has_text=state)).not_to_have_count(0)
    expect(view.locator(".liveops-list-connection")).to_have_text("Live")
    # The headers stay a table's for assistive technology, stacked or not.
    expect(view.get_by_role("columnheader", name="Owner")).to_have_count(1)
    expect(view.get_by_role("cell", name=USER).first).to_be_attached()
    assert view.evaluate("getComputedStyle(document.body).fontFamily").startswith("system-ui")
    _check(view, "the default list page")


@pytest.mark.parametrize("view", VIEWS, indirect=True)
def test_failed_live_page(operations: Operations, view: Any) -> None:
    view.goto(operations.failing_job)
    live = LivePage.of(view)
    expect(live.region("result").get_by_role("alert")).to_contain_text("The operation failed")
    live.wait_for_connection("state === 'open' || state === 'closed'")
    _check(view, "the default live page of a failed job")


@pytest.mark.parametrize("view", VIEWS, indirect=True)
def test_running_and_ended_live_pages(operations: Operations, view: Any) -> None:
    for what, url in [
        ("running", operations.running),
        ("cancelled", operations.cancelled),
        ("finished", operations.finished),
        ("failed", operations.failed),
    ]:
        view.goto(url)
        LivePage.of(view).wait_for_connection("state === 'open' || state === 'closed'")
        _check(view, f"the default live page of a {what} import")


# The colour of the filled part of a bar, read from a photograph of it: Chromium does not
# give the computed style of ::-webkit-progress-value.
PIXEL = """async ([png, x, y]) => {
  const image = new Image();
  image.src = "data:image/png;base64," + png;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
}"""


def _bar_fill(page: Any) -> tuple[list[int], str]:
    """Return the RGB of the filled part of the operation's bar as drawn, and its CSS colour.

    liveops.css fills the bar with the meter's ``color`` (currentcolor).
    """
    live = LivePage.of(page)
    meter = live.region("progress").locator("progress")
    page.wait_for_function(
        "id => Number(document.querySelector('#' + id + '-progress progress')?.value) >= 5",
        arg=live.container_id,
        timeout=20_000,
    )
    box = meter.bounding_box()
    assert box is not None
    # The page, clipped to the bar: a live update may replace the element meanwhile.
    png = base64.b64encode(page.screenshot(clip=box)).decode()
    # Inside the fill: a few pixels from the left edge, half-way down.
    drawn = list(page.evaluate(PIXEL, [png, 4, int(box["height"] // 2)]))
    return drawn, meter.evaluate("el => getComputedStyle(el).color")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_failed_bar_is_not_drawn_as_a_running_one(
    operations: Operations, open_page: Any, scheme: str
) -> None:
    page = open_page(USER)
    page.emulate_media(color_scheme=scheme)
    page.goto(operations.running)
    running, running_css = _bar_fill(page)
    page.goto(operations.failing_job)
    failed, failed_css = _bar_fill(page)
    assert failed_css != running_css, f"a failed bar is {failed_css}, as a running one"
    assert failed != running, f"a failed bar is drawn {failed}, as a running one ({running})"
    red, green, blue = failed
    assert red > max(green, blue), f"a failed bar is drawn {failed}, not in a red"


def test_a_cancel_stops_the_long_import_in_its_download(
    operations: Operations, open_page: Any
) -> None:
    # Download is the demo's own loop (p.percent by hand): it asks p.check_cancelled().
    page = open_page(USER)
    page.goto(operations.cancelled)
    stages = LivePage.of(page).region("stages")
    expect(stages).to_contain_text("Download (cancelled)")
    expect(stages).to_contain_text("0 of 3 stages done")


def test_the_demo_pages_fit_a_phone(site: Server, operations: Operations, open_page: Any) -> None:
    # The demo's own base template (its header) and stylesheet, at a phone's width.
    page = open_page(USER)
    page.set_viewport_size({"width": 390, "height": 900})
    for path in ("/", LIST_PATH, urlsplit(operations.failing_job).path):
        page.goto(site.url + path)
        expect(page.locator(".site-header")).to_be_visible()
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the demo's {path} is {widths[0]} px wide at 390 px"
