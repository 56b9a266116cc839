"""The publisher with a real InMemoryChannelLayer: coalescing, the trailing update, commit
order, the log tail, and a layer that fails.

Each test joins the operation's group like a consumer would, runs ``execute()`` in a
worker thread, and reads what arrives. Where an ordering matters, a wrapper around the
layer's ``group_send`` holds one message back until the operation has done its part, so
the count of messages is exact rather than a matter of thread scheduling.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import DatabaseError
from lxml.html import HtmlElement

import liveops._publish
from liveops._execution import Run, execute
from liveops._fragments import render_regions
from liveops._publish import bind_server_loop, group_name
from liveops._state import ALL_REGIONS, Phase
from liveops._updates import Update
from liveops.progress import Progress
from tests.dom import parse
from tests.testapp.models import Scripted
from tests.viewers import in_thread

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")
Message = dict[str, Any]
Step = Callable[[Progress], object]


def root(message: Message) -> HtmlElement:
    return parse(Update.from_message(message).html())


def region(message: Message, name: str) -> HtmlElement | None:
    found = [el for el in root(message) if el.get("id", "").endswith(f"-{name}")]
    return found[0] if found else None


def percent_of(message: Message) -> str | None:
    progress = region(message, "progress")
    bar = None if progress is None else progress.find(".//*[@role='progressbar']")
    return None if bar is None else bar.get("aria-valuenow")


def log_seqs(message: Message) -> list[int]:
    log = region(message, "log")
    assert log is not None
    return [int(li.get("data-liveop-seq")) for li in log.iter("li")]


class Listener:
    """A channel in the operation's group, read the way a consumer reads it."""

    def __init__(self, layer: InMemoryChannelLayer, channel: str) -> None:
        self.layer = layer
        self.channel = channel

    async def next(self, wait: float = 5.0) -> Message:
        """Return the next message, failing after ``wait`` seconds without one."""
        message: Message = await asyncio.wait_for(self.layer.receive(self.channel), wait)
        return message

    async def until(self, predicate: Callable[[Message], bool]) -> list[Message]:
        """Receive until a message matches ``predicate``; return all received, in order."""
        received = [await self.next()]
        while not predicate(received[-1]):
            received.append(await self.next())
        return received

    async def assert_empty(self) -> None:
        """Check nothing more is queued (call once the sender is known to be done)."""
        with pytest.raises(TimeoutError):
            await self.next(wait=0.2)


class Tap:
    """Wrap the layer's group_send: record messages, hold one back until released."""

    def __init__(
        self,
        layer: InMemoryChannelLayer,
        monkeypatch: pytest.MonkeyPatch,
        *,
        hold: int | None = None,
        inspect: Callable[[Message], Awaitable[None]] | None = None,
    ) -> None:
        self.sent: list[Message] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        real = layer.group_send

        async def group_send(group: str, message: Message) -> None:
            if not group.startswith("liveop."):  # a list row (liveops.lists), not counted
                await real(group, message)
                return
            index = len(self.sent)
            self.sent.append(message)
            if inspect is not None:
                await inspect(message)
            if index == hold:
                self.holding.set()
                await asyncio.to_thread(self.release.wait, 5)
            await real(group, message)

        monkeypatch.setattr(layer, "group_send", group_send)


@pytest.fixture
def layer(settings: Any) -> InMemoryChannelLayer:
    # A fresh layer per test: the in-memory layer's queues belong to one event loop.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    found = get_channel_layer()
    assert isinstance(found, InMemoryChannelLayer)
    return found


@pytest.fixture
def gates() -> Iterator[list[threading.Event]]:
    """Events an operation waits on; all opened at the end so no worker thread is left."""
    opened: list[threading.Event] = []
    yield opened
    for gate in opened:
        gate.set()


def gate(gates: list[threading.Event]) -> threading.Event:
    event = threading.Event()
    gates.append(event)
    return event


async def subscribe(layer: InMemoryChannelLayer, op: Scripted) -> Listener:
    bind_server_loop(asyncio.get_running_loop())
    channel = await layer.new_channel()
    await layer.group_add(group_name(op.live_label(), op.pk), channel)
    return Listener(layer, channel)


