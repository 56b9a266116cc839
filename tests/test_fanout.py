"""The fan-out hub: one subscription per process, one frame for all, a slot per socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer

from liveops._fanout import Hub, Viewer
from liveops._publish import group_name
from liveops._updates import Chunk, Rank, Update
from tests.testapp.models import Scripted
from tests.viewers import marker_message, open_viewer

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 5
GROUP = "liveop.testapp.scripted.1"


def tick(version: int, *, group: str = GROUP, terminal: bool = False) -> Update:
    rank = Rank(1, terminal, version)
    end = " data-liveop-terminal" if terminal else ""
    html = f'<div id="s" data-liveop-v="{version}" data-liveop-attempt="1"{end}>{version}</div>'
    return Update(group, {"status": (Chunk(rank, html),)})


class Socket:
    """A socket's send side; ``blocked`` makes writes wait, as a full TCP buffer does."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.blocked = asyncio.Event()
        self.blocked.set()
        self.failed: list[bool] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.blocked.wait()
        assert event["type"] == "websocket.send"
        self.texts.append(event["text"])

    def viewer(self, *, staff: bool = False) -> Viewer:
        viewer = Viewer(self.send, staff=staff, on_failure=lambda: self.failed.append(True))
        viewer.release()
        return viewer


class CountingLayer(InMemoryChannelLayer):
    """An in-memory layer that counts membership calls."""

    def __init__(self) -> None:
        super().__init__()
        self.adds: list[str] = []
        self.discards: list[str] = []
        self.new_channels: list[str] = []

    async def new_channel(self, prefix: str = "specific.") -> str:
        await asyncio.sleep(0)  # as a layer that talks to its server would
        channel = await super().new_channel(prefix)
        self.new_channels.append(channel)
        return channel

    async def group_add(self, group: str, channel: str) -> None:
        self.adds.append(group)
        await super().group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.discards.append(group)
        await super().group_discard(group, channel)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# --- Viewer: the latest-wins slot ----------------------------------------------------------


async def test_every_viewer_gets_the_same_frame_string_serialized_once() -> None:
    sockets = [Socket() for _ in range(100)]
    viewers = [s.viewer() for s in sockets]
    update = tick(1)
    for viewer in viewers:
        viewer.offer(update)
    await settle()
    assert all(len(s.texts) == 1 for s in sockets)
    assert all(s.texts[0] is update.frame for s in sockets)  # one string, not 100 copies


async def test_a_socket_that_cannot_keep_up_holds_one_update_not_a_queue() -> None:
    slow = Socket()
    viewer = slow.viewer()
    viewer.offer(tick(1))
    await settle()  # written
    slow.blocked.clear()
    viewer.offer(tick(2))  # waits on the socket: what follows merges
    for version in range(3, 1001):
        viewer.offer(tick(version))
        assert viewer.pending == 1
    slow.blocked.set()
    await settle()
    versions = [json.loads(t)["liveop_html"] for t in slow.texts]
    assert len(versions) == 3  # the one written, the one blocked, then the newest
    assert ">1000</div>" in versions[-1]


async def test_a_slow_socket_does_not_hold_up_the_others() -> None:
    slow, fast = Socket(), Socket()
    slow.blocked.clear()
    viewers = [slow.viewer(), fast.viewer()]
    for version in range(1, 51):
        for viewer in viewers:
            viewer.offer(tick(version))
        await settle()
    assert len(fast.texts) == 50
    assert slow.texts == []
    slow.blocked.set()
    await settle()
    assert ">50</div>" in slow.texts[-1]


async def test_updates_that_arrive_before_release_follow_it() -> None:
    socket = Socket()
    viewer = Viewer(socket.send, staff=False, on_failure=lambda: None)
    viewer.offer(tick(1))
    viewer.offer(tick(2))
    await settle()
    assert socket.texts == []  # the snapshot goes first
    viewer.release()
    await settle()
    assert len(socket.texts) == 1
    assert ">2</div>" in socket.texts[0]


