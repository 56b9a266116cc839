"""No worker takes the operation: the page, the list, the log and the sweep say so (issue 12).

Real processes: PostgreSQL, the Celery broker on Redis or django-tasks-db's queue table,
a uvicorn server with a Redis channel layer, Chromium, and ``manage.py liveops_sweep``
in a process of its own. Each operation is queued, through each outside runner, to a
queue no worker reads (a worker on another queue, a stopped one: what users meet). After
``WAIT_WARNING_SECONDS`` the open page says "Waiting for a worker for N seconds" and what
that means, without a reload; so does the open list; the server logs what to check; the
sweep reports the operation, and with ``--end-waiting`` ends it, which the page shows;
a cancel from the page still ends a waiting operation at once.

    pytest -m postgres --ds=tests.settings_pg -p no:cacheprovider tests/test_long_wait_stack.py
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from liveops.lifecycle import NEVER_STARTED_MESSAGE
from liveops.models import Phase
from tests.e2e_support import (
    BEAT,
    STALE,
    Server,
    enqueue_through,
    forget_redis_keys,
    logs,
    stack_env,
)
from tests.pg_workers import python, require_postgres, require_redis
from tests.settings_stack import LAYER_URL, redis_channel_layers
from tests.testapp.models import Endless

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.usefixtures("services"),  # first: before pytest-django creates the database
    pytest.mark.django_db(transaction=True),
]

#: The flag comes this soon; the watchdog looks every BEAT.
WAIT_WARNING = 2.0
#: The flag is on the page within WAIT_WARNING plus a beat and a send; this is the ceiling.
FLAG_TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def services() -> None:
    require_postgres()
    require_redis()


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"lo-wait-{uuid.uuid4().hex[:8]}"  # short: django-tasks-db queue names are 32 chars


@pytest.fixture(params=["celery", "tasks"])
def runner(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env(prefix: str, runner: str) -> dict[str, str]:
    """Of the server and the sweep: the runner is the test's, whose queue no worker reads."""
    env = stack_env(
        LAYER_URL,
        prefix,
        LIVEOPS_TEST_HEARTBEAT=str(BEAT),
        LIVEOPS_TEST_STALE=str(STALE),
        LIVEOPS_TEST_WAIT_WARNING=str(WAIT_WARNING),
        LIVEOPS_TEST_RUNNER=runner,
        LIVEOPS_TEST_CELERY_QUEUE=f"{prefix}-nobody",
        LIVEOPS_TEST_TASKS_QUEUE=f"{prefix}-nobody",
    )
    return env


@pytest.fixture
def server(env: dict[str, str], settings: Any, prefix: str) -> Iterator[Server]:
    settings.CHANNEL_LAYERS = redis_channel_layers(LAYER_URL, prefix)  # the server's layer
    started = Server("uvicorn", env)
    try:
        started.wait_until_ready()
        yield started
    finally:
        started.process.stop()
        forget_redis_keys(django_settings.CELERY_BROKER_URL, prefix)
        forget_redis_keys(LAYER_URL, prefix)


def _sweep(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        python("-m", "django", "liveops_sweep", *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_an_operation_no_worker_takes_is_flagged_reported_and_can_be_ended_or_cancelled(
    runner: str,
    browser: Any,
    server: Server,
    env: dict[str, str],
    prefix: str,
    settings: Any,
    user: Any,
) -> None:
    from playwright.sync_api import expect

    kept, ended = Endless.objects.create(owner=user), Endless.objects.create(owner=user)
    for op in (kept, ended):
        enqueue_through(op, runner, f"{prefix}-nobody", settings, WAIT_WARNING_SECONDS=WAIT_WARNING)

    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    context = browser.new_context()
    try:
        context.add_cookies(
            [{"name": name, "value": client.cookies[name].value, "url": server.url}]
        )
        page, listing = context.new_page(), context.new_page()
        page.goto(server.url + kept.get_absolute_url())
        listing.goto(f"{server.url}/operations/{Endless.live_label()}/")
        status = page.locator(f"#liveop-{kept.pk}-status")
        expect(page.locator(f"#liveop-{kept.pk}-connection")).to_have_text("Live")
        expect(status).to_have_text("Waiting to start")
        flagged = re.compile(r"Waiting for a worker for \d+\s+seconds?")
        try:
            expect(status).to_have_text(flagged, timeout=FLAG_TIMEOUT_MS)
            expect(page.locator(f"#liveop-{kept.pk}-notice")).to_contain_text(
                "No worker has started this operation yet."
            )
            row = listing.locator(f"#liveop-row-{kept.pk} .liveops-row-state")
            expect(row).to_have_text(flagged, timeout=FLAG_TIMEOUT_MS)
        except AssertionError as exc:
            raise AssertionError(f"{exc}{logs([server.process])}") from exc
        assert re.search(
            rf"{re.escape(str(kept))} has waited \d+ s for a worker \(RUNNER '{runner}'\)",
            server.process.output(),
        ), logs([server.process])

        reported = _sweep(env)
        assert f"testapp.Endless {kept.pk}: no worker has started it for" in reported
        assert f"testapp.Endless {ended.pk}: no worker has started it for" in reported
        assert "2 operation(s) waiting for a worker for more than 2 s still waiting." in reported

        page.locator(".liveops-cancel button").click()  # the page's own form
        expect(status).to_have_text("Cancelled")
        kept.refresh_from_db()
        assert kept.get_state() is Phase.CANCELLED

        page.goto(server.url + ended.get_absolute_url())
        expect(page.locator(f"#liveop-{ended.pk}-connection")).to_have_text("Live")
        assert "testapp.Endless: 1 waiting operation(s) ended." in _sweep(env, "--end-waiting")
        expect(page.locator(f"#liveop-{ended.pk}-status")).to_have_text("Failed")
        expect(page.locator(f"#liveop-{ended.pk}-result")).to_contain_text(NEVER_STARTED_MESSAGE)
        ended.refresh_from_db()
        assert (ended.get_state(), ended.started_on) == (Phase.FINISHED_ERROR, None)
    finally:
        context.close()
