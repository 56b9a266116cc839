"""``LiveOperationConsumer`` driven through the real ASGI stack (origin check, session, auth)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import lxml.html
import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from liveops._publish import group_name
from liveops._state import ALL_REGIONS, Phase
from tests.testapp.models import Gated, Scripted
from tests.viewers import (
    TIMEOUT,
    assert_closed_with,
    elements,
    marker_message,
    next_frame,
    open_viewer,
    run_op,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)

PHASE_LABELS = {
    Phase.NOT_STARTED: "Waiting to start",
    Phase.STARTED: "In progress",
    Phase.FINISHED_OK: "Finished",
    Phase.FINISHED_ERROR: "Failed",
    Phase.CANCELLED: "Cancelled",
}


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings: Any) -> None:
    """Create the user fixtures in milliseconds (autouse fixtures are set up first)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_layer_and_scripts() -> Iterator[None]:
    """Give every test a new in-memory layer (its queues belong to one event loop)."""
    channel_layers.backends.clear()
    yield
    for gate in Gated.GATES.values():
        gate.set()  # never leave a worker thread waiting after a failed test
    Gated.GATES.clear()
    Scripted.SCRIPTS.clear()
    channel_layers.backends.clear()


@pytest.fixture
def alice(user: Any) -> bytes:
    """The session cookie of the owner of the operations."""
    return session_cookie(user)


@pytest.fixture
def mallory(other_user: Any) -> bytes:
    """The session cookie of a user who owns none of them."""
    return session_cookie(other_user)


@pytest.fixture
def stella(staff_user: Any) -> bytes:
    """The session cookie of a staff user."""
    return session_cookie(staff_user)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    """Open sockets through ``tests.asgi.application``; disconnect them all afterwards."""
    opened: list[WebsocketCommunicator] = []

    async def _connect(
        *tokens: str,
        cookie: bytes | None = None,
        query: str | None = None,
        scope_user: Any = None,
    ) -> WebsocketCommunicator:
        communicator = await open_viewer(*tokens, query=query, user=scope_user, cookie=cookie)
        opened.append(communicator)
        return communicator

    yield _connect
    for communicator in opened:
        await communicator.disconnect(timeout=TIMEOUT)


