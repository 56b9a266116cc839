"""The whole stack with real processes (issue 3, "Proof with real processes").

PostgreSQL and Redis; a Celery worker and a django-tasks-db ``db_worker``; two ASGI
servers, uvicorn (A) and daphne (B), with a channels_redis layer. Chromium shows the
live page of an operation on A while a WebSocket client watches it on B; the operation
runs in a worker. Both must see its live percent and log mid-run, then its result in
place; with the worker killed (SIGKILL), both must see it lost within STALE_SECONDS
and a margin. Each scenario runs once per runner: ``celery`` and ``tasks``.

    pytest -m postgres --ds=tests.settings_pg -p no:cacheprovider tests/test_e2e_stack.py

The test process uses tests.settings_pg with the same layer as the other processes
(tests.settings_stack); all of them share pytest-django's test database.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from liveops.lifecycle import LOST_MESSAGE
from liveops.models import LiveOperation, Phase
from tests.chromium import launch_chromium
from tests.e2e_support import (
    BEAT,
    SHOW_TIMEOUT,
    STALE,
    START_TIMEOUT,
    Server,
    SocketViewer,
    celery_worker,
    db_worker,
    enqueue_through,
    forget_redis_keys,
    kill,
    logs,
    require_stack_services,
    stack_env,
    wait_for_celery,
    wait_for_db_worker,
)
from tests.pg_workers import (
    WorkerProcess,
)
from tests.settings_stack import LAYER_URL, redis_channel_layers
from tests.testapp.models import Pulsed

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.usefixtures("services"),  # first: before pytest-django creates the database
    pytest.mark.django_db(transaction=True),
]

RUNNERS = ["celery", "tasks"]
#: After the kill, both viewers show "lost" within STALE_SECONDS plus this: the
#: servers' watchdogs look every HEARTBEAT_SECONDS, then one send through Redis.
LOST_MARGIN = 4.0


# --- services and processes ----------------------------------------------------------------


@pytest.fixture(scope="session")
def services() -> None:
    require_stack_services(LAYER_URL)


@dataclass
class Stack:
    """The module's long-lived processes and what they were started with."""

    prefix: str  # of every queue, node and layer key of this module
    env: dict[str, str]  # of every process of the stack
    celery_app: Any
    workers: dict[str, tuple[WorkerProcess, str]]  # runner -> (worker process, its queue)
    a: Server  # uvicorn: Chromium's page
    b: Server  # daphne: the WebSocket client's
    extra: list[WorkerProcess] = field(default_factory=list)  # started by tests

    def processes(self) -> list[WorkerProcess]:
        return [
            *(worker for worker, _ in self.workers.values()),
            self.a.process,
            self.b.process,
            *self.extra,
        ]


def _stop_all(processes: list[WorkerProcess]) -> None:
    """Stop the processes at once (each: SIGTERM, then SIGKILL after 10 s)."""
    with ThreadPoolExecutor(max_workers=max(1, len(processes))) as pool:
        list(pool.map(lambda process: process.stop(), processes))


@pytest.fixture(scope="module")
def prefix() -> str:
    """Start every queue, node and layer key of this module with this."""
    # Short: it starts queue names, and django-tasks-db's queue_name is varchar(32).
    return f"lo-e2e-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, services: None, prefix: str) -> Iterator[Stack]:
    """Start both workers and both servers together; stop them when the module is done."""
    request.getfixturevalue("django_db_setup")
    from tests.celery_app import app  # the tests' Celery app, so enqueue sends through it

    env = stack_env(
        LAYER_URL,
        prefix,
        LIVEOPS_TEST_HEARTBEAT=str(BEAT),
        LIVEOPS_TEST_STALE=str(STALE),
    )
    started: list[WorkerProcess] = []
    try:
        celery, node = celery_worker(f"{prefix}-celery", env)
        started.append(celery)
        tasks = db_worker(f"{prefix}-tasks", env)
        started.append(tasks)
        a = Server("uvicorn", env)
        started.append(a.process)
        b = Server("daphne", env)
        started.append(b.process)
        wait_for_celery(app, node, celery)
        wait_for_db_worker(tasks)
        a.wait_until_ready()
        b.wait_until_ready()
        workers = {"celery": (celery, f"{prefix}-celery"), "tasks": (tasks, f"{prefix}-tasks")}
        stack = Stack(prefix, env, app, workers, a, b)
        yield stack
    finally:
        _stop_all(started)
        forget_redis_keys(django_settings.CELERY_BROKER_URL, prefix)
        forget_redis_keys(LAYER_URL, prefix)