async def test_staff_and_others_get_their_own_frame() -> None:
    rank = Rank(1, True, 3)
    update = Update(GROUP, {"result": (Chunk(rank, "<p>failed</p>", "<pre>Traceback</pre>"),)})
    staff, other = Socket(), Socket()
    staff.viewer(staff=True).offer(update)
    other.viewer().offer(update)
    await settle()
    assert "Traceback" in staff.texts[0]
    assert "Traceback" not in other.texts[0]


async def test_a_socket_that_breaks_is_written_no_more() -> None:
    calls: list[str] = []

    async def broken(event: dict[str, Any]) -> None:
        calls.append(event["text"])
        raise OSError("gone")

    viewer = Viewer(broken, staff=False, on_failure=lambda: None)
    viewer.release()
    viewer.offer(tick(1))
    viewer.offer(tick(2))
    await settle()
    assert len(calls) == 1


# --- Hub: one channel, one membership per group ----------------------------------------------


async def test_a_process_joins_a_group_once_however_many_sockets_watch_it() -> None:
    layer = CountingLayer()
    hub = Hub(layer)
    sockets = [Socket() for _ in range(30)]
    viewers = [s.viewer() for s in sockets]
    await asyncio.gather(*(hub.subscribe(GROUP, v) for v in viewers))
    assert layer.adds == [GROUP]
    assert len(layer.groups[GROUP]) == 1  # one channel for the process
    await layer.group_send(GROUP, tick(7).to_message())
    for _ in range(50):
        if all(s.texts for s in sockets):
            break
        await asyncio.sleep(0.01)
    assert [len(s.texts) for s in sockets] == [1] * 30
    for viewer in viewers[:-1]:
        await hub.unsubscribe(GROUP, viewer)
    assert layer.discards == []
    await hub.unsubscribe(GROUP, viewers[-1])
    assert layer.discards == [GROUP]
    assert hub.groups == frozenset()


async def test_a_leave_racing_a_join_leaves_the_group_joined() -> None:
    layer = CountingLayer()
    hub = Hub(layer)
    first, second = Socket().viewer(), Socket().viewer()
    await hub.subscribe(GROUP, first)
    await asyncio.gather(hub.unsubscribe(GROUP, first), hub.subscribe(GROUP, second))
    assert hub.groups == {GROUP}
    assert hub.watchers(GROUP) == 1
    assert layer.groups.get(GROUP)


async def test_a_failing_layer_drops_every_socket_so_pages_reload_the_state() -> None:
    class FailingLayer(CountingLayer):
        async def receive(self, channel: str) -> dict[str, Any]:
            await asyncio.sleep(0.01)
            raise ConnectionError("redis went away")

    hub = Hub(FailingLayer())
    sockets = [Socket() for _ in range(3)]
    for socket in sockets:
        await hub.subscribe(GROUP, socket.viewer())
    for _ in range(50):
        if all(s.failed for s in sockets):
            break
        await asyncio.sleep(0.01)
    assert [s.failed for s in sockets] == [[True]] * 3
    assert hub.groups == frozenset()


async def test_a_foreign_message_on_the_channel_is_ignored(caplog: Any) -> None:
    hub = Hub(CountingLayer())
    socket = Socket()
    await hub.subscribe(GROUP, socket.viewer())
    hub.deliver({"type": "chat.message", "text": "hi"})
    hub.deliver(tick(2).to_message())
    await settle()
    assert len(socket.texts) == 1
    assert "ignored a message" in caplog.text


# --- through the consumer ------------------------------------------------------------------


async def test_many_sockets_of_one_process_share_one_channel(user: Any) -> None:
    op = await database_sync_to_async(Scripted.objects.create)(owner=user)
    layer = get_channel_layer()
    group = group_name(op.live_label(), op.pk)
    viewers = [await open_viewer(op.live_token, user=user) for _ in range(20)]
    try:
        for viewer in viewers:
            await viewer.receive_from(timeout=TIMEOUT)  # the snapshot
        assert len(layer.groups[group]) == 1
        await layer.group_send(group, marker_message(group, "<p>one</p>"))
        for viewer in viewers:
            assert json.loads(await viewer.receive_from(timeout=TIMEOUT)) == {
                "liveop_html": "<p>one</p>"
            }
    finally:
        for viewer in viewers:
            await viewer.disconnect()
    assert group not in layer.groups


