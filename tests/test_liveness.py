"""Nothing stays "running": heartbeats, lost workers, SIGTERM, the sweep.

The workers and the server here are real processes (``tests.worker_process`` and
uvicorn) sharing the test database file; viewers are WebSocket clients on this
process's ASGI application, whose watchdog notices a lost worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from liveops._liveness import heartbeat
from liveops.lifecycle import INTERRUPTED_MESSAGE, LOST_MESSAGE, end_as_interrupted
from liveops.models import LiveOperation
from liveops.runners import NOT_QUEUED_MESSAGE, Runner
from tests.pg_workers import wait_for
from tests.testapp.models import Endless
from tests.viewers import open_viewer

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[1]
BEAT, STALE = 0.2, 1.0
DEADLINE = 15.0


@pytest.fixture(autouse=True)
def quick_heartbeat(settings: Any) -> Iterator[None]:
    settings.LIVEOPS = {"RUNNER": "eager", "HEARTBEAT_SECONDS": BEAT, "STALE_SECONDS": STALE}
    heartbeat._wake.set()  # let a sleeping heartbeat thread read the new interval
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def env_for_children(**extra: str) -> dict[str, str]:
    """The environment of a worker or server process sharing this test's database."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "LIVEOPS_TEST_DB": str(connection.settings_dict["NAME"]),
        "LIVEOPS_TEST_HEARTBEAT": str(BEAT),
        "LIVEOPS_TEST_STALE": str(STALE),
        **extra,
    }


def stored(op: LiveOperation) -> LiveOperation:
    op.refresh_from_db()
    return op