@pytest.fixture
def doomed(stack: Stack) -> Iterator[Callable[[str], tuple[WorkerProcess, str]]]:
    """Start a worker of a runner on a queue of its own, for a test to kill."""
    started: list[WorkerProcess] = []

    def start(runner: str) -> tuple[WorkerProcess, str]:
        queue = f"{stack.prefix}-doomed-{uuid.uuid4().hex[:4]}"
        if runner == "celery":
            process, node = celery_worker(queue, stack.env)
            started.append(process)
            stack.extra.append(process)
            wait_for_celery(stack.celery_app, node, process)
        else:
            process = db_worker(queue, stack.env)
            started.append(process)
            stack.extra.append(process)
            wait_for_db_worker(process)
        return process, queue

    yield start
    _stop_all(started)
    for process in started:
        stack.extra.remove(process)


# --- viewers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orm_beside_playwright() -> Iterator[None]:
    """Let this process use the ORM while Playwright's sync API runs its event loop."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def browser(orm_beside_playwright: None) -> Iterator[Any]:
    """A headless Chromium; skip (or fail in CI) when there is none."""
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture(autouse=True)
def same_layer(settings: Any, prefix: str) -> None:
    """Give this process the layer its servers and workers use."""
    settings.CHANNEL_LAYERS = redis_channel_layers(LAYER_URL, prefix)


@dataclass
class Viewers:
    """One operation watched by Chromium on server A and a WebSocket client on server B."""

    stack: Stack
    page: Any  # Playwright's page, on A
    url: str  # the page's address
    socket: SocketViewer  # on B
    container_id: str
    page_errors: list[str]

    def both_show(self, region: str, text: str, timeout: float = SHOW_TIMEOUT) -> None:
        """Wait until the region shows ``text`` on both viewers (the page, then the socket)."""
        from playwright.sync_api import expect

        try:
            expect(self.page.locator(f"#{self.container_id}-{region}")).to_contain_text(
                text, timeout=timeout * 1000
            )
        except AssertionError as exc:
            raise AssertionError(
                f"Chromium on {self.stack.a.kind}: {exc}{logs(self.stack.processes())}"
            ) from exc
        try:
            self.socket.wait_until(
                lambda: text in self.socket.text(region),
                f"the {region} region shows {text!r}",
                timeout,
            )
        except AssertionError as exc:
            raise AssertionError(
                f"WebSocket client on {self.stack.b.kind}: {exc}{logs(self.stack.processes())}"
            ) from exc

    def assert_stayed_on_the_page(self) -> None:
        """The page was updated in place: same address, same JavaScript realm, no errors."""
        assert self.page.url == self.url
        assert self.page.evaluate("window.__e2eMarker") == self.container_id
        assert self.page_errors == []


def _session_cookie(user: Any) -> tuple[str, str]:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return name, client.cookies[name].value


@pytest.fixture
def watch(browser: Any, stack: Stack, user: Any) -> Iterator[Callable[[LiveOperation], Viewers]]:
    """Open the operation's live page in Chromium on A and a WebSocket client on B."""
    name, session = _session_cookie(user)
    contexts: list[Any] = []
    sockets: list[SocketViewer] = []

    def open_viewers(op: LiveOperation) -> Viewers:
        path = op.get_absolute_url()
        context = browser.new_context()
        contexts.append(context)
        context.add_cookies([{"name": name, "value": session, "url": stack.a.url}])
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page_frames: list[Any] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: page_frames.append(f)))
        url = stack.a.url + path
        page.goto(url)
        container_id = f"liveop-{op.pk}"
        page.evaluate("id => { window.__e2eMarker = id; }", container_id)
        # The snapshot is the first frame, sent after the socket joined the operation's
        # group: from then on no live frame can be missed.
        deadline = time.monotonic() + START_TIMEOUT
        while not page_frames:
            assert time.monotonic() < deadline, f"no snapshot on {url}" + logs(stack.processes())
            page.wait_for_timeout(50)  # lets Playwright deliver events; bounded above
        viewer = SocketViewer(stack.b.url, path, f"{name}={session}")
        sockets.append(viewer)
        viewer.wait_until(lambda: bool(viewer.frames), "the snapshot arrives", START_TIMEOUT)
        return Viewers(stack, page, url, viewer, container_id, errors)

    yield open_viewers
    for viewer in sockets:
        viewer.close()
    for context in contexts:
        context.close()