@pytest.fixture
def timeline(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record, in order and from any thread, terminal UPDATEs, commits and terminal sends."""
    events: list[tuple[str, str]] = []
    wrapper_class = type(connections["default"])
    original_commit = wrapper_class.commit
    original_execute = CursorWrapper._execute_with_wrappers
    layer = get_channel_layer()
    original_group_send = layer.group_send

    def commit(self: Any) -> None:
        original_commit(self)
        events.append(("commit", threading.current_thread().name))

    def execute(self: CursorWrapper, sql: str, *args: Any, **kwargs: Any) -> Any:
        result = original_execute(self, sql, *args, **kwargs)
        if sql.startswith("UPDATE") and '"finished_on" = %s' in sql:
            events.append(("terminal update", threading.current_thread().name))
        return result

    async def group_send(group: str, message: dict[str, Any]) -> None:
        if message.get("terminal") and group.startswith("liveop."):  # not a list row
            events.append(("terminal sent", threading.current_thread().name))
        await original_group_send(group, message)

    monkeypatch.setattr(wrapper_class, "commit", commit)
    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", execute)
    monkeypatch.setattr(layer, "group_send", group_send)
    return events


# --- helpers -----------------------------------------------------------------------------


@database_sync_to_async
def create(model: type[Any], owner: Any, **fields: Any) -> Any:
    return model.objects.create(owner=owner, **fields)


@database_sync_to_async
def reload(op: Any) -> Any:
    return type(op).objects.get(pk=op.pk)


def region_ids(op: Any) -> list[str]:
    return [f"liveop-{op.pk}-{region}" for region in ALL_REGIONS]


def text(element: Any) -> str:
    return " ".join(element.text_content().split())


def result_items(result: Any) -> list[tuple[str, str]]:
    """Return the (key, value) pairs a result region lists."""
    return list(
        zip(
            [dt.text for dt in result.iter("dt")],
            [dd.text for dd in result.iter("dd")],
            strict=True,
        )
    )


def is_terminal(data: dict[str, Any], op: Any) -> bool:
    status = elements(data.get("liveop_html", "")).get(f"liveop-{op.pk}-status")
    return status is not None and status.get("data-liveop-terminal") is not None


async def frames_until_terminal(communicator: WebsocketCommunicator, op: Any) -> list[dict]:
    frames = []
    while True:
        data = await next_frame(communicator)
        frames.append(data)
        if is_terminal(data, op):
            return frames


async def probe(op: Any) -> dict[str, str]:
    """Send a marker frame to ``op``'s group: the next frame of a socket watching it."""
    html = f'<p data-probe="{uuid.uuid4().hex}"></p>'
    group = group_name(op.live_label(), op.pk)
    await get_channel_layer().group_send(group, marker_message(group, html))
    return {"liveop_html": html}


def assert_snapshot(data: dict[str, Any], op: Any, phase: Phase) -> dict[str, Any]:
    """Check a full snapshot of ``op`` in ``phase``; return its regions by name."""
    assert set(data) == {"liveop_html"}
    found = elements(data["liveop_html"])
    assert list(found) == region_ids(op)
    for element in found.values():
        assert element.get("hx-swap-oob") == "true"
        assert element.get("data-liveop-state") == phase.value
        assert element.get("data-liveop-v") == str(op.version)
        assert element.get("data-liveop-attempt") == str(op.attempt)
        assert (element.get("data-liveop-terminal") is not None) is phase.is_terminal
    return {region: found[f"liveop-{op.pk}-{region}"] for region in ALL_REGIONS}


# --- snapshots ---------------------------------------------------------------------------


def _fields_for(phase: Phase) -> dict[str, Any]:
    now = timezone.now()
    started = {"started_on": now - timedelta(seconds=5), "heartbeat_on": now}
    log = {"log": [[1, "first line"], [2, "second <b>line</b>"]], "log_seq": 2}
    return {
        Phase.NOT_STARTED: {},
        Phase.STARTED: {
            **started,
            **log,
            "stage_states": {"Prepare": "done", "Work": "active"},
        },
        Phase.FINISHED_OK: {
            **started,
            **log,
            "finished_on": now,
            "finished_successfully": True,
            "result_context": {"imported": 3},
            "stage_states": {"Prepare": "done", "Work": "done"},
        },
        Phase.FINISHED_ERROR: {
            **started,
            **log,
            "finished_on": now,
            "error_message": "Row 7 is broken.",
            "traceback": "Traceback (most recent call last):\nValueError: secret detail",
            "stage_states": {"Prepare": "done", "Work": "failed"},
        },
        Phase.CANCELLED: {
            **started,
            **log,
            "finished_on": now,
            "cancelled": True,
            "stage_states": {"Prepare": "cancelled"},
        },
    }[phase]


@pytest.mark.parametrize("phase", list(Phase))
async def test_snapshot_of_every_state_first_and_to_this_socket_only(connect, user, alice, phase):
    op = await create(Scripted, user, version=5, attempt=2, **_fields_for(phase))
    assert op.get_state() is phase

    first = await connect(op.live_token, cookie=alice)
    regions = assert_snapshot(await next_frame(first), op, phase)

    status = text(regions["status"])
    assert status.startswith(PHASE_LABELS[phase])
    stages = {li.get("class") for li in regions["stages"].iter("li")}
    expected_stages = {
        Phase.NOT_STARTED: {"Prepare": "pending", "Work": "pending"},
        Phase.STARTED: {"Prepare": "done", "Work": "active"},
        Phase.FINISHED_OK: {"Prepare": "done", "Work": "done"},
        Phase.FINISHED_ERROR: {"Prepare": "done", "Work": "failed"},
        Phase.CANCELLED: {"Prepare": "cancelled", "Work": "pending"},
    }[phase]
    assert stages == {f"liveops-stage liveops-stage--{s}" for s in expected_stages.values()}
    log_items = [(li.get("id"), li.text_content()) for li in regions["log"].iter("li")]
    if phase is Phase.NOT_STARTED:
        assert log_items == []
    else:
        assert log_items == [
            (f"liveop-{op.pk}-log-1", "first line"),
            (f"liveop-{op.pk}-log-2", "second <b>line</b>"),  # escaped, not markup
        ]
    result = text(regions["result"])
    if phase is Phase.FINISHED_OK:
        assert result_items(regions["result"]) == [("imported", "3")]
    elif phase is Phase.FINISHED_ERROR:
        assert "Row 7 is broken." in result
        assert "secret detail" not in result  # the owner is not staff
    elif phase is Phase.CANCELLED:
        assert "cancelled" in result
    else:
        assert result == ""
    if phase is Phase.STARTED:
        assert regions["progress"].find(".//progress") is not None

    # A second socket gets its own snapshot, and the first socket does not get it.
    second = await connect(op.live_token, cookie=alice)
    assert_snapshot(await next_frame(second), op, phase)
    marker = await probe(op)
    assert await next_frame(first) == marker
    assert await next_frame(second) == marker


def _prepare_then_result(p: Any) -> None:
    with p.stage("Prepare"):
        p.log("prepared")
    p.result(n=7)


async def test_operation_finished_before_connect_shows_its_result(connect, user, alice):
    op = await create(Scripted, user)
    Scripted.SCRIPTS[op.pk] = [_prepare_then_result]
    await run_op(op)
    op = await reload(op)
    assert op.get_state() is Phase.FINISHED_OK

    communicator = await connect(op.live_token, cookie=alice)
    regions = assert_snapshot(await next_frame(communicator), op, Phase.FINISHED_OK)
    assert text(regions["status"]).startswith("Finished")
    assert result_items(regions["result"]) == [("n", "7")]
    stage_classes = [li.get("class") for li in regions["stages"].iter("li")]
    assert stage_classes == [
        "liveops-stage liveops-stage--done",
        "liveops-stage liveops-stage--pending",
    ]


# --- live fragments ----------------------------------------------------------------------


async def test_live_fragments_are_forwarded_and_the_terminal_one_follows_commit(
    connect, user, alice, timeline
):
    op = await create(Gated, user)
    gate = Gated.GATES[op.pk] = threading.Event()
    bystander_op = await create(Scripted, user)

    watcher = await connect(op.live_token, cookie=alice)
    assert_snapshot(await next_frame(watcher), op, Phase.NOT_STARTED)
    bystander = await connect(bystander_op.live_token, cookie=alice)
    assert_snapshot(await next_frame(bystander), bystander_op, Phase.NOT_STARTED)

    running = asyncio.ensure_future(run_op(op))
    try:
        # run() blocks on its gate after reporting: these frames are live, not the end.
        seen: dict[str, Any] = {}
        versions: list[int] = []

        def reported() -> bool:
            if not {"status", "progress", "log"} <= seen.keys():
                return False
            meter = seen["progress"].find(".//progress")
            return (
                "working" in text(seen["status"])
                and meter is not None
                and meter.get("value") == "40.0"
                and [li.text for li in seen["log"].iter("li")] == ["line one"]
            )

        while not reported():
            data = await next_frame(watcher)
            assert set(data) == {"liveop_html"}
            for element_id, element in elements(data["liveop_html"]).items():
                assert element_id in region_ids(op)
                assert element.get("data-liveop-state") == Phase.STARTED.value
                assert element.get("data-liveop-terminal") is None
                versions.append(int(element.get("data-liveop-v")))
                seen[element_id.rsplit("-", 1)[1]] = element
        assert seen["log"].get("hx-swap-oob") == "beforeend"
        assert [li.get("id") for li in seen["log"].iter("li")] == [f"liveop-{op.pk}-log-1"]
        assert (await reload(op)).finished_on is None
    finally:
        gate.set()

    terminal_frames = await frames_until_terminal(watcher, op)
    # The terminal frame is sent after the terminal state was committed.
    stored = await reload(op)
    assert stored.get_state() is Phase.FINISHED_OK
    assert stored.result_context == {"answer": 42}
    await running
    (update,) = [i for i, event in enumerate(timeline) if event[0] == "terminal update"]
    (sent,) = [i for i, event in enumerate(timeline) if event[0] == "terminal sent"]
    worker = timeline[update][1]
    assert ("commit", worker) in timeline[update + 1 : sent]

    terminal = elements(terminal_frames[-1]["liveop_html"])
    assert list(terminal) == region_ids(op)
    for element in terminal.values():
        assert element.get("data-liveop-state") == Phase.FINISHED_OK.value
        assert element.get("data-liveop-terminal") is not None
        assert int(element.get("data-liveop-v")) == stored.version
        versions.append(int(element.get("data-liveop-v")))
    assert versions == sorted(versions)
    result = terminal[f"liveop-{op.pk}-result"]
    assert result_items(result) == [("answer", "42")]
    # Nothing of op reached the socket that watches another operation.
    marker = await probe(bystander_op)
    assert await next_frame(bystander) == marker


async def test_snapshot_comes_before_live_frames_for_a_running_operation(connect, user, alice):
    op = await create(Gated, user)
    gate = Gated.GATES[op.pk] = threading.Event()
    early = await connect(op.live_token, cookie=alice)
    await next_frame(early)
    running = asyncio.ensure_future(run_op(op))
    try:
        # Wait until the run has reported and is waiting on its gate.
        while "line one" not in (await next_frame(early)).get("liveop_html", ""):
            pass
        late = await connect(op.live_token, cookie=alice)
        regions = assert_snapshot(await next_frame(late), await reload(op), Phase.STARTED)
        assert text(regions["status"]).startswith("In progress")
    finally:
        gate.set()
    frames = await frames_until_terminal(late, op)
    assert all("liveop_html" in data for data in frames)
    await running


async def test_other_operations_runs_do_not_reach_a_socket(connect, user, alice):
    watched = await create(Scripted, user)
    other = await create(Scripted, user)
    Scripted.SCRIPTS[other.pk] = [lambda p: p.status("other's status"), lambda p: p.log("x")]
    communicator = await connect(watched.live_token, cookie=alice)
    await next_frame(communicator)
    await run_op(other)  # returns once its terminal message is in the layer
    await run_op(watched)
    frames = await frames_until_terminal(communicator, watched)
    for data in frames:
        assert set(elements(data["liveop_html"])) <= set(region_ids(watched))


# --- rejections --------------------------------------------------------------------------


async def test_another_users_operation_is_closed_with_4403(connect, user, mallory):
    op = await create(Scripted, user)
    communicator = await connect(op.live_token, cookie=mallory)
    await assert_closed_with(communicator, 4403)


async def test_anonymous_is_closed_with_4401(connect, user):
    op = await create(Scripted, user)
    communicator = await connect(op.live_token)
    await assert_closed_with(communicator, 4401)


async def test_anonymous_with_a_stale_session_is_closed_with_4401(connect, user):
    op = await create(Scripted, user)
    stale = f"{settings.SESSION_COOKIE_NAME}=nosuchsessionkey0123456789abcdef".encode()
    communicator = await connect(op.live_token, cookie=stale)
    await assert_closed_with(communicator, 4401)


async def test_unknown_pk_is_closed_with_4404(connect, alice):
    communicator = await connect(f"testapp.scripted:{uuid.uuid4()}", cookie=alice)
    await assert_closed_with(communicator, 4404)


@pytest.mark.parametrize(
    "label",
    ["auth.user", "testapp.nosuchmodel", "nosuchapp.scripted", "liveops.liveoperation"],
)
async def test_unknown_or_non_operation_model_is_closed_with_4404(connect, user, alice, label):
    op = await create(Scripted, user)  # the pk exists, but not for that label
    communicator = await connect(f"{label}:{op.pk}", cookie=alice)
    await assert_closed_with(communicator, 4404)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "op=",
        "other=testapp.scripted:00000000-0000-0000-0000-000000000000",
        "op=testapp.scripted",
        "op=testapp.scripted:not-a-uuid",
        "op=testapp.scripted:------------------------------------",
        "op=Testapp.Scripted:00000000-0000-0000-0000-000000000000",
        "op=testapp.scripted:00000000-0000-0000-0000-000000000000%27%20OR%201%3D1",
    ],
)
async def test_missing_or_malformed_op_is_closed_with_4400(connect, alice, query):
    communicator = await connect(query=query, cookie=alice)
    await assert_closed_with(communicator, 4400)


