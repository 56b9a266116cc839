"""Fixtures of the browser tests: the example project behind real ASGI servers, real Chromium.

Nothing here uses pytest-django's test database: the tests' own process is set up for
tests.settings, so the demo runs in subprocesses (``manage.py``, ``demo_helper.py``,
uvicorn, daphne) on a SQLite file in a temporary directory.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.browser.support import (
    ARTIFACTS,
    HELPER,
    PASSWORD,
    RECORDER,
    REDIS_URL,
    RUNNING,
    USERS,
    Demo,
    Server,
)
from tests.chromium import launch_chromium
from tests.conftest import need

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(report.failed for report in reports.values())


# --- the demo and its servers ----------------------------------------------------


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """A migrated demo database with the test users."""
    site = Demo(tmp_path_factory.mktemp("demo"))
    site.run("manage.py", "migrate", "--noinput")
    site.run(str(HELPER), "users", *USERS)
    return site


@pytest.fixture(scope="session")
def site(demo: Demo) -> Iterator[Server]:
    """The demo under uvicorn, as ``make demo`` runs it (in-memory layer, thread runner)."""
    server = demo.server("uvicorn").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def daphne_site(demo: Demo) -> Iterator[Server]:
    """The same demo under daphne."""
    server = demo.server("daphne").start()
    yield server
    server.stop()


@pytest.fixture
def redis_url() -> str:
    """A Redis database for channels_redis; skip (or fail in CI) when Redis is not there."""
    try:
        import redis
    except ImportError:  # pragma: no cover - channels-redis brings it
        need(False, "redis-py is not installed (pip install channels-redis)")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        need(False, f"Redis is not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


# --- Chromium ----------------------------------------------------------------------


# Module scope: one thread can run one sync Playwright at a time, and other browser
# test modules (tests/test_client_js.py) start their own in the same pytest run.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium; skip (or fail in CI) when there is none."""
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def login_state(browser: Any, site: Server) -> Callable[[str], dict[str, Any]]:
    """Return the cookies of a logged-in ``username`` (one login per user and module).

    Cookies do not depend on the port, and every server shares the database, so one
    session works on all of them.
    """
    states: dict[str, dict[str, Any]] = {}

    def get(username: str) -> dict[str, Any]:
        if username not in states:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{site.url}/accounts/login/")
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{site.url}/")
            states[username] = context.storage_state()
            context.close()
        return states[username]

    return get


@pytest.fixture
def open_page(
    request: pytest.FixtureRequest, browser: Any, login_state: Callable[[str], dict[str, Any]]
) -> Iterator[Callable[..., Any]]:
    """Return a factory of pages, each in its own context, logged in as ``user`` if given.

    Every page records what its live containers show (RECORDER). At teardown a failed
    test leaves a screenshot per page in test-artifacts/browser/failures/ and prints the
    servers' logs; an uncaught JavaScript error fails the test.
    """
    contexts: list[Any] = []
    pages: list[Any] = []
    errors: list[str] = []

    def make(user: str | None = None, *, javascript: bool = True) -> Any:
        context = browser.new_context(
            storage_state=login_state(user) if user else None,
            viewport={"width": 1100, "height": 900},
            java_script_enabled=javascript,
        )
        context.add_init_script(RECORDER)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        pages.append(page)
        return page

    yield make

    if _failed(request):
        folder = ARTIFACTS / "failures"
        folder.mkdir(parents=True, exist_ok=True)
        for n, page in enumerate(pages):
            with contextlib.suppress(Exception):
                page.screenshot(path=str(folder / f"{request.node.name}-{n}.png"), full_page=True)
        for server in list(RUNNING):
            print(f"--- {server.kind} on {server.port} ---\n{server.tail()}")
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def cleanup(request: pytest.FixtureRequest) -> Iterator[Callable[[Any], Any]]:
    """Return ``stop_later(thing)``: stop that Server or kill that process at teardown.

    Ask for it before ``open_page``, so pages close (and a failure prints the logs of
    the servers) before the servers stop.
    """
    things: list[Any] = []

    def stop_later(thing: Any) -> Any:
        things.append(thing)
        return thing

    yield stop_later
    if _failed(request):
        for thing in things:
            if not isinstance(thing, Server):
                log = thing.log_path.read_text(errors="replace")
                print(f"--- worker {thing.args} (exit {thing.poll()}) ---\n{log[-4000:]}")
    for thing in reversed(things):
        if isinstance(thing, Server):
            thing.stop()
        elif thing.poll() is None:
            thing.terminate()
            try:
                thing.wait(5)
            except subprocess.TimeoutExpired:
                thing.kill()
                thing.wait(5)