# --- the scenarios ---------------------------------------------------------------------------


def _release(op: Pulsed, step: int) -> None:
    Pulsed.objects.filter(pk=op.pk).update(released=step)


def _stored(op: Pulsed) -> Pulsed:
    op.refresh_from_db()
    return op


@pytest.mark.parametrize("runner", RUNNERS)
def test_both_viewers_follow_a_worker_run_to_its_result(
    watch: Callable[[LiveOperation], Viewers],
    stack: Stack,
    user: Any,
    settings: Any,
    runner: str,
) -> None:
    worker, queue = stack.workers[runner]
    op = Pulsed.objects.create(owner=user, steps=2)
    viewers = watch(op)
    enqueue_through(op, runner, queue, settings)

    # Step 1 is held: the operation is mid-run, and both viewers show it live.
    viewers.both_show("status", "In progress")
    viewers.both_show("progress", "50%")
    viewers.both_show("log", "step 1")
    assert _stored(op).get_state() is Phase.STARTED

    _release(op, 1)
    viewers.both_show("progress", "100%")
    viewers.both_show("log", "step 2")
    assert _stored(op).get_state() is Phase.STARTED

    _release(op, 2)
    viewers.both_show("status", "Finished")
    viewers.both_show("result", "Result")
    viewers.both_show("result", f"pid{worker.pid}")  # <dt>pid</dt><dd>…</dd>: ran there
    viewers.both_show("log", "step 1")  # the log is kept
    viewers.assert_stayed_on_the_page()
    op = _stored(op)
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {"steps": 2, "pid": worker.pid}


@pytest.mark.parametrize("runner", RUNNERS)
def test_both_viewers_see_a_killed_worker_as_lost(
    watch: Callable[[LiveOperation], Viewers],
    doomed: Callable[[str], tuple[WorkerProcess, str]],
    user: Any,
    settings: Any,
    runner: str,
) -> None:
    worker, queue = doomed(runner)
    op = Pulsed.objects.create(owner=user, steps=2)
    viewers = watch(op)
    enqueue_through(op, runner, queue, settings)
    viewers.both_show("progress", "50%")
    viewers.both_show("log", "step 1")
    assert _stored(op).get_state() is Phase.STARTED

    kill(worker)  # mid-run, never released
    begun = time.monotonic()
    bound = STALE + LOST_MARGIN
    viewers.both_show("status", "Interrupted", timeout=bound)
    viewers.both_show("result", LOST_MESSAGE, timeout=bound)
    took = time.monotonic() - begun
    assert took < bound, f"'lost' took {took:.1f} s to reach both viewers"
    viewers.both_show("log", "step 1")  # what the viewers saw of the run stays on screen
    viewers.assert_stayed_on_the_page()
    op = _stored(op)
    assert (op.interrupted, op.finished_successfully, op.error_message) == (
        True,
        False,
        LOST_MESSAGE,
    )