async def test_a_malformed_op_among_good_ones_is_a_bad_request(connect, user, alice):
    op = await create(Scripted, user)
    communicator = await connect(op.live_token, "garbage", cookie=alice)
    await assert_closed_with(communicator, 4400)


@database_sync_to_async
def _bulk_ops(owner: Any, n: int) -> list[Any]:
    return Scripted.objects.bulk_create([Scripted(owner=owner) for _ in range(n)])


async def test_more_than_50_operations_is_a_bad_request(connect, user, alice):
    ops = await _bulk_ops(user, 51)
    communicator = await connect(*[op.live_token for op in ops], cookie=alice)
    await assert_closed_with(communicator, 4400)


async def test_50_operations_are_allowed(connect, user, alice):
    ops = await _bulk_ops(user, 50)
    communicator = await connect(*[op.live_token for op in ops], cookie=alice)
    got = [await next_frame(communicator) for _ in ops]
    assert {next(iter(elements(d["liveop_html"]))) for d in got} == {
        f"liveop-{op.pk}-status" for op in ops
    }


# --- several operations on one socket ----------------------------------------------------


async def test_several_operations_with_rejections_on_one_socket(connect, user, other_user, alice):
    mine_a = await create(Scripted, user)
    mine_b = await create(Gated, user)
    gate = Gated.GATES[mine_b.pk] = threading.Event()
    theirs = await create(Scripted, other_user)
    missing = f"testapp.scripted:{uuid.uuid4()}"
    not_an_op = f"auth.user:{uuid.uuid4()}"
    tokens = [mine_a.live_token, theirs.live_token, missing, mine_b.live_token, not_an_op]
    communicator = await connect(*tokens, cookie=alice)

    frames = [await next_frame(communicator) for _ in tokens]
    rejected = {
        f["liveop_rejected"]["op"]: f["liveop_rejected"] for f in frames if "liveop_rejected" in f
    }
    assert rejected == {
        theirs.live_token: {"op": theirs.live_token, "code": 4403, "reason": "not allowed"},
        missing: {"op": missing, "code": 4404, "reason": "not found"},
        not_an_op: {"op": not_an_op, "code": 4404, "reason": "not found"},
    }
    snapshots = [f for f in frames if "liveop_html" in f]
    assert len(snapshots) == 2
    assert_snapshot(snapshots[0], mine_a, Phase.NOT_STARTED)
    assert_snapshot(snapshots[1], mine_b, Phase.NOT_STARTED)

    # The socket stayed open and carries both allowed operations.
    running = asyncio.ensure_future(run_op(mine_b))
    try:
        await run_op(mine_a)
        a_frames = []
        while not a_frames or not is_terminal(a_frames[-1], mine_a):
            data = await next_frame(communicator)
            ids = set(elements(data["liveop_html"]))
            if ids <= set(region_ids(mine_a)):
                a_frames.append(data)
            else:
                assert ids <= set(region_ids(mine_b))
    finally:
        gate.set()
    b_frames = await frames_until_terminal(communicator, mine_b)
    for data in b_frames:
        assert set(elements(data["liveop_html"])) <= set(region_ids(mine_b))
    await running
    # The rejected operation's group was left: nothing of it reaches this socket.
    marker = await probe(theirs)
    mine_marker = await probe(mine_a)
    assert await next_frame(communicator) == mine_marker
    assert marker != mine_marker


