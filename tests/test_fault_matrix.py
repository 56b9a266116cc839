"""The fault matrix (issue 12): every server we document, both outside runners, under faults.

One module-long stack: uvicorn, daphne and hypercorn serving tests.asgi_stack through one
Redis channel layer, each enqueueing with the celery runner to a broker of this module's
own (a private redis-server the tests stop and start). Each test starts the worker it
breaks. Every operation is German (``language="de"``): a viewer must be shown each
fault's message as ``gettext`` gives it under "de", and the first test says that the
German catalogue has it.

The faults, and why these combinations (tests/test_e2e_stack.py, test_server_outage.py and
test_layer_outage.py cover the rest):

- **PostgreSQL restarted mid-run**, for each runner. The worker reaches PostgreSQL through a
  ``TcpProxy`` of this test: a cut resets the worker's connections and turns its new ones
  away until the restore, which is what a worker sees of a restart (reset, refused a while,
  back). The shared cluster itself is not restarted: pytest, the servers and other test runs
  use it too. A short outage (the worker ends the run itself and says why) and one longer
  than STALE_SECONDS (a server's watchdog ends it as lost); either way the worker runs the
  next operation, and one outage meets a Celery task before its claim. Each is watched by
  Chromium on one server and a WebSocket client on each of the three, so the end is seen
  through every server in one run.
- **The broker down at enqueue time**, through each server: the operation ends at once,
  saying so in German; once the broker is back, "Run again" in Chromium runs it.
- **A worker killed** (SIGKILL), seen through all three servers (test_e2e_stack.py sees it
  through uvicorn and daphne only), and **every server restarted mid-run** with a real
  worker (tests/browser/test_reconnect.py restarts uvicorn only, with a plain process).

    pytest -m postgres --ds=tests.settings_pg -p no:cacheprovider tests/test_fault_matrix.py
"""

from __future__ import annotations

import shutil
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import translation

from liveops._execution import DATABASE_LOST_MESSAGE
from liveops.lifecycle import INTERRUPTED_MESSAGE, LOST_MESSAGE
from liveops.models import LiveOperation, Phase
from liveops.runners import NOT_QUEUED_MESSAGE, NOT_SET_UP_MESSAGE
from tests.conftest import need
from tests.e2e_support import (
    SHOW_TIMEOUT,
    START_TIMEOUT,
    PrivateRedis,
    Server,
    SocketViewer,
    TcpProxy,
    celery_worker,
    db_worker,
    enqueue_through,
    forget_redis_keys,
    free_port,
    kill,
    logs,
    require_stack_services,
    stack_env,
    wait_for_db_worker,
)
from tests.pg_workers import (
    WorkerProcess,
    wait_for,
)
from tests.settings_stack import LAYER_URL, redis_channel_layers
from tests.testapp.models import Pulsed

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,  # a minute and more: run once per CI, not again on the LTS Django
    pytest.mark.usefixtures("services"),  # first: before pytest-django creates the database
    pytest.mark.django_db(transaction=True),
]

SERVERS = ("uvicorn", "daphne", "hypercorn")
RUNNERS = ("celery", "tasks")
#: Heartbeat and stale timeout of the whole stack. STALE leaves a short database outage
#: room to end before any watchdog would call the run lost.
BEAT, STALE = 0.2, 3.0
#: After a fault, every viewer shows the end within this (the lost case: STALE, then a
#: watchdog's look every BEAT, then one send through Redis).
END_TIMEOUT = STALE + 6.0
#: A worker that met an outage runs the next operation within this once it is over
#: (Celery retries a task after 1 s, and reconnects to a broker after 2 s, then 4 s).
RECOVER_TIMEOUT = 20.0
#: Where Chromium watches each runner's operation (the WebSocket clients watch on all).
CHROMIUM_ON = {"celery": "hypercorn", "tasks": "daphne"}