def start(op: Scripted, *steps: Step) -> asyncio.Task[None]:
    """Execute ``op`` with ``steps`` as its run(), in a worker thread."""
    Scripted.SCRIPTS[op.pk] = list(steps)

    def run() -> None:
        try:
            execute(op.live_label(), op.pk)
        finally:
            Scripted.SCRIPTS.pop(op.pk, None)

    return asyncio.ensure_future(in_thread(run))


def wait(event: threading.Event) -> Step:
    def step(p: Progress) -> None:
        if not event.wait(5):
            raise TimeoutError("the test never opened this gate")

    return step


async def stored(op: Scripted) -> Scripted:
    return await in_thread(Scripted.objects.get, pk=op.pk)


def is_terminal(message: Message) -> bool:
    return bool(message["terminal"])


async def test_a_burst_is_coalesced_into_two_messages(
    settings: Any, layer: InMemoryChannelLayer, user: Any, gates: list[threading.Event]
) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 1}
    op = await in_thread(Scripted.objects.create, owner=user)
    listener = await subscribe(layer, op)
    first_received = gate(gates)

    def burst(p: Progress) -> None:
        for n in range(1, 10_001):
            p.log(f"line {n}")
        for _ in p.track(range(10_000), label="Rows"):
            pass

    begun = time.monotonic()
    task = start(op, wait(first_received), burst)
    first = await listener.next()
    first_received.set()
    rest = await listener.until(is_terminal)
    await asyncio.wait_for(task, 10)
    elapsed = time.monotonic() - begun
    messages = [first, *rest]

    # The first change goes out at once; the burst then waits for the next interval
    # (1 s), and the terminal flush, sooner than that, replaces the pending one.
    if elapsed < 0.9:
        assert len(messages) == 2
    else:  # a very slow machine: still bounded by the rate
        assert len(messages) <= elapsed * 1 + 2
    assert [m["terminal"] for m in messages] == [False] * (len(messages) - 1) + [True]
    assert "In progress" in region(first, "status").text_content()
    final = messages[-1]
    assert log_seqs(final) == list(range(9_801, 10_001))
    assert "(10000/10000)" in region(final, "progress").text_content()
    await listener.assert_empty()


async def test_the_last_value_of_a_burst_goes_out_while_running(
    settings: Any, layer: InMemoryChannelLayer, user: Any, gates: list[threading.Event]
) -> None:
    hz = 20
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": hz}
    op = await in_thread(Scripted.objects.create, owner=user)
    listener = await subscribe(layer, op)
    first_received, finish = gate(gates), gate(gates)

    def burst(p: Progress) -> None:
        for n in range(1, 101):
            p.percent(n)

    begun = time.monotonic()
    task = start(op, wait(first_received), burst, wait(finish))
    received = [await listener.next()]
    first_received.set()
    received += await listener.until(lambda m: percent_of(m) == "100")
    elapsed = time.monotonic() - begun

    assert not any(m["terminal"] for m in received)  # the operation is still running
    assert len(received) <= elapsed * hz + 2
    shown = [int(p) for p in map(percent_of, received) if p is not None]
    assert shown == sorted(shown)
    assert shown[-1] == 100
    finish.set()
    rest = await listener.until(is_terminal)
    await asyncio.wait_for(task, 10)
    assert len(rest) == 1