@pytest.fixture
def worker() -> Iterator[Callable[[LiveOperation], subprocess.Popen[bytes]]]:
    """Start ``tests.worker_process`` on an operation; kill what is left at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(op: LiveOperation) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_process", op.live_label(), str(op.pk)],
            cwd=ROOT,
            env=env_for_children(),
        )
        started.append(process)
        wait_for(lambda: stored(op).started_on is not None, DEADLINE, "the worker claimed it")
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def make_stale(op: LiveOperation) -> None:
    """Make ``op`` look like its worker died a while ago."""
    long_ago = timezone.now() - timedelta(seconds=STALE * 10)
    type(op).objects.filter(pk=op.pk).update(
        started_on=long_ago, heartbeat_on=long_ago, stage_states={"Work": "active"}
    )


def test_a_running_operation_keeps_its_heartbeat_fresh(user: Any, worker: Any) -> None:
    op = Endless.objects.create(owner=user)
    worker(op)
    first = stored(op).heartbeat_on
    wait_for(lambda: stored(op).heartbeat_on > first, DEADLINE, "the heartbeat moved")
    assert stored(op).finished_on is None


def test_a_killed_worker_is_shown_lost_to_every_viewer(user: Any, worker: Any) -> None:
    op = Endless.objects.create(owner=user)
    process = worker(op)
    # Killed inside its stage: the stage it was in must be shown failed.
    wait_for(lambda: stored(op).stage_states == {"Work": "active"}, DEADLINE, "the stage began")

    async def watch() -> list[str]:
        viewers = [await open_viewer(op.live_token, user=user) for _ in range(2)]
        for viewer in viewers:
            snapshot = json.loads(await viewer.receive_from(timeout=5))["liveop_html"]
            assert 'data-liveop-state="STARTED"' in snapshot
        process.send_signal(signal.SIGKILL)  # no chance to say goodbye
        finals = [await _final_frame(viewer) for viewer in viewers]
        for viewer in viewers:
            await viewer.disconnect()
        return finals

    begun = time.monotonic()
    finals = asyncio.run(watch())
    assert time.monotonic() - begun < STALE + 5  # well within a few heartbeats
    for html in finals:
        assert "Interrupted" in html
        assert LOST_MESSAGE in html
    op = stored(op)
    assert (op.interrupted, op.finished_successfully, op.error_message) == (
        True,
        False,
        LOST_MESSAGE,
    )
    assert op.stage_states == {"Work": "failed"}
    assert process.wait(5) == -signal.SIGKILL


def test_sigterm_to_a_worker_marks_its_operation_interrupted(user: Any, worker: Any) -> None:
    op = Endless.objects.create(owner=user)
    process = worker(op)
    process.send_signal(signal.SIGTERM)
    assert process.wait(DEADLINE) == 128 + signal.SIGTERM
    op = stored(op)
    assert op.finished_on is not None
    assert (op.interrupted, op.error_message) == (True, INTERRUPTED_MESSAGE)
    assert "SystemExit" in op.traceback


def test_sigterm_to_a_server_with_the_thread_runner_interrupts_its_runs(user: Any) -> None:
    op = Endless.objects.create(owner=user)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.asgi:application", "--port", str(port),
         "--lifespan", "on", "--log-level", "warning"],
        cwd=ROOT,
        env=env_for_children(LIVEOPS_TEST_RUNNER="thread"),
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/test/enqueue/{op.live_label()}/{op.pk}/"
        wait_for(lambda: _post(url), DEADLINE, "the server answered")
        wait_for(lambda: stored(op).started_on is not None, DEADLINE, "a server thread claimed it")
        server.send_signal(signal.SIGTERM)
        # A clean stop, not held up by the run (uvicorn re-raises the signal at the end).
        assert server.wait(DEADLINE) in {0, -signal.SIGTERM}
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
    op = stored(op)
    assert op.finished_on is not None
    assert (op.interrupted, op.error_message) == (True, INTERRUPTED_MESSAGE)


def test_a_lost_operation_is_shown_as_such_on_connect(user: Any) -> None:
    op = Endless.objects.create(owner=user)
    make_stale(op)

    async def snapshot() -> str:
        viewer = await open_viewer(op.live_token, user=user)
        html: str = json.loads(await viewer.receive_from(timeout=5))["liveop_html"]
        await viewer.disconnect()
        return html

    html = asyncio.run(snapshot())
    assert "data-liveop-terminal" in html
    assert LOST_MESSAGE in html
    assert stored(op).interrupted


def test_the_live_page_shows_a_lost_operation(client: Any, user: Any) -> None:
    op = Endless.objects.create(owner=user)
    make_stale(op)
    client.force_login(user)
    page = client.get(op.get_absolute_url()).content.decode()
    assert LOST_MESSAGE in page
    assert stored(op).interrupted


def test_the_sweep_ends_only_lost_operations(user: Any) -> None:
    lost, alive, waiting = (Endless.objects.create(owner=user) for _ in range(3))
    make_stale(lost)
    Endless.objects.filter(pk=alive.pk).update(
        started_on=timezone.now(), heartbeat_on=timezone.now()
    )
    out = _call_sweep()
    assert "1 lost operation(s) ended." in out
    assert stored(lost).interrupted
    assert stored(alive).finished_on is None
    assert stored(waiting).started_on is None  # queued, not lost
    assert "0 lost operation(s) ended." in _call_sweep()  # and only once


def test_a_run_ended_elsewhere_cannot_turn_successful(user: Any) -> None:
    """A worker that was declared lost but comes back keeps the lost end."""
    from liveops._execution import execute
    from tests.testapp.models import Scripted

    op = Scripted.objects.create(owner=user)

    def declared_lost_meanwhile(p: Any) -> None:
        # What a watchdog or the sweep does when the heartbeat looks stale.
        end_as_interrupted(Scripted, [op.pk], LOST_MESSAGE, stale_only=False)

    Scripted.SCRIPTS[op.pk] = [declared_lost_meanwhile, lambda p: p.result(done=True)]
    try:
        execute(op.live_label(), op.pk)
    finally:
        Scripted.SCRIPTS.pop(op.pk, None)
    op = stored(op)
    assert (op.interrupted, op.finished_successfully, op.result_context) == (True, False, None)


# --- helpers ----------------------------------------------------------------------------


def _call_sweep() -> str:
    from io import StringIO

    out = StringIO()
    call_command("liveops_sweep", stdout=out)
    return out.getvalue()


def _post(url: str) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=2):
            return True
    except OSError:
        return False


async def _final_frame(viewer: WebsocketCommunicator) -> str:
    """Receive until a terminal frame arrives; return its HTML."""
    while True:
        html: str = json.loads(await viewer.receive_from(timeout=STALE + 5))["liveop_html"]
        if "data-liveop-terminal" in html:
            return html


class UnreachableQueue(Runner):
    """A runner whose task queue is down, as a Celery broker can be."""

    def enqueue(self, label: str, pk: Any) -> None:
        raise ConnectionError("the broker is down")


def test_an_operation_that_cannot_be_queued_fails_instead_of_waiting_forever(
    settings: Any, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.LIVEOPS = {"RUNNER": "tests.test_liveness.UnreachableQueue"}
    op = Endless.objects.create(owner=user)
    with transaction.atomic():
        op.enqueue()  # dispatched on commit: the caller gets no exception
    op = stored(op)
    assert op.get_state().value == "FINISHED_ERROR"
    assert op.error_message == f"{NOT_QUEUED_MESSAGE} (ConnectionError)"
    assert op.started_on is None
    assert "could not queue" in caplog.text