async def test_a_burst_of_joins_keeps_few_layer_calls_in_flight() -> None:
    """redis-py 8 pools refuse their 101st connection: the hub never asks for that many."""
    from liveops._fanout import MEMBERSHIP_CONCURRENCY

    class SlowLayer(CountingLayer):
        in_flight = peak = 0

        async def group_add(self, group: str, channel: str) -> None:
            SlowLayer.in_flight += 1
            SlowLayer.peak = max(SlowLayer.peak, SlowLayer.in_flight)
            await asyncio.sleep(0.001)
            await super().group_add(group, channel)
            SlowLayer.in_flight -= 1

    layer = SlowLayer()
    hub = Hub(layer)
    groups = [f"liveop.testapp.scripted.{n}" for n in range(300)]
    await asyncio.gather(*(hub.subscribe(group, Socket().viewer()) for group in groups))
    assert hub.groups == set(groups)
    assert SlowLayer.peak == MEMBERSHIP_CONCURRENCY
    assert len(layer.new_channels) == 1


async def test_concurrent_first_subscribers_open_one_channel() -> None:
    layer = CountingLayer()
    hub = Hub(layer)
    await asyncio.gather(*(hub.subscribe(f"g{n}", Socket().viewer()) for n in range(10)))
    assert len(layer.new_channels) == 1


class RefusingLayer(InMemoryChannelLayer):
    """A layer whose pool is exhausted: every join fails."""

    async def group_add(self, group: str, channel: str) -> None:
        raise ConnectionError("Too many connections")


async def test_a_socket_the_layer_cannot_subscribe_is_closed_for_a_retry(
    settings: Any, user: Any, caplog: Any
) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.test_fanout.RefusingLayer"}}
    op = await database_sync_to_async(Scripted.objects.create)(owner=user)
    viewer = await open_viewer(op.live_token, user=user)
    # 4503 is not final: liveops.js reconnects with backoff (4400-4404 would stop it).
    assert await viewer.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4503}
    assert "could not subscribe" in caplog.text


async def test_updates_that_come_faster_than_a_pass_merge_at_the_hub() -> None:
    hub = Hub(CountingLayer())
    sockets = [Socket() for _ in range(3)]
    for socket in sockets:
        await hub.subscribe(GROUP, socket.viewer())
    for version in range(1, 6):  # five messages before the delivery task gets a turn
        hub.deliver(tick(version).to_message())
    await settle()
    hub.deliver(tick(6, terminal=True).to_message())
    await settle()
    for socket in sockets:
        assert len(socket.texts) == 2  # the newest of the five, then the end
        assert ">5</div>" in socket.texts[0]
        assert "data-liveop-terminal" in socket.texts[1]


async def test_a_pass_over_many_sockets_lets_the_server_work_in_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from liveops._fanout import YIELD_EVERY

    hub = Hub(CountingLayer())
    sockets = [Socket() for _ in range(4 * YIELD_EVERY)]
    for socket in sockets:
        await hub.subscribe(GROUP, socket.viewer())
    offered: list[Viewer] = []
    original_offer = Viewer.offer

    def counting_offer(viewer: Viewer, update: Update) -> None:
        offered.append(viewer)
        original_offer(viewer, update)

    monkeypatch.setattr(Viewer, "offer", counting_offer)
    offered_when_others_ran: list[int] = []

    async def other_work() -> None:
        offered_when_others_ran.append(len(offered))

    hub.deliver(tick(1).to_message())
    await asyncio.gather(other_work(), settle())
    for _ in range(100):  # the pass ends within a few turns of the loop
        if all(s.texts for s in sockets):
            break
        await asyncio.sleep(0)
    assert all(len(s.texts) == 1 for s in sockets)
    assert 0 < offered_when_others_ran[0] < len(sockets)