async def test_a_change_during_a_send_is_not_lost(
    settings: Any,
    layer: InMemoryChannelLayer,
    user: Any,
    gates: list[threading.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 20}
    tap = Tap(layer, monkeypatch, hold=0)
    op = await in_thread(Scripted.objects.create, owner=user)
    listener = await subscribe(layer, op)
    finish = gate(gates)

    def burst_while_sending(p: Progress) -> None:
        if not tap.holding.wait(5):
            raise TimeoutError("the first message was never sent")
        for n in range(1, 101):
            p.percent(n)  # the publisher is busy sending: no flush is scheduled now
        tap.release.set()

    task = start(op, burst_while_sending, wait(finish))
    received = await listener.until(lambda m: percent_of(m) == "100")
    # The started state, then one tick with the last value, scheduled when the send ended.
    assert len(received) == 2
    assert percent_of(received[0]) is None
    assert not any(m["terminal"] for m in received)
    finish.set()
    rest = await listener.until(is_terminal)
    await asyncio.wait_for(task, 10)
    assert len(rest) == 1


async def test_the_terminal_message_follows_the_commit(
    settings: Any,
    layer: InMemoryChannelLayer,
    user: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 20}
    stored_when_sent: list[bool] = []

    async def look_at_the_database(message: Message) -> None:
        if message["terminal"]:
            # Another connection, as a viewer's snapshot would read it.
            row = await stored(op)
            stored_when_sent.append(row.finished_on is not None and row.finished_successfully)

    Tap(layer, monkeypatch, inspect=look_at_the_database)
    op = await in_thread(Scripted.objects.create, owner=user)
    listener = await subscribe(layer, op)
    task = start(op, lambda p: p.log("almost"), lambda p: p.result(n=7))
    received = await listener.until(is_terminal)
    await asyncio.wait_for(task, 10)

    assert stored_when_sent == [True]
    final = received[-1]
    assert final["terminal"] is True
    assert final["group"] == group_name(op.live_label(), op.pk)
    regions = [el for el in root(final)]
    assert [el.get("id") for el in regions] == [f"liveop-{op.pk}-{r}" for r in ALL_REGIONS]
    assert all(el.get("data-liveop-terminal") is not None for el in regions)
    assert not any(m["terminal"] for m in received[:-1])
    row = await stored(op)
    assert row.get_state() is Phase.FINISHED_OK
    assert row.result_context == {"n": 7}
    await listener.assert_empty()


async def test_a_burst_longer_than_the_tail_sends_only_the_tail(
    settings: Any,
    layer: InMemoryChannelLayer,
    user: Any,
    gates: list[threading.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 20, "LOG_TAIL": 5}
    tap = Tap(layer, monkeypatch, hold=0)
    op = await in_thread(Scripted.objects.create, owner=user)
    listener = await subscribe(layer, op)
    finish = gate(gates)

    def burst(p: Progress) -> None:
        if not tap.holding.wait(5):
            raise TimeoutError("the first message was never sent")
        for n in range(1, 51):
            p.log(f"line {n}")
        tap.release.set()

    task = start(op, burst, wait(finish))
    started, tick = await listener.next(), await listener.next()
    assert region(started, "log") is None
    log = region(tick, "log")
    assert log is not None
    assert log.get("hx-swap-oob") == "beforeend"
    assert log.get("data-liveop-log-max") == "5"
    assert log_seqs(tick) == [46, 47, 48, 49, 50]
    assert [li.text for li in log.iter("li")] == [f"line {n}" for n in range(46, 51)]
    finish.set()
    (final,) = await listener.until(is_terminal)
    await asyncio.wait_for(task, 10)
    assert region(final, "log").get("hx-swap-oob") == "true"
    assert log_seqs(final) == [46, 47, 48, 49, 50]


async def test_a_failing_layer_never_fails_the_operation(
    layer: InMemoryChannelLayer,
    user: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[bool] = []

    async def broken(group: str, message: Message) -> None:
        attempts.append(message["terminal"])
        raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(layer, "group_send", broken)
    bind_server_loop(asyncio.get_running_loop())
    op = await in_thread(Scripted.objects.create, owner=user)
    task = start(op, lambda p: p.status("working"), lambda p: p.log("x"), lambda p: p.result(n=1))
    await asyncio.wait_for(task, 10)

    row = await stored(op)
    assert row.get_state() is Phase.FINISHED_OK
    assert row.result_context == {"n": 1}
    assert attempts[-1:] == [True]  # the terminal message was tried, and failed
    assert any(
        r.name == "liveops"
        and "could not send" in r.getMessage()
        and "ConnectionError" in r.getMessage()
        for r in caplog.records
    )


async def test_a_layer_that_never_answers_never_fails_the_operation(
    layer: InMemoryChannelLayer,
    user: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(liveops._publish, "SEND_TIMEOUT", 0.2)

    async def hanging(group: str, message: Message) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(layer, "group_send", hanging)
    bind_server_loop(asyncio.get_running_loop())
    op = await in_thread(Scripted.objects.create, owner=user)
    task = start(op, lambda p: p.log("x"), lambda p: p.result(n=2))
    await asyncio.wait_for(task, 10)

    row = await stored(op)
    assert row.get_state() is Phase.FINISHED_OK
    assert row.result_context == {"n": 2}
    assert any(r.name == "liveops" and "could not send" in r.getMessage() for r in caplog.records)


async def test_every_message_carries_the_steady_regions(
    settings: Any, layer: InMemoryChannelLayer, user: Any, gates: list[threading.Event]
) -> None:
    """A viewer who joined after the status was set sees it with the next message."""
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 20}
    op = await in_thread(Scripted.objects.create, owner=user)
    listener = await subscribe(layer, op)
    logged, finish = gate(gates), gate(gates)

    def status_then_log(p: Progress) -> None:
        p.status("Downloading customers.csv")
        if not logged.wait(5):
            raise TimeoutError("never released")
        p.log("only the log changed")

    task = start(op, status_then_log, wait(finish))
    await listener.until(lambda m: "Downloading" in region(m, "status").text_content())
    logged.set()
    (log_tick,) = await listener.until(lambda m: region(m, "log") is not None)
    ids = [el.get("id").rsplit("-", 1)[-1] for el in root(log_tick)]
    assert ids == ["status", "progress", "stages", "log"]
    assert "Downloading customers.csv" in region(log_tick, "status").text_content()
    finish.set()
    await listener.until(is_terminal)
    await asyncio.wait_for(task, 10)


async def test_an_idle_operation_resends_its_picture(
    settings: Any,
    layer: InMemoryChannelLayer,
    user: Any,
    gates: list[threading.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With nothing new to say, a running operation still re-sends its steady regions."""
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 20}
    monkeypatch.setattr(liveops._publish, "KEYFRAME_INTERVAL", 0.2)
    op = await in_thread(Scripted.objects.create, owner=user)
    listener = await subscribe(layer, op)
    finish = gate(gates)
    task = start(op, lambda p: p.status("Waiting for the bank"), wait(finish))
    shown = await listener.until(lambda m: "Waiting for the bank" in root(m).text_content())
    version = region(shown[-1], "status").get("data-liveop-v")
    keyframe = await listener.next(wait=2)
    assert region(keyframe, "status").get("data-liveop-v") == version  # nothing changed
    assert "Waiting for the bank" in region(keyframe, "status").text_content()
    assert region(keyframe, "log") is None
    finish.set()
    await listener.until(is_terminal)
    await asyncio.wait_for(task, 10)


async def test_the_terminal_message_equals_the_snapshot_read_later(
    settings: Any, layer: InMemoryChannelLayer, user: Any
) -> None:
    """Reloading a finished page shows exactly what the last live message showed."""
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 20}
    op = await in_thread(Scripted.objects.create, owner=user)
    listener = await subscribe(layer, op)

    def work(p: Progress) -> None:
        with p.stage("Prepare"):
            p.status("Checking rows", level="warning")
            for n in p.track(range(30), label="Rows", unit="row"):
                p.log(f"row {n}")
        p.result(rows=30)

    task = start(op, work)
    final = (await listener.until(is_terminal))[-1]
    await asyncio.wait_for(task, 10)
    row = await stored(op)
    snapshot = await in_thread(render_regions, row, row.to_view())
    assert Update.from_message(final).html() == snapshot


async def test_an_end_that_could_not_be_stored_is_never_shown(
    settings: Any,
    layer: InMemoryChannelLayer,
    user: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No terminal message without a stored end, and no keyframes after it either."""
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 20}
    monkeypatch.setattr(liveops._publish, "KEYFRAME_INTERVAL", 0.05)

    def database_gone(self: Run, view: Any) -> None:
        raise DatabaseError("the database went away")

    monkeypatch.setattr(Run, "_store_terminal", database_gone)
    op = await in_thread(Scripted.objects.create, owner=user)
    listener = await subscribe(layer, op)
    task = start(op, lambda p: p.status("Working"), lambda p: p.result(n=1))
    await asyncio.wait_for(task, 10)
    received: list[Message] = []
    with contextlib.suppress(TimeoutError):
        while True:  # drain what went out before the close took effect (maybe nothing)
            received.append(await listener.next(wait=0.3))
    assert not any(m["terminal"] for m in received)
    assert len(received) <= 3  # the started state, its tick, at most one keyframe
    await listener.assert_empty()
