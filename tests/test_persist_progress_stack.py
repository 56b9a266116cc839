"""Stored live progress with real processes (issue 13, ``PERSIST_PROGRESS``).

PostgreSQL and Redis; a Celery worker and a django-tasks-db ``db_worker`` run the
operations; uvicorn serves their pages with a channels_redis layer; Chromium shows them.
Every server and worker runs with ``LIVEOPS_TEST_PERSIST_PROGRESS=1``. A ``Narrated``
operation sets its status and percent, logs three lines and then waits for the test,
sending nothing but keyframes, which carry the status, percent and stages and never the
log. So its log lines on a page opened, reloaded or reconnected while it waits can only
come from the database: the page's HTML or the socket's snapshot. A ``NarratedUnstored``
operation (``persist_progress = False``) is the contrast: a page opened on it mid-run
has none of its lines. Each scenario runs once per runner: ``celery`` and ``tasks``.

    pytest -m postgres --ds=tests.settings_pg -p no:cacheprovider \
        tests/test_persist_progress_stack.py
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import lxml.html
import pytest
from django.conf import settings as django_settings
from lxml.html import HtmlElement

from liveops.models import Phase
from tests.browser.support import LivePage
from tests.dom import parse
from tests.e2e_support import (
    SHOW_TIMEOUT,
    START_TIMEOUT,
    Server,
    SocketFrames,
    SocketViewer,
    celery_worker,
    db_worker,
    enqueue_through,
    forget_redis_keys,
    http_get,
    kill,
    logs,
    require_stack_services,
    session_cookie,
    stack_env,
    stop_all,
    wait_for_celery,
    wait_for_db_worker,
    wait_until_tasks_done,
)
from tests.pg_workers import WorkerProcess, wait_for
from tests.settings_stack import LAYER_URL, redis_channel_layers
from tests.testapp.models import Narrated, NarratedUnstored, Narrating

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.usefixtures("services"),  # first: before pytest-django creates the database
    pytest.mark.django_db(transaction=True),
]

RUNNERS = ["celery", "tasks"]
STEPS = 2


# --- services and processes ----------------------------------------------------------------


@pytest.fixture(scope="session")
def services() -> None:
    require_stack_services(LAYER_URL)


@dataclass
class Stack:
    """The module's processes: a worker per runner and one server, which a test may restart."""

    env: dict[str, str]
    workers: dict[str, tuple[WorkerProcess, str]]  # runner -> (worker process, its queue)
    server: Server
    started: list[WorkerProcess]  # every process started, stopped with the module

    def kill_server(self) -> None:
        """SIGKILL the server: a crash, no goodbye to its sockets."""
        kill(self.server.process)

    def start_server_again(self) -> None:
        """Start a new server on the port of the one killed."""
        self.server = Server("uvicorn", self.env, port=self.server.port)
        self.started.append(self.server.process)
        self.server.wait_until_ready()

    def ensure_server(self) -> None:
        """Start the server again if a test that killed it failed before it did."""
        if self.server.process.returncode is not None:
            self.start_server_again()

    def worker_processes(self) -> list[WorkerProcess]:
        return [worker for worker, _ in self.workers.values()]

    def processes(self) -> list[WorkerProcess]:
        return [*self.worker_processes(), self.server.process]


@pytest.fixture(scope="module")
def prefix() -> str:
    """Start every queue and layer key of this module with this (queue names: 32 chars)."""
    return f"lo-pp-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, services: None, prefix: str) -> Iterator[Stack]:
    """Start both workers and the server together, all storing live progress."""
    request.getfixturevalue("django_db_setup")
    from tests.celery_app import app  # the tests' Celery app, so enqueue sends through it

    env = stack_env(LAYER_URL, prefix, LIVEOPS_TEST_PERSIST_PROGRESS="1")
    started: list[WorkerProcess] = []
    try:
        celery, node = celery_worker(f"{prefix}-celery", env)
        started.append(celery)
        tasks = db_worker(f"{prefix}-tasks", env)
        started.append(tasks)
        server = Server("uvicorn", env)
        started.append(server.process)
        wait_for_celery(app, node, celery)
        wait_for_db_worker(tasks)
        server.wait_until_ready()
        workers = {"celery": (celery, f"{prefix}-celery"), "tasks": (tasks, f"{prefix}-tasks")}
        yield Stack(env, workers, server, started)
    finally:
        stop_all(started)
        forget_redis_keys(django_settings.CELERY_BROKER_URL, prefix)
        forget_redis_keys(LAYER_URL, prefix)


