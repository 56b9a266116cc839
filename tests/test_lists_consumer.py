"""List sockets (``list=<label>:<page>:<per_page>``) through the real ASGI stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import lxml.html
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.utils import timezone

from liveops import _grants as grants
from liveops._fanout import get_hub
from liveops._liveness import watchdog
from liveops._receivers import publish_row
from liveops.lists import list_group, owner_list_group
from tests.testapp.models import Scripted
from tests.viewers import (
    assert_closed_with,
    elements,
    next_frame,
    open_viewer,
    run_op,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)

LABEL = "testapp.scripted"
LIST = f"list={LABEL}:1:25"


@pytest.fixture(autouse=True)
def _fresh_layer() -> Iterator[None]:
    channel_layers.backends.clear()
    yield
    Scripted.SCRIPTS.clear()
    channel_layers.backends.clear()


@pytest.fixture
def alice(user: Any) -> bytes:
    return session_cookie(user)


@pytest.fixture
def bob(other_user: Any) -> bytes:
    return session_cookie(other_user)


@pytest.fixture
def stella(staff_user: Any) -> bytes:
    return session_cookie(staff_user)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    opened: list[WebsocketCommunicator] = []

    async def _connect(query: str, cookie: bytes | None = None) -> WebsocketCommunicator:
        communicator = await open_viewer(query=query, cookie=cookie)
        opened.append(communicator)
        return communicator

    yield _connect
    for communicator in opened:
        await communicator.disconnect(timeout=5)


@database_sync_to_async
def create(owner: Any, minutes: int = 0, **fields: Any) -> Scripted:
    """Create an operation ``minutes`` after a fixed instant (so the order is known)."""
    op = Scripted.objects.create(owner=owner)
    created = timezone.now().replace(year=2030) + timedelta(minutes=minutes)
    Scripted.objects.filter(pk=op.pk).update(created_on=created, **fields)
    return Scripted.objects.get(pk=op.pk)


async def publish(op: Any) -> None:
    """Publish ``op``'s row from a worker thread, as a hook would after a commit."""

    def call() -> None:
        try:
            publish_row(Scripted, op.pk)
        finally:
            connections.close_all()

    await sync_to_async(call, thread_sensitive=False)()


def rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (row id, state words) of each row in a frame."""
    found = []
    for element in lxml.html.fragments_fromstring(data["liveop_html"]):
        assert element.tag == "tr"
        assert element.get("data-liveop-row") == LABEL
        state = element.find_class("liveops-row-state")[0].text_content()
        found.append((element.get("id"), state))
    return found


def rid(op: Any) -> str:
    return f"liveop-row-{op.pk}"


# --- snapshots ---------------------------------------------------------------------------------


async def test_the_snapshot_holds_the_users_page_newest_first(
    connect, user, other_user, alice
) -> None:
    ops = [await create(user, minutes=n) for n in range(3)]
    await create(other_user, minutes=10)
    socket = await connect(LIST, cookie=alice)
    assert rows(await next_frame(socket)) == [(rid(op), "Waiting to start") for op in ops[::-1]]
    assert await socket.receive_nothing(timeout=0.1)

    second = await connect(f"list={LABEL}:2:2", cookie=alice)
    assert rows(await next_frame(second)) == [(rid(ops[0]), "Waiting to start")]


async def test_an_empty_page_sends_no_frame_but_stays_live(connect, user, alice) -> None:
    socket = await connect(LIST, cookie=alice)
    assert await socket.receive_nothing(timeout=0.1)
    op = await create(user)
    await publish(op)
    assert rows(await next_frame(socket)) == [(rid(op), "Waiting to start")]


async def test_a_lost_run_shows_as_interrupted_and_running_rows_are_watched(
    connect, user, alice, settings
) -> None:
    long_ago = timezone.now() - timedelta(seconds=settings.LIVEOPS["STALE_SECONDS"] * 10)
    lost = await create(user, minutes=1, started_on=long_ago, heartbeat_on=long_ago)
    running = await create(user, minutes=2, started_on=timezone.now(), heartbeat_on=timezone.now())
    socket = await connect(LIST, cookie=alice)
    assert rows(await next_frame(socket)) == [
        (rid(running), "In progress"),
        (rid(lost), "Interrupted"),
    ]
    assert (Scripted, running.pk) in watchdog._watched
    assert (Scripted, lost.pk) not in watchdog._watched
    await socket.disconnect()
    assert (Scripted, running.pk) not in watchdog._watched


# --- who gets which rows ---------------------------------------------------------------------


async def test_another_users_rows_never_reach_a_socket(connect, user, other_user, alice) -> None:
    mine = await create(user)
    theirs = await create(other_user)
    socket = await connect(LIST, cookie=alice)
    assert rows(await next_frame(socket)) == [(rid(mine), "Waiting to start")]
    await publish(theirs)
    await publish(mine)
    assert rows(await next_frame(socket)) == [(rid(mine), "Waiting to start")]
    assert await socket.receive_nothing(timeout=0.2)


async def test_staff_get_every_row(connect, user, other_user, stella) -> None:
    mine = await create(user, minutes=1)
    theirs = await create(other_user, minutes=2)
    socket = await connect(LIST, cookie=stella)
    assert [r for r, _ in rows(await next_frame(socket))] == [rid(theirs), rid(mine)]
    await publish(mine)
    assert [r for r, _ in rows(await next_frame(socket))] == [rid(mine)]
    await publish(theirs)
    assert [r for r, _ in rows(await next_frame(socket))] == [rid(theirs)]


async def test_sockets_join_one_group_each_and_leave_it(
    connect, user, staff_user, alice, stella
) -> None:
    hub = get_hub(get_channel_layer(), "default")
    owners = owner_list_group(LABEL, user.pk)
    await create(user)
    first = await connect(LIST, cookie=alice)
    # Two pages of one list on one socket share the group.
    both = await connect(f"{LIST}&list={LABEL}:1:5", cookie=alice)
    staff = await connect(LIST, cookie=stella)
    for socket in (first, both, staff):
        await next_frame(socket)  # the snapshot: sent once the groups are joined
    assert {owners, list_group(LABEL)} <= hub.groups
    assert (hub.watchers(owners), hub.watchers(list_group(LABEL))) == (2, 1)
    for socket in (first, both, staff):
        await socket.disconnect()
    assert not {owners, list_group(LABEL)} & hub.groups


# --- refusals ----------------------------------------------------------------------------------


async def test_anonymous_is_closed_with_4401(connect, user) -> None:
    await create(user)
    await assert_closed_with(await connect(LIST), 4401)


@pytest.mark.parametrize(
    "query",
    [
        "",
        f"list={LABEL}",
        f"list={LABEL}:1",
        f"list={LABEL}:0:25",
        f"list={LABEL}:1:0",
        f"list={LABEL}:1:101",
        f"list={LABEL}:x:25",
        f"list={LABEL}:1:25:9",
        f"list={LABEL.upper()}:1:25",
        f"list={LABEL}:-1:25",
        "&".join(f"list={LABEL}:{n}:25" for n in range(1, 7)),
        f"{LIST}&op=garbage",
    ],
)
async def test_a_malformed_list_is_closed_with_4400(connect, alice, query) -> None:
    await assert_closed_with(await connect(query, cookie=alice), 4400)


async def test_five_lists_are_allowed(connect, user, alice) -> None:
    await create(user)
    query = "&".join(f"list={LABEL}:1:{n}" for n in range(1, 6))
    socket = await connect(query, cookie=alice)
    for _ in range(5):
        assert len(rows(await next_frame(socket))) == 1


@pytest.mark.parametrize("label", ["auth.user", "testapp.nosuchmodel", "nosuchapp.scripted"])
async def test_an_unknown_type_is_closed_with_4404(connect, alice, label) -> None:
    await assert_closed_with(await connect(f"list={label}:1:25", cookie=alice), 4404)


async def test_an_unknown_type_beside_a_good_list_is_rejected_alone(connect, user, alice) -> None:
    op = await create(user)
    socket = await connect(f"list=auth.user:1:25&{LIST}", cookie=alice)
    assert await next_frame(socket) == {
        "liveop_rejected": {"list": "auth.user:1:25", "code": 4404, "reason": "not found"}
    }
    assert rows(await next_frame(socket)) == [(rid(op), "Waiting to start")]


# --- operations and a list on one socket -------------------------------------------------------


async def test_one_socket_carries_an_operation_and_a_list(connect, user, alice) -> None:
    op = await create(user)
    socket = await connect(f"op={op.live_token}&{LIST}", cookie=alice)
    snapshot = await next_frame(socket)
    assert f"liveop-{op.pk}-status" in elements(snapshot["liveop_html"])
    assert rows(await next_frame(socket)) == [(rid(op), "Waiting to start")]

    # Longer than one interval, so its list row says "In progress" before the end.
    Scripted.SCRIPTS[op.pk] = [lambda p: time.sleep(0.3), lambda p: p.result(rows=1)]
    await run_op(op)
    states, terminal = [], False
    while not (terminal and states and states[-1] == "Finished"):
        data = await asyncio.wait_for(next_frame(socket), 5)
        if data["liveop_html"].startswith("<tr"):
            states += [state for _, state in rows(data)]
        else:
            status = elements(data["liveop_html"]).get(f"liveop-{op.pk}-status")
            terminal = terminal or (
                status is not None and status.get("data-liveop-terminal") is not None
            )
    assert states == ["In progress", "Finished"]


async def test_a_list_refused_beside_a_good_operation(connect, user) -> None:
    """A socket without a session keeps its granted operation; its list is refused."""

    op = await create(user)
    grant = grants.issue(op.live_token, user, None)
    socket = await connect(f"op={op.live_token}~{grant}&{LIST}")
    assert await next_frame(socket) == {
        "liveop_rejected": {"list": f"{LABEL}:1:25", "code": 4401, "reason": "login required"}
    }
    assert f"liveop-{op.pk}-status" in elements((await next_frame(socket))["liveop_html"])