async def test_all_rejected_closes_with_the_most_specific_code(connect, other_user, alice):
    theirs = await create(Scripted, other_user)
    communicator = await connect(
        theirs.live_token, f"testapp.scripted:{uuid.uuid4()}", cookie=alice
    )
    await assert_closed_with(communicator, 4403)


# --- can_view() --------------------------------------------------------------------------


async def test_can_view_can_widen_access(connect, monkeypatch, user, other_user, mallory):
    op = await create(Scripted, user)
    default = Scripted.can_view
    monkeypatch.setattr(
        Scripted,
        "can_view",
        lambda self, u: (u.is_authenticated and u.username == "mallory") or default(self, u),
    )
    communicator = await connect(op.live_token, cookie=mallory)
    assert_snapshot(await next_frame(communicator), op, Phase.NOT_STARTED)


async def test_can_view_can_narrow_access(connect, monkeypatch, user, alice):
    op = await create(Scripted, user)
    asked: list[Any] = []

    def deny(self: Any, u: Any) -> bool:
        asked.append(u.pk)
        return False

    monkeypatch.setattr(Scripted, "can_view", deny)
    communicator = await connect(op.live_token, cookie=alice)
    await assert_closed_with(communicator, 4403)
    assert asked == [user.pk]


# --- staff -------------------------------------------------------------------------------