@pytest.fixture(autouse=True)
def same_layer(settings: Any, prefix: str) -> None:
    """Give this process the layer its server and workers use."""
    settings.CHANNEL_LAYERS = redis_channel_layers(LAYER_URL, prefix)


@pytest.fixture
def start(
    request: pytest.FixtureRequest, stack: Stack, settings: Any
) -> Iterator[Callable[[Narrating, str], Narrating]]:
    """Enqueue an operation (saved first if new) through a runner; let it finish after the test.

    The workers run one operation at a time, and the database is emptied after each
    test: an operation left waiting would hold its worker until ``wait_seconds``, and
    a db_worker whose task row went away exits. When
    the test failed, the processes' output is printed with its report.
    """
    stack.ensure_server()
    failed_before = request.session.testsfailed
    started: list[Narrating] = []

    def begin(op: Narrating, runner: str) -> Narrating:
        if op._state.adding:
            op.save()
        started.append(op)
        _, queue = stack.workers[runner]
        enqueue_through(op, runner, queue, settings, PERSIST_PROGRESS=True)
        return op

    yield begin
    if request.session.testsfailed > failed_before:
        print(logs(stack.processes(), lines=80))
    for op in started:
        type(op)._default_manager.filter(pk=op.pk).update(released=STEPS)
    for op in started:
        ended = type(op)._default_manager.filter(pk=op.pk, finished_on__isnull=False)
        wait_for(ended.exists, START_TIMEOUT, f"{op} finishes", watch=stack.worker_processes())
    tasks_worker, tasks_queue = stack.workers["tasks"]
    wait_until_tasks_done(tasks_queue, tasks_worker)


@dataclass
class Opened:
    """A Chromium page on a live page, with what its sockets received and its script errors."""

    page: Any
    sockets: SocketFrames
    errors: list[str]


@pytest.fixture
def open_page(browser: Any, stack: Stack, user: Any) -> Iterator[Callable[[Narrating], Opened]]:
    """Return a function that opens an operation's live page in a new Chromium page."""
    name, session = session_cookie(user)
    context = browser.new_context()
    context.add_cookies([{"name": name, "value": session, "url": stack.server.url}])

    def open_it(op: Narrating) -> Opened:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        opened = Opened(page, SocketFrames(page), errors)
        page.goto(stack.server.url + op.get_absolute_url())
        return opened

    yield open_it
    context.close()


# --- what a page shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    """What a live container shows of a running operation."""

    status: str  # what p.status() said
    percent: str  # "33%"
    active_stage: str
    log: tuple[tuple[str, int, str], ...]  # (id, sequence number, text) of each line, in order


def _class_text(root: HtmlElement, region_id: str, css_class: str) -> str:
    found = root.xpath(
        ".//*[@id=$id]//*[contains(concat(' ', @class, ' '), $cls)]",
        id=region_id,
        cls=f" {css_class} ",
    )
    return " ".join(found[0].text_content().split()) if found else ""


def picture(root: HtmlElement, op: Narrating) -> Picture:
    """Return what ``root`` (a page, or the regions of a frame) shows of ``op``."""
    prefix = f"liveop-{op.pk}"
    lines = root.xpath(".//*[@id=$id]/li", id=f"{prefix}-log")
    return Picture(
        status=_class_text(root, f"{prefix}-status", "liveops-status-text"),
        percent=_class_text(root, f"{prefix}-progress", "liveops-percent"),
        active_stage=_class_text(root, f"{prefix}-stages", "liveops-stage--active"),
        log=tuple(
            (li.get("id"), int(li.get("data-liveop-seq")), li.text_content()) for li in lines
        ),
    )


def in_browser(page: Any, op: Narrating) -> Picture:
    """Return what the Chromium page's DOM shows of ``op`` now."""
    return picture(lxml.html.fromstring(page.content()), op)