def german(message: str) -> str:
    """Return ``message`` as an operation started in German shows it."""
    with translation.override("de"):
        return translation.gettext(message)


def _within(seconds: float, condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` for at most ``seconds``; return whether it came true."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize(
    "message",
    [
        NOT_QUEUED_MESSAGE,
        NOT_SET_UP_MESSAGE,
        DATABASE_LOST_MESSAGE,
        LOST_MESSAGE,
        INTERRUPTED_MESSAGE,
    ],
    ids=["not-queued", "not-set-up", "database-lost", "lost", "interrupted"],
)
def test_what_a_fault_ends_an_operation_with_is_in_the_german_catalogue(message: str) -> None:
    # The tests below check that a German operation shows german(message); this, that
    # german(message) is German (tests/test_i18n.py: that every catalogue has it).
    assert german(message) != message


# --- the stack ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def services() -> None:
    require_stack_services(LAYER_URL)
    need(shutil.which("redis-server") is not None, "redis-server is not installed")


@dataclass
class Stack:
    """The module's servers, and what every process of it is started with."""

    prefix: str  # of every queue, node and layer key of this module
    env: dict[str, str]  # of every worker (each test adds where it reaches PostgreSQL)
    server_env: dict[str, str]
    broker: PrivateRedis  # the servers' Celery broker
    servers: dict[str, Server]
    extra: list[WorkerProcess] = field(default_factory=list)  # started by tests

    @property
    def broker_queue(self) -> str:
        """The queue the servers enqueue to."""
        return f"{self.prefix}-b"

    def processes(self) -> list[WorkerProcess]:
        return [*(server.process for server in self.servers.values()), *self.extra]

    def logs(self) -> str:
        return logs(self.processes())


def _stop_all(processes: list[WorkerProcess]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(processes))) as pool:
        list(pool.map(lambda process: process.stop(), processes))


def _start_servers(env: dict[str, str], ports: dict[str, int | None]) -> dict[str, Server]:
    servers = {kind: Server(kind, env, port) for kind, port in ports.items()}
    try:
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            list(pool.map(lambda server: server.wait_until_ready(), servers.values()))
    except BaseException:
        _stop_all([server.process for server in servers.values()])
        raise
    return servers


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, services: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    request.getfixturevalue("django_db_setup")
    prefix = f"lo-fm-{uuid.uuid4().hex[:8]}"  # short: django-tasks-db's queue_name is 32 chars
    executable = shutil.which("redis-server")
    assert executable is not None
    broker = PrivateRedis(executable, free_port(), tmp_path_factory.mktemp("broker") / "redis.log")
    broker.start()
    env = stack_env(
        LAYER_URL,
        prefix,
        LIVEOPS_TEST_HEARTBEAT=str(BEAT),
        LIVEOPS_TEST_STALE=str(STALE),
    )
    server_env = {
        **env,
        "LIVEOPS_TEST_RUNNER": "celery",
        "LIVEOPS_TEST_CELERY_BROKER": broker.url,
        "LIVEOPS_TEST_CELERY_QUEUE": f"{prefix}-b",
    }
    stack = Stack(prefix, env, server_env, broker, {})
    try:
        stack.servers = _start_servers(server_env, dict.fromkeys(SERVERS))
        yield stack
    finally:
        _stop_all(stack.processes())
        broker.stop()
        forget_redis_keys(django_settings.CELERY_BROKER_URL, prefix)
        forget_redis_keys(LAYER_URL, prefix)


@pytest.fixture
def start_worker(stack: Stack) -> Iterator[Callable[..., tuple[WorkerProcess, str]]]:
    """Start a worker of a runner: ``start(runner, queue=None, **env)`` (a queue of its own)."""
    started: list[WorkerProcess] = []

    def start(runner: str, queue: str | None = None, **env: str) -> tuple[WorkerProcess, str]:
        queue = queue or f"{stack.prefix}-{uuid.uuid4().hex[:6]}"
        worker_env = {**stack.env, **env}
        if runner == "celery":
            process, _ = celery_worker(queue, worker_env)
            started.append(process)
            stack.extra.append(process)
            process.wait_for_output(r"\bready\.", timeout=START_TIMEOUT)
        else:
            process = db_worker(queue, worker_env)
            started.append(process)
            stack.extra.append(process)
            wait_for_db_worker(process)
        return process, queue

    yield start
    _stop_all(started)
    for process in started:
        stack.extra.remove(process)


@pytest.fixture
def postgres_proxy() -> Iterator[TcpProxy]:
    """A proxy to PostgreSQL for a worker to reach it through, cut and restored by the test."""
    db = django_settings.DATABASES["default"]
    proxy = TcpProxy((db["HOST"], int(db["PORT"])))
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture(autouse=True)
def same_layer(settings: Any, stack: Stack) -> None:
    """Give this process the layer of the stack, so what it announces reaches the viewers."""
    settings.CHANNEL_LAYERS = redis_channel_layers(LAYER_URL, stack.prefix)


# --- viewers -----------------------------------------------------------------------------------


@dataclass
class Viewers:
    """One operation's live page in Chromium on some servers and WebSocket clients on others."""

    stack: Stack
    region_prefix: str
    pages: dict[str, Any]  # server kind -> Playwright page
    sockets: dict[str, SocketViewer]  # server kind -> WebSocket client
    page_errors: list[str]

    def all_show(self, region: str, text: str, timeout: float = SHOW_TIMEOUT) -> None:
        """Wait until ``region`` shows ``text`` on every viewer."""
        from playwright.sync_api import expect

        for kind, page in self.pages.items():
            try:
                expect(page.locator(f"#{self.region_prefix}-{region}")).to_contain_text(
                    text, timeout=timeout * 1000
                )
            except AssertionError as exc:
                raise AssertionError(f"Chromium on {kind}: {exc}{self.stack.logs()}") from exc
        for kind, viewer in self.sockets.items():
            try:
                viewer.wait_until(
                    lambda viewer=viewer: text in viewer.text(region),
                    f"the {region} region shows {text!r}",
                    timeout,
                )
            except AssertionError as exc:
                raise AssertionError(
                    f"WebSocket client on {kind}: {exc}{self.stack.logs()}"
                ) from exc


@pytest.fixture
def watch(browser: Any, stack: Stack, user: Any) -> Iterator[Callable[..., Viewers]]:
    """Open an operation's live page: ``watch(op, pages=(kinds), sockets_on=(kinds))``."""
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    session = client.cookies[name].value
    contexts: list[Any] = []
    sockets: list[SocketViewer] = []

    def open_viewers(
        op: LiveOperation, pages: tuple[str, ...] = (), sockets_on: tuple[str, ...] = ()
    ) -> Viewers:
        path = op.get_absolute_url()
        opened_pages, errors = {}, []
        for kind in pages:
            server = stack.servers[kind]
            context = browser.new_context()
            contexts.append(context)
            context.add_cookies([{"name": name, "value": session, "url": server.url}])
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            frames: list[Any] = []
            page.on("websocket", lambda ws, f=frames: ws.on("framereceived", lambda x: f.append(x)))
            page.goto(server.url + path)
            # The snapshot is sent once the socket joined the operation's group.
            deadline = time.monotonic() + START_TIMEOUT
            while not frames:
                assert time.monotonic() < deadline, f"no snapshot on {kind}" + stack.logs()
                page.wait_for_timeout(50)  # lets Playwright deliver events; bounded above
            opened_pages[kind] = page
        opened_sockets = {}
        for kind in sockets_on:
            viewer = SocketViewer(stack.servers[kind].url, path, f"{name}={session}")
            sockets.append(viewer)
            viewer.wait_until(lambda v=viewer: bool(v.frames), "the snapshot", START_TIMEOUT)
            opened_sockets[kind] = viewer
        return Viewers(stack, f"liveop-{op.pk}", opened_pages, opened_sockets, errors)

    yield open_viewers
    for viewer in sockets:
        viewer.close()
    for context in contexts:
        context.close()


# --- operations ----------------------------------------------------------------------------------


def _stored(op: Pulsed) -> Pulsed:
    op.refresh_from_db()
    return op


def _pulsed(user: Any, steps: int = 2, released: int = 0) -> Pulsed:
    return Pulsed.objects.create(owner=user, steps=steps, released=released, language="de")


def _runs_the_next_operation(
    stack: Stack, worker: WorkerProcess, runner: str, queue: str, user: Any, settings: Any
) -> None:
    """The worker that met a fault runs a new operation to its end once the fault is over."""
    after = _pulsed(user, steps=1, released=1)
    enqueue_through(after, runner, queue, settings)
    wait_for(
        lambda: _stored(after).get_state() is Phase.FINISHED_OK,
        RECOVER_TIMEOUT,
        f"the {runner} worker runs the next operation to its end{stack.logs()}",
        watch=[worker],
    )
    assert after.result_context == {"steps": 1, "pid": worker.pid}


# --- PostgreSQL restarted mid-run ----------------------------------------------------------------


def _run_until_mid_run(
    runner: str,
    start_worker: Callable[..., tuple[WorkerProcess, str]],
    postgres_proxy: TcpProxy,
    watch: Callable[..., Viewers],
    user: Any,
    settings: Any,
) -> tuple[WorkerProcess, str, Pulsed, Viewers]:
    """Start a worker behind the proxy and an operation in it, watched, held at step 1."""
    worker, queue = start_worker(runner, LIVEOPS_TEST_PG_PORT=str(postgres_proxy.port))
    op = _pulsed(user)
    viewers = watch(op, pages=(CHROMIUM_ON[runner],), sockets_on=SERVERS)
    enqueue_through(op, runner, queue, settings)
    viewers.all_show("status", german("In progress"))
    viewers.all_show("log", "step 1")
    return worker, queue, op, viewers


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_database_restart_mid_run_ends_the_run_saying_why_and_the_worker_goes_on(
    runner: str,
    stack: Stack,
    start_worker: Callable[..., tuple[WorkerProcess, str]],
    postgres_proxy: TcpProxy,
    watch: Callable[..., Viewers],
    user: Any,
    settings: Any,
) -> None:
    worker, queue, op, viewers = _run_until_mid_run(
        runner, start_worker, postgres_proxy, watch, user, settings
    )
    postgres_proxy.cut()  # run() polls its row every 50 ms: its next query fails
    # Down until the worker came back to it (at most 1 s): well within STALE_SECONDS, so
    # the worker, not a watchdog, can tell how the run ended.
    tried_again = _within(1.0, lambda: postgres_proxy.turned_away > 0)
    postgres_proxy.restore()

    viewers.all_show("status", german("Interrupted"), timeout=END_TIMEOUT)
    viewers.all_show("result", german(DATABASE_LOST_MESSAGE), timeout=END_TIMEOUT)
    viewers.all_show("log", "step 1")  # what the viewers saw of the run stays
    op = _stored(op)
    assert (op.get_state(), op.interrupted, op.error_message) == (
        Phase.FINISHED_ERROR,
        True,
        german(DATABASE_LOST_MESSAGE),
    )
    assert "OperationalError" in op.traceback  # for staff: what the database said
    assert viewers.page_errors == []
    _runs_the_next_operation(stack, worker, runner, queue, user, settings)
    assert tried_again, "the worker never tried to reach the database again"


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_database_outage_longer_than_stale_seconds_ends_the_run_as_lost_and_the_worker_goes_on(
    runner: str,
    stack: Stack,
    start_worker: Callable[..., tuple[WorkerProcess, str]],
    postgres_proxy: TcpProxy,
    watch: Callable[..., Viewers],
    user: Any,
    settings: Any,
) -> None:
    worker, queue, op, viewers = _run_until_mid_run(
        runner, start_worker, postgres_proxy, watch, user, settings
    )
    postgres_proxy.cut()
    # The servers reach PostgreSQL directly: their watchdogs see the heartbeat stop.
    viewers.all_show("status", german("Interrupted"), timeout=END_TIMEOUT)
    viewers.all_show("result", german(LOST_MESSAGE), timeout=END_TIMEOUT)
    postgres_proxy.restore()

    op = _stored(op)
    assert (op.get_state(), op.interrupted, op.error_message) == (
        Phase.FINISHED_ERROR,
        True,
        german(LOST_MESSAGE),
    )
    _runs_the_next_operation(stack, worker, runner, queue, user, settings)
    # The worker's own end came too late: the lost end is kept.
    assert _stored(op).error_message == german(LOST_MESSAGE)


def test_a_database_outage_when_a_celery_task_arrives_runs_the_operation_once_it_is_over(
    stack: Stack,
    start_worker: Callable[..., tuple[WorkerProcess, str]],
    postgres_proxy: TcpProxy,
    watch: Callable[..., Viewers],
    user: Any,
    settings: Any,
) -> None:
    worker, queue = start_worker("celery", LIVEOPS_TEST_PG_PORT=str(postgres_proxy.port))
    op = _pulsed(user, steps=1, released=1)
    viewers = watch(op, sockets_on=SERVERS)
    postgres_proxy.cut()
    enqueue_through(op, "celery", queue, settings)
    wait_for(
        lambda: postgres_proxy.turned_away,
        START_TIMEOUT,
        "the worker tried to claim it",
        watch=[worker],
    )
    assert _stored(op).get_state() is Phase.NOT_STARTED
    postgres_proxy.restore()

    viewers.all_show("status", german("Finished"), timeout=RECOVER_TIMEOUT)
    op = _stored(op)
    assert (op.get_state(), op.result_context) == (
        Phase.FINISHED_OK,
        {"steps": 1, "pid": worker.pid},
    )


# --- the broker down at enqueue time -------------------------------------------------------------


def test_a_broker_down_at_enqueue_ends_the_operation_saying_so_and_run_again_runs_it(
    stack: Stack,
    start_worker: Callable[..., tuple[WorkerProcess, str]],
    watch: Callable[..., Viewers],
    user: Any,
) -> None:
    worker, _ = start_worker(
        "celery", stack.broker_queue, LIVEOPS_TEST_CELERY_BROKER=stack.broker.url
    )  # reads the queue the servers send to, on their broker
    ops = {kind: _pulsed(user, steps=1, released=1) for kind in SERVERS}
    # Each operation in Chromium on the server that enqueues it, and a WebSocket client
    # on the next server.
    viewers = {
        kind: watch(op, pages=(kind,), sockets_on=(SERVERS[(i + 1) % len(SERVERS)],))
        for i, (kind, op) in enumerate(ops.items())
    }
    stack.broker.stop()
    for kind, op in ops.items():
        begun = time.monotonic()
        answer = _post(f"{stack.servers[kind].url}/test/enqueue/{op.live_label()}/{op.pk}/")
        took = time.monotonic() - begun
        assert answer == (200, "queued"), f"{kind}: {answer}{stack.logs()}"
        assert took < SHOW_TIMEOUT, f"{kind} took {took:.1f} s to answer with the broker down"

    for kind, op in ops.items():
        viewers[kind].all_show("status", german("Failed"))
        viewers[kind].all_show("result", german(NOT_QUEUED_MESSAGE))
        stored = _stored(op)
        assert (stored.get_state(), stored.started_on, stored.error_message) == (
            Phase.FINISHED_ERROR,
            None,
            f"{german(NOT_QUEUED_MESSAGE)} (OperationalError)",
        ), kind

    stack.broker.start()
    for kind in SERVERS:  # as the message says: try again
        viewers[kind].pages[kind].get_by_role("button", name=german("Run again")).click()
    for kind, op in ops.items():
        viewers[kind].all_show("status", german("Finished"), timeout=RECOVER_TIMEOUT)
        viewers[kind].all_show("result", f"pid{worker.pid}")  # <dt>pid</dt><dd>…</dd>
        stored = _stored(op)
        assert (stored.get_state(), stored.attempt) == (Phase.FINISHED_OK, 2), kind
        assert viewers[kind].page_errors == [], kind


def _post(url: str) -> tuple[int, str]:
    """POST to ``url`` on loopback (never through a proxy the environment names)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, method="POST"), timeout=30) as response:
        return response.status, response.read().decode()


# --- the faults we had, where they were not seen yet ---------------------------------------------


def test_a_killed_worker_is_seen_as_lost_through_every_server(
    stack: Stack,
    start_worker: Callable[..., tuple[WorkerProcess, str]],
    watch: Callable[..., Viewers],
    user: Any,
    settings: Any,
) -> None:
    worker, queue = start_worker("celery")
    op = _pulsed(user)
    viewers = watch(op, pages=("hypercorn",), sockets_on=SERVERS)
    enqueue_through(op, "celery", queue, settings)
    viewers.all_show("log", "step 1")
    kill(worker)
    viewers.all_show("status", german("Interrupted"), timeout=END_TIMEOUT)
    viewers.all_show("result", german(LOST_MESSAGE), timeout=END_TIMEOUT)
    assert _stored(op).interrupted


def test_every_server_restarted_mid_run_shows_the_run_go_on_and_end(
    stack: Stack,
    start_worker: Callable[..., tuple[WorkerProcess, str]],
    watch: Callable[..., Viewers],
    user: Any,
    settings: Any,
) -> None:
    worker, queue = start_worker("tasks")
    op = _pulsed(user)
    viewers = watch(op, pages=SERVERS)
    enqueue_through(op, "tasks", queue, settings)
    viewers.all_show("log", "step 1")

    ports: dict[str, int | None] = {kind: server.port for kind, server in stack.servers.items()}
    _stop_all([server.process for server in stack.servers.values()])
    stack.servers = {}
    for kind, page in viewers.pages.items():
        _wait_for_connection(kind, page, op, is_open=False, timeout=SHOW_TIMEOUT)
    stack.servers = _start_servers(stack.server_env, ports)
    for kind, page in viewers.pages.items():
        _wait_for_connection(kind, page, op, is_open=True, timeout=RECOVER_TIMEOUT)

    Pulsed.objects.filter(pk=op.pk).update(released=2)  # the run goes on, then ends
    viewers.all_show("log", "step 2", timeout=RECOVER_TIMEOUT)
    viewers.all_show("status", german("Finished"), timeout=RECOVER_TIMEOUT)
    viewers.all_show("result", f"pid{worker.pid}")
    assert viewers.page_errors == []
    for page in viewers.pages.values():
        assert page.url.endswith(op.get_absolute_url())


def _wait_for_connection(
    kind: str, page: Any, op: LiveOperation, *, is_open: bool, timeout: float
) -> None:
    """Wait until the page's socket of ``op`` is open (or until it is not)."""
    from playwright.sync_api import Error as PlaywrightError

    container = f"liveop-{op.pk}"
    try:
        page.wait_for_function(
            """([id, wanted]) => {
                const state = document.getElementById(id).getAttribute("data-liveop-connection");
                return (state === "open") === wanted;
            }""",
            arg=[container, is_open],
            timeout=timeout * 1000,
        )
    except PlaywrightError as exc:
        state = page.get_attribute(f"#{container}", "data-liveop-connection")
        raise AssertionError(
            f"Chromium on {kind}: the connection is {state!r}, not {'' if is_open else 'un'}open "
            f"after {timeout} s: {exc}"
        ) from exc