def _fail(p: Any) -> None:
    raise ValueError("row 2 is broken: secret detail")


async def test_failed_snapshot_shows_the_traceback_to_staff_only(connect, user, alice, stella):
    op = await create(Scripted, user)
    Scripted.SCRIPTS[op.pk] = [_fail]
    await run_op(op)
    op = await reload(op)
    assert "ValueError: row 2 is broken" in op.traceback

    owner = await connect(op.live_token, cookie=alice)
    owner_result = assert_snapshot(await next_frame(owner), op, Phase.FINISHED_ERROR)["result"]
    staff = await connect(op.live_token, cookie=stella)
    staff_result = assert_snapshot(await next_frame(staff), op, Phase.FINISHED_ERROR)["result"]

    assert "secret detail" not in lxml.html.tostring(owner_result, encoding="unicode")
    assert owner_result.find(".//details") is None
    details = staff_result.find(".//details")
    assert details is not None
    assert "ValueError: row 2 is broken: secret detail" in details.text_content()


async def _owner_and_staff_terminal_frames(
    connect: Any, user: Any, alice: bytes, stella: bytes, script: list[Any]
) -> tuple[Any, dict[str, Any], dict[str, Any], list[dict], list[dict]]:
    op = await create(Scripted, user)
    Scripted.SCRIPTS[op.pk] = script
    owner = await connect(op.live_token, cookie=alice)
    staff = await connect(op.live_token, cookie=stella)
    await next_frame(owner)
    await next_frame(staff)
    await run_op(op)
    owner_frames = await frames_until_terminal(owner, op)
    staff_frames = await frames_until_terminal(staff, op)
    return (
        op,
        elements(owner_frames[-1]["liveop_html"]),
        elements(staff_frames[-1]["liveop_html"]),
        owner_frames,
        staff_frames,
    )