def in_frame(frame: str) -> HtmlElement:
    """Return the region elements of one socket frame."""
    html = json.loads(frame).get("liveop_html")
    assert isinstance(html, str), f"not a frame of regions: {frame[:200]}"
    return parse(html)


def lines_up_to(step: int) -> list[str]:
    """Return the log lines a Narrated operation wrote by the pause at ``step``."""
    return [
        f"step {done}, line {line}"
        for done in range(1, step + 1)
        for line in range(1, Narrating.LINES_PER_STEP + 1)
    ]


def paused_at(op: Narrating, step: int, stack: Stack) -> Picture:
    """Wait until ``op``'s row holds its picture at the pause of ``step``; return that picture.

    The log's ids and sequence numbers are the stored ones; the texts are the ones the
    operation wrote, so a row that stored other lines fails here.
    """
    lines = len(lines_up_to(step))

    def stored() -> Narrating | None:
        row = type(op)._default_manager.get(pk=op.pk)
        reached = row.status_text.endswith(f"step {step} of {STEPS}")
        return row if reached and len(row.log) >= lines else None

    row = wait_for(stored, SHOW_TIMEOUT, f"{op} stores step {step}", watch=stack.worker_processes())
    assert row is not None
    assert row.get_state() is Phase.STARTED
    assert [text for _, text in row.log] == lines_up_to(step), row.log
    return Picture(
        status=f"Working on step {step} of {STEPS}",
        percent=f"{round(100 * step / (STEPS + 1))}%",
        active_stage="Work (in progress)",
        log=tuple((f"liveop-{op.pk}-log-{seq}", int(seq), text) for seq, text in row.log),
    )


def _release(op: Narrating, step: int) -> None:
    type(op)._default_manager.filter(pk=op.pk).update(released=step)


def _fail(message: str, stack: Stack) -> str:
    return message + logs(stack.processes())


# --- the scenarios ---------------------------------------------------------------------------


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_page_opened_or_reloaded_mid_run_shows_the_stored_picture_before_any_tick(
    open_page: Callable[[Narrating], Opened],
    start: Callable[[Narrating, str], Narrating],
    stack: Stack,
    user: Any,
    runner: str,
) -> None:
    """A page opened, then reloaded, on a paused operation shows its status, percent and log.

    The HTML the server renders (what a page without JavaScript shows), the snapshot the
    socket sends first, and the DOM right after the page loaded all hold the stored
    status, percent, active stage and every log line, with the ids and sequence numbers
    the worker gave them. No tick can have brought the lines: the operation logs nothing
    while it waits, and keyframes never carry the log.
    """
    op = start(Narrated(owner=user, steps=STEPS), runner)
    expected = paused_at(op, 1, stack)

    # Without JavaScript: the page's HTML.
    name, session = session_cookie(user)
    status, html = http_get(stack.server.url + op.get_absolute_url(), f"{name}={session}")
    assert status == 200
    assert picture(lxml.html.fromstring(html), op) == expected, _fail("the HTML", stack)

    # A new page only now: at load, its snapshot, and after its snapshot.
    view = open_page(op)
    assert in_browser(view.page, op) == expected, _fail("the page at load", stack)
    snapshot = view.sockets.first_frame()
    assert picture(in_frame(snapshot), op) == expected, _fail("the snapshot", stack)
    assert in_browser(view.page, op) == expected, _fail("the page after its snapshot", stack)

    # Reloaded: the same picture, from the HTML and the new socket's snapshot.
    opened = len(view.sockets.sockets)
    view.page.reload()
    assert in_browser(view.page, op) == expected, _fail("the reloaded page at load", stack)
    snapshot = view.sockets.first_frame(after=opened)
    assert picture(in_frame(snapshot), op) == expected, _fail("the reload's snapshot", stack)
    assert in_browser(view.page, op) == expected, _fail("the reloaded page", stack)
    assert view.errors == []