async def test_live_terminal_frame_has_the_traceback_for_staff_only(connect, user, alice, stella):
    op, owner_end, staff_end, owner_frames, _ = await _owner_and_staff_terminal_frames(
        connect, user, alice, stella, [lambda p: p.log("row 1 ok"), _fail]
    )
    result_id = f"liveop-{op.pk}-result"
    assert all("secret detail" not in data["liveop_html"] for data in owner_frames)
    assert owner_end[result_id].find(".//details") is None
    assert "Failed" in text(owner_end[f"liveop-{op.pk}-status"])
    details = staff_end[result_id].find(".//details")
    assert details is not None
    assert "ValueError: row 2 is broken: secret detail" in details.text_content()
    assert staff_end[result_id].get("data-liveop-state") == Phase.FINISHED_ERROR.value


def _report_then_succeed(p: Any) -> None:
    p.percent(50)
    p.status("validating")
    p.log("row 1 ok")
    p.result(rows=1)


def _report_then_fail(p: Any) -> None:
    p.percent(50)
    p.status("validating")
    p.log("row 1 ok")
    _fail(p)


@pytest.mark.parametrize("script", [_report_then_succeed, _report_then_fail])
async def test_staff_terminal_frame_equals_the_owners_apart_from_the_traceback(
    connect, user, alice, stella, script
):
    """Staff must not lose the live log, percent and status the owner's page keeps."""
    op, owner_end, staff_end, _, _ = await _owner_and_staff_terminal_frames(
        connect, user, alice, stella, [script]
    )
    for details in staff_end[f"liveop-{op.pk}-result"].findall(".//details"):
        details.drop_tree()
    as_html = {k: lxml.html.tostring(v, encoding="unicode") for k, v in staff_end.items()}
    assert as_html == {k: lxml.html.tostring(v, encoding="unicode") for k, v in owner_end.items()}


# --- what the client sends ---------------------------------------------------------------


async def test_malformed_and_oversized_client_frames_are_survived(connect, user, alice):
    op = await create(Gated, user)
    gate = Gated.GATES[op.pk] = threading.Event()
    communicator = await connect(op.live_token, cookie=alice)
    await next_frame(communicator)

    await communicator.send_to(text_data="garbage \x00 not a frame")
    await communicator.send_to(text_data='{"liveop_html": ')
    await communicator.send_to(text_data='{"op": "auth.user:1", "close": 4400}')
    await communicator.send_to(bytes_data=b"\xff\xfe\x00binary")
    await communicator.send_to(text_data="x" * (2 * 1024 * 1024))

    running = asyncio.ensure_future(run_op(op))
    try:
        data = await next_frame(communicator)  # a live frame, so the socket is open
        assert set(elements(data["liveop_html"])) <= set(region_ids(op))
    finally:
        gate.set()
    await frames_until_terminal(communicator, op)
    await running


# --- database queries --------------------------------------------------------------------