@pytest.mark.parametrize("runner", RUNNERS)
def test_after_a_server_restart_the_page_reconnects_to_the_stored_picture_and_the_end(
    open_page: Callable[[Narrating], Opened],
    start: Callable[[Narrating, str], Narrating],
    stack: Stack,
    user: Any,
    runner: str,
) -> None:
    """A page whose server was killed reconnects to a new one and shows the stored picture.

    While the server is down the operation, in its worker, goes on to step 2 and pauses
    there; nobody can see that live. The page reconnects by itself and, from the new
    socket's snapshot, shows step 2's status, percent and all six log lines, before any
    tick. Released, the operation finishes on that page with its result and the six lines,
    none doubled, and the page never reloaded.
    """
    from playwright.sync_api import expect

    worker, _ = stack.workers[runner]
    op = start(Narrated(owner=user, steps=STEPS), runner)
    step_1 = paused_at(op, 1, stack)
    view = open_page(op)
    live = LivePage(view.page, str(op.pk))
    live.wait_for_connection("state === 'open'")
    view.page.evaluate("() => { window.__notReloaded = true; }")
    assert in_browser(view.page, op) == step_1

    stack.kill_server()
    live.wait_for_connection("state !== 'open'")
    _release(op, 1)
    step_2 = paused_at(op, 2, stack)
    assert in_browser(view.page, op) == step_1, "the page changed while its server was down"

    opened = len(view.sockets.sockets)
    stack.start_server_again()
    live.wait_for_connection("state === 'open'", timeout=START_TIMEOUT * 1000)
    snapshot = view.sockets.first_frame(after=opened)
    assert picture(in_frame(snapshot), op) == step_2, _fail("the reconnect's snapshot", stack)
    # The frame is in; the script applies it a moment later. Only the snapshot carries
    # these lines (no tick does), so this waits for the script, not for a tick.
    last_line = step_2.log[-1][0]
    view.page.wait_for_selector(f"#{last_line}", state="attached", timeout=SHOW_TIMEOUT * 1000)
    assert in_browser(view.page, op) == step_2, _fail("the reconnected page", stack)

    _release(op, 2)
    expect(live.region("status")).to_contain_text("Finished", timeout=SHOW_TIMEOUT * 1000)
    expect(live.region("result")).to_contain_text(f"pid{worker.pid}")  # <dt>pid</dt><dd>…
    shown = in_browser(view.page, op).log
    assert [text for _, _, text in shown] == lines_up_to(2), shown
    assert len({line_id for line_id, _, _ in shown}) == len(shown), f"a line twice: {shown}"
    assert shown == step_2.log
    assert view.page.evaluate("() => window.__notReloaded") is True
    assert view.errors == []
    op.refresh_from_db()
    assert op.get_state() is Phase.FINISHED_OK
    assert [text for _, text in op.log] == lines_up_to(2)


@pytest.mark.parametrize("runner", RUNNERS)
def test_without_stored_progress_a_page_opened_mid_run_misses_the_earlier_lines(
    open_page: Callable[[Narrating], Opened],
    start: Callable[[Narrating, str], Narrating],
    stack: Stack,
    user: Any,
    runner: str,
) -> None:
    """The contrast: an operation that does not store its progress, opened mid-run, has no log.

    A socket watching from before the start sees the three lines live; a page opened at
    the pause gets none of them, neither in its HTML nor in its snapshot. So the checks
    above fail when the picture is not stored.
    """
    name, session = session_cookie(user)
    op = NarratedUnstored.objects.create(owner=user, steps=STEPS)
    early = SocketViewer(stack.server.url, op.get_absolute_url(), f"{name}={session}")
    try:
        early.wait_until(lambda: bool(early.frames), "the snapshot arrives", START_TIMEOUT)
        start(op, runner)
        early.wait_until(
            lambda: len(picture(early.page.root, op).log) == Narrating.LINES_PER_STEP,
            "the early socket shows step 1's lines",
            SHOW_TIMEOUT,
        )
    finally:
        early.close()
    assert [text for _, _, text in picture(early.page.root, op).log] == lines_up_to(1)
    op.refresh_from_db()
    assert (op.get_state(), op.log) == (Phase.STARTED, [])  # nothing stored: the contrast

    status, html = http_get(stack.server.url + op.get_absolute_url(), f"{name}={session}")
    assert status == 200
    assert picture(lxml.html.fromstring(html), op).log == ()
    view = open_page(op)
    assert in_browser(view.page, op).log == ()
    assert picture(in_frame(view.sockets.first_frame()), op).log == ()
    assert in_browser(view.page, op).log == ()