@contextmanager
def count_queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Record (thread name, SQL) of every query, whatever thread or connection runs it.

    ``CaptureQueriesContext`` and ``connection.execute_wrapper()`` see one thread's
    connection only, while the consumer queries in ``database_sync_to_async``'s thread.
    """
    seen: list[tuple[str, str]] = []
    original = CursorWrapper._execute_with_wrappers

    def counting(self: CursorWrapper, sql: str, *args: Any, **kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, sql))
        return original(self, sql, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(CursorWrapper, "_execute_with_wrappers", counting)
        yield seen


def _tables(queries: list[tuple[str, str]]) -> list[str]:
    names = ["django_session", "auth_user", "testapp_scripted", "testapp_gated"]
    return sorted(next(n for n in names if f'"{n}"' in sql) for _, sql in queries)


async def test_connect_makes_one_query_per_operation_model(connect, monkeypatch, user, alice):
    ops = [await create(Scripted, user) for _ in range(3)] + [
        await create(Gated, user) for _ in range(2)
    ]
    with count_queries(monkeypatch) as queries:
        communicator = await connect(*[op.live_token for op in ops], cookie=alice)
        for _ in ops:
            assert "liveop_html" in await next_frame(communicator)
    # Session and user from AuthMiddlewareStack, then one query per operation model.
    assert _tables(queries) == ["auth_user", "django_session", "testapp_gated", "testapp_scripted"]
    assert len(queries) == 4
    assert all(thread != threading.current_thread().name for thread, _ in queries)


async def test_connect_with_cached_sessions_makes_two_queries(connect, monkeypatch, user, settings):
    """docs/performance.md: with sessions in a cache, a connect reads the user and the operation."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    op = await create(Scripted, user)
    cookie = await database_sync_to_async(session_cookie)(user)  # the login fills the cache
    with count_queries(monkeypatch) as queries:
        communicator = await connect(op.live_token, cookie=cookie)
        assert "liveop_html" in await next_frame(communicator)
    assert _tables(queries) == ["auth_user", "testapp_scripted"]


async def test_connect_with_a_user_in_scope_makes_only_the_operation_queries(
    connect, monkeypatch, user
):
    ops = await _bulk_ops(user, 50)
    with count_queries(monkeypatch) as queries:
        communicator = await connect(*[op.live_token for op in ops], scope_user=user)
        for _ in ops:
            assert "liveop_html" in await next_frame(communicator)
    assert _tables(queries) == ["testapp_scripted"]


async def test_the_consumer_listens_on_the_configured_layer(
    settings: Any, connect: Any, user: Any
) -> None:
    """LIVEOPS['CHANNEL_LAYER'] names the layer both the publisher and the consumer use."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
        "live": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
    }
    settings.LIVEOPS = {"RUNNER": "eager", "CHANNEL_LAYER": "live"}
    op = await create(Scripted, user)
    watcher = await connect(op.live_token, scope_user=user)
    await next_frame(watcher)  # the snapshot
    group = group_name(op.live_label(), op.pk)
    await channel_layers["default"].group_send(group, marker_message(group, "<p>default</p>"))
    await channel_layers["live"].group_send(group, marker_message(group, "<p>live</p>"))
    assert await next_frame(watcher) == {"liveop_html": "<p>live</p>"}
    assert await watcher.receive_nothing(timeout=0.2)


async def test_forwarding_a_fragment_skips_the_database_cleanup(
    connect: Any, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live frames touch no database, so they skip Channels' per-message cleanup."""
    import channels.consumer

    op = await create(Scripted, user)
    watcher = await connect(op.live_token, scope_user=user)
    await next_frame(watcher)  # the snapshot
    cleanups: list[int] = []
    cleaned = asyncio.Event()
    real_cleanup = channels.consumer.aclose_old_connections

    async def counting_cleanup() -> None:
        cleanups.append(1)
        cleaned.set()
        await real_cleanup()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting_cleanup)
    group = group_name(op.live_label(), op.pk)
    for n in range(20):
        await get_channel_layer().group_send(group, marker_message(group, f"<p>{n}</p>"))
    for n in range(20):
        assert json.loads(await watcher.receive_from(timeout=TIMEOUT)) == {
            "liveop_html": f"<p>{n}</p>"
        }
    assert cleanups == []
    await watcher.send_to(text_data="anything")  # other messages still get the cleanup
    await asyncio.wait_for(cleaned.wait(), TIMEOUT)
    assert cleanups == [1]
