"""The live operations list: rows, viewable_by, the view and the tag, publishing, hooks.

Sockets are in tests/test_lists_consumer.py, the client in tests/test_client_js_lists.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import lxml.html
import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connections, transaction
from django.test import Client
from django.urls import NoReverseMatch
from django.utils import timezone

import liveops.lists
from liveops import _receivers as receivers
from liveops import lifecycle
from liveops._execution import execute
from liveops._publish import bind_server_loop, group_name
from liveops._receivers import publish_row
from liveops._state import Phase
from liveops._updates import Rank, Update
from liveops.lifecycle import LOST_MESSAGE, end_as_interrupted, end_unqueued
from liveops.lists import (
    format_duration,
    list_group,
    list_group_for,
    owner_list_group,
    page_rows,
    render_row,
)
from tests.testapp.models import Gated, Scripted
from tests.viewers import in_thread

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")
LABEL = "testapp.scripted"
T0 = datetime(2030, 5, 17, 9, 30, tzinfo=UTC)


def row(html: str) -> Any:
    (element,) = lxml.html.fragments_fromstring(html)
    return element


def cells(element: Any) -> list[str]:
    return [" ".join(td.text_content().split()) for td in element.iter("td")]


def microseconds(value: datetime) -> int:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def make(owner: Any, created: datetime | None = None, **fields: Any) -> Scripted:
    """Create an operation; ``created`` overrides ``created_on`` (auto_now_add)."""
    op = Scripted.objects.create(owner=owner)
    if created is not None:
        fields["created_on"] = created
    if fields:
        Scripted.objects.filter(pk=op.pk).update(**fields)
    return Scripted.objects.select_related("owner").get(pk=op.pk)


# --- rows ------------------------------------------------------------------------------------


def test_a_row_carries_the_rank_of_a_region_and_its_cells(user) -> None:
    op = make(user, created=T0, version=3, attempt=2)
    element = row(render_row(op))
    assert element.tag == "tr"
    assert dict(element.attrib) == {
        "id": f"liveop-row-{op.pk}",
        "class": "liveops-row",
        "hx-swap-oob": "true",
        "data-liveop-row": LABEL,
        "data-liveop-sort": str(microseconds(T0)),
        "data-liveop-v": "3",
        "data-liveop-attempt": "2",
        "data-liveop-state": "NOT_STARTED",
    }
    assert cells(element) == [str(op), "Waiting to start", "alice", "—", "—"]
    (link,) = element.iter("a")
    assert link.get("href") == op.get_absolute_url()


def test_a_finished_row_says_when_it_started_and_how_long_it_took(user, settings) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    started = T0 + timedelta(microseconds=123456)
    op = make(
        user,
        started_on=started,
        finished_on=started + timedelta(seconds=4.2),
        finished_successfully=True,
        version=9,
    )
    element = row(render_row(op))
    assert element.get("data-liveop-terminal") == ""
    assert element.get("data-liveop-state") == "FINISHED_OK"
    (time,) = element.iter("time")
    # Whole seconds (HTML allows three digits at most), in the default time zone.
    assert time.get("datetime") == "2030-05-17T11:30:00+02:00"
    assert time.text == "May 17, 2030, 11:30 a.m."
    assert cells(element)[1:] == ["Finished", "alice", time.text, "4.2 s"]


def test_a_row_is_the_same_whatever_time_zone_the_request_activated(user, settings) -> None:
    op = make(user, started_on=T0)
    before = render_row(op)
    with timezone.override("Asia/Tokyo"):
        assert render_row(op) == before


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0 s"),
        (-1, "0.0 s"),
        (4.2, "4.2 s"),
        (59.94, "59.9 s"),
        (59.96, "1 min 00 s"),
        (185, "3 min 05 s"),
        (3599.6, "1 h 00 min"),
        (3720, "1 h 02 min"),
        (26 * 3600 + 5 * 60, "26 h 05 min"),
    ],
)
def test_durations_read_like_people_write_them(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    ("fields", "words", "state", "terminal"),
    [
        ({"started_on": T0}, "In progress", "STARTED", False),
        ({"started_on": T0, "cancel_requested": True}, "Cancelling…", "STARTED", False),
        ({"cancel_requested": True}, "Cancelling…", "NOT_STARTED", False),
        (
            {"started_on": T0, "finished_on": T0, "cancel_requested": True, "cancelled": True},
            "Cancelled",
            "CANCELLED",
            True,
        ),
        ({"started_on": T0, "finished_on": T0}, "Failed", "FINISHED_ERROR", True),
        (
            {"started_on": T0, "finished_on": T0, "interrupted": True},
            "Interrupted",
            "FINISHED_ERROR",
            True,
        ),
    ],
)
def test_the_state_is_in_words(user, fields, words, state, terminal) -> None:
    element = row(render_row(make(user, **fields)))
    assert cells(element)[1] == words
    assert element.get("data-liveop-state") == state
    assert (element.get("data-liveop-terminal") is not None) is terminal


def test_user_text_is_escaped(user, django_user_model, monkeypatch) -> None:
    hostile = "<script>alert(1)</script>\" onmouseover='x' & " + "\U0001f600é\u202e" * 5000
    monkeypatch.setattr(Scripted, "__str__", lambda self: hostile)
    owner = django_user_model.objects.create_user("<img src=x onerror=alert(2)>", password="pw")
    html = render_row(make(owner))
    assert "<script>" not in html
    assert "<img" not in html
    element = row(html)
    assert cells(element)[0] == hostile.strip()
    assert cells(element)[2] == "<img src=x onerror=alert(2)>"
    assert element.find(".//script") is None


def test_a_type_can_have_its_own_row_template(user, settings, tmp_path) -> None:
    folder = tmp_path / "liveops" / "testapp" / "gated"
    folder.mkdir(parents=True)
    (folder / "list_row.html").write_text(
        "<td>{{ title }}</td><td>{{ state_text }}</td><td>{{ op.label }}</td><td></td><td></td>"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    gated = Gated.objects.create(owner=user, label="nightly")
    element = row(render_row(gated))
    assert cells(element) == [str(gated), "Waiting to start", "nightly", "", ""]
    assert element.get("data-liveop-row") == "testapp.gated"
    assert cells(row(render_row(make(user))))[2] == "alice"  # other types keep the default


def test_a_row_without_the_package_urls_has_no_link(user, monkeypatch) -> None:
    def no_urls(self: Any) -> str:
        raise NoReverseMatch("liveops.urls is not included")

    monkeypatch.setattr(Scripted, "get_absolute_url", no_urls)
    element = row(render_row(make(user)))
    assert list(element.iter("a")) == []


# --- who sees what ---------------------------------------------------------------------------


def test_viewable_by_agrees_with_can_view(user, other_user, staff_user) -> None:
    from django.contrib.auth.models import AnonymousUser

    mine, theirs = make(user), make(other_user)
    assert list(Scripted.viewable_by(AnonymousUser())) == []
    assert set(Scripted.viewable_by(user)) == {mine}
    assert set(Scripted.viewable_by(staff_user)) == {mine, theirs}
    for who in (AnonymousUser(), user, other_user, staff_user):
        for op in (mine, theirs):
            assert op.can_view(who) is (op in set(Scripted.viewable_by(who)))


def test_group_names_are_short_ascii_and_apart_from_operation_groups() -> None:
    names = [
        list_group(LABEL),
        owner_list_group(LABEL, 7),
        owner_list_group(LABEL, "0b7f5c1e-2f4a-4c59-9b8e-3d2a1f6e7a01"),
        owner_list_group("a" * 100 + "." + "b" * 100, "someone@example.com " * 10),
    ]
    assert names[:2] == ["liveops-list.testapp.scripted", "liveops-list.testapp.scripted.7"]
    assert len(set(names)) == len(names)
    for name in names:
        assert name.isascii()
        assert len(name) < 100
        assert not name.startswith("liveop.")
        assert not group_name(LABEL, 7).startswith(name + ".")
    assert owner_list_group(LABEL, "a@b") != owner_list_group(LABEL, "a_b")


def test_a_socket_gets_every_row_only_while_viewable_by_is_everything(
    user, staff_user, monkeypatch
) -> None:
    assert list_group_for(Scripted, staff_user) == list_group(LABEL)
    assert list_group_for(Scripted, user) == owner_list_group(LABEL, user.pk)
    # A project where staff see their own operations only: no every-row push for them.
    monkeypatch.setattr(
        Scripted, "viewable_by", classmethod(lambda cls, u: cls.objects.filter(owner=u.pk))
    )
    assert list_group_for(Scripted, staff_user) == owner_list_group(LABEL, staff_user.pk)


def test_page_rows_are_newest_first_and_scoped(user, other_user) -> None:
    ops = [make(user, created=T0 + timedelta(seconds=n)) for n in range(5)]
    make(other_user, created=T0 + timedelta(seconds=10))
    assert page_rows(Scripted, user, 1, 2) == [ops[4], ops[3]]
    assert page_rows(Scripted, user, 3, 2) == [ops[0]]
    assert page_rows(Scripted, user, 4, 2) == []


# --- the view and the tag ---------------------------------------------------------------------


def list_url(label: str = LABEL) -> str:
    return f"/operations/{label}/"


def get_page(client: Client, query: str = "", label: str = LABEL) -> Any:
    response = client.get(list_url(label) + query)
    assert response.status_code == 200
    return lxml.html.fromstring(response.content)


def logged_in(who: Any) -> Client:
    client = Client()
    client.force_login(who)
    return client


def row_ids(page: Any) -> list[str]:
    return [tr.get("id") for tr in page.iter("tr") if tr.get("data-liveop-row")]


def test_the_list_needs_a_login() -> None:
    response = Client().get(list_url())
    assert response.status_code == 302
    assert "login" in response["Location"]


@pytest.mark.parametrize("label", ["auth.user", "testapp.nosuchmodel", "nope", "liveops.x"])
def test_a_label_that_names_no_operation_type_is_404(user, label) -> None:
    assert logged_in(user).get(list_url(label)).status_code == 404


def test_each_user_sees_their_own_and_staff_see_all(user, other_user, staff_user) -> None:
    alices = [make(user), make(user)]
    bobs = make(other_user)
    assert set(row_ids(get_page(logged_in(user)))) == {f"liveop-row-{op.pk}" for op in alices}
    assert row_ids(get_page(logged_in(other_user))) == [f"liveop-row-{bobs.pk}"]
    assert len(row_ids(get_page(logged_in(staff_user)))) == 3


def test_pages_of_25_newest_first_and_only_page_1_gains_rows(user) -> None:
    ops = [make(user, created=T0 + timedelta(minutes=n)) for n in range(30)]
    newest_first = [f"liveop-row-{op.pk}" for op in reversed(ops)]
    client = logged_in(user)

    first = get_page(client)
    assert row_ids(first) == newest_first[:25]
    (body,) = first.iter("tbody")
    assert body.get("data-liveop-list") == LABEL
    assert body.get("data-liveop-ws") == "/ws/liveops/"
    assert (body.get("data-liveop-list-page"), body.get("data-liveop-list-per-page")) == ("1", "25")
    assert body.get("data-liveop-list-insert") == ""
    (nav,) = first.find_class("liveops-pagination")
    assert [(a.get("rel"), a.get("href")) for a in nav.iter("a")] == [("next", "?page=2")]

    second = get_page(client, "?page=2&sort=keep")
    assert row_ids(second) == newest_first[25:]
    (body,) = second.iter("tbody")
    assert body.get("data-liveop-list-insert") is None
    assert body.get("data-liveop-list-page") == "2"
    (nav,) = second.find_class("liveops-pagination")
    assert [(a.get("rel"), a.get("href")) for a in nav.iter("a")] == [("prev", "?page=1&sort=keep")]
    assert client.get(list_url() + "?page=3").status_code == 404


def test_the_table_is_accessible_and_says_when_empty(user) -> None:
    client = logged_in(user)
    page = get_page(client)
    (table,) = page.find_class("liveops-list")
    assert table.find("caption").text == "Scripteds, newest first"
    assert [(th.get("scope"), th.text) for th in table.iter("th")] == [
        ("col", "Operation"),
        ("col", "State"),
        ("col", "Owner"),
        ("col", "Started"),
        ("col", "Duration"),
    ]
    (empty,) = page.find_class("liveops-list-empty")
    assert empty.text_content() == "No operations yet."
    assert empty.get("hidden") is None
    (body,) = page.iter("tbody")
    status = page.get_element_by_id(body.get("data-liveop-list-status"))
    assert status.get("role") == "status"
    assert page.find_class("liveops-pagination") == []
    assert page.find(".//h1").text == "Scripteds"

    make(user)
    (empty,) = get_page(client).find_class("liveops-list-empty")
    assert empty.get("hidden") == ""


def test_a_page_costs_the_same_queries_for_1_row_or_25(user, django_assert_num_queries) -> None:
    client = logged_in(user)
    make(user)
    client.get(list_url())  # warm the template and content type caches
    with django_assert_num_queries(4):  # session, user, count, the page with the owners
        get_page(client)
    for _ in range(30):
        make(user)
    with django_assert_num_queries(4):
        get_page(client)


def test_a_lost_run_on_the_page_shows_as_interrupted(user, settings) -> None:
    long_ago = timezone.now() - timedelta(seconds=settings.LIVEOPS["STALE_SECONDS"] * 10)
    op = make(user, started_on=long_ago, heartbeat_on=long_ago)
    page = get_page(logged_in(user))
    (tr,) = [tr for tr in page.iter("tr") if tr.get("id") == f"liveop-row-{op.pk}"]
    assert cells(tr)[1] == "Interrupted"
    assert Scripted.objects.get(pk=op.pk).error_message == LOST_MESSAGE


def test_a_project_template_comes_first(user, settings, tmp_path) -> None:
    (tmp_path / "testapp").mkdir()
    (tmp_path / "testapp" / "scripted_list.html").write_text(
        "{% load liveops %}<h1>Mine</h1>{% live_operation_list page_obj caption='Imports' %}"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    page = get_page(logged_in(user))
    assert page.find(".//h1").text == "Mine"
    assert page.find(".//caption").text == "Imports"


# --- publishing --------------------------------------------------------------------------------


@pytest.fixture
def layer(settings: Any) -> InMemoryChannelLayer:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    found = get_channel_layer()
    assert isinstance(found, InMemoryChannelLayer)
    return found


async def listen(layer: InMemoryChannelLayer, *groups: str) -> str:
    """Return a channel in ``groups``, read as the hub of a server process would."""
    bind_server_loop(asyncio.get_running_loop())
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    return channel


async def receive(layer: InMemoryChannelLayer, channel: str) -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), 5)
    return message


async def nothing_more(layer: InMemoryChannelLayer, channel: str) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.2)


async def test_a_row_goes_to_its_owners_list_and_to_the_all_list(layer, user, other_user) -> None:
    op = await in_thread(make, user, None, started_on=T0, version=4)
    alices = await listen(layer, owner_list_group(LABEL, user.pk))
    everyone = await listen(layer, list_group(LABEL))
    bobs = await listen(layer, owner_list_group(LABEL, other_user.pk))

    await in_thread(publish_row, Scripted, op.pk)

    expected = render_row(await in_thread(make_fresh, op))
    for channel, group in [
        (alices, owner_list_group(LABEL, user.pk)),
        (everyone, list_group(LABEL)),
    ]:
        message = await receive(layer, channel)
        assert message["group"] == group
        update = Update.from_message(message)
        assert list(update.regions) == [f"row-{op.pk}"]
        (chunk,) = update.regions[f"row-{op.pk}"]
        assert chunk.rank == Rank(1, False, 4)
        assert chunk.html == expected
        assert update.frame == f'{{"liveop_html": "{_json(expected)}"}}'
    await nothing_more(layer, bobs)


def make_fresh(op: Scripted) -> Scripted:
    return Scripted.objects.select_related("owner").get(pk=op.pk)


def _json(html: str) -> str:
    import json

    return json.dumps(html, ensure_ascii=False)[1:-1]


async def test_a_deleted_operation_publishes_nothing(layer, user) -> None:
    op = await in_thread(make, user)
    channel = await listen(layer, list_group(LABEL))
    pk = op.pk
    await in_thread(lambda: Scripted.objects.filter(pk=pk).delete())
    await in_thread(publish_row, Scripted, pk)
    await nothing_more(layer, channel)


async def test_a_failing_layer_or_renderer_never_raises(layer, user, monkeypatch, caplog) -> None:
    op = await in_thread(make, user)

    async def broken(group: str, message: dict[str, Any]) -> None:
        raise OSError("layer down")

    monkeypatch.setattr(layer, "group_send", broken)
    await listen(layer)
    with caplog.at_level(logging.WARNING, logger="liveops"):
        await in_thread(publish_row, Scripted, op.pk)
    assert "layer down" in caplog.text

    def boom(op: Any) -> str:
        raise RuntimeError("template broke")

    monkeypatch.setattr(liveops.lists, "render_row", boom)
    with caplog.at_level(logging.WARNING, logger="liveops"):
        await in_thread(publish_row, Scripted, op.pk)
    assert "template broke" in caplog.text


async def rows_of_a_run(layer: Any, user: Any, *steps: Any) -> list[tuple[str, Rank]]:
    """Enqueue a Scripted run of ``steps`` (eager) and return its rows: words and rank."""
    op = await in_thread(make, user)
    Scripted.SCRIPTS[op.pk] = list(steps)
    channel = await listen(layer, owner_list_group(LABEL, user.pk))

    def start() -> None:
        with transaction.atomic():
            Scripted.objects.get(pk=op.pk).enqueue()

    try:
        await in_thread(start)
    finally:
        Scripted.SCRIPTS.pop(op.pk, None)
    seen: list[tuple[str, Rank]] = []
    while not (seen and seen[-1][1].terminal):  # until the row of the end
        (chunk,) = Update.from_message(await receive(layer, channel)).regions[f"row-{op.pk}"]
        seen.append((cells(row(chunk.html))[1], chunk.rank))
    await nothing_more(layer, channel)
    return seen


async def test_a_run_shows_waiting_in_progress_then_finished(layer, user) -> None:
    slow = [lambda p: time.sleep(0.5), lambda p: p.result(rows=3)]  # past one interval
    seen = await rows_of_a_run(layer, user, *slow)
    assert [words for words, _ in seen] == ["Waiting to start", "In progress", "Finished"]
    ranks = [rank for _, rank in seen]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == 3


async def test_a_run_that_ends_within_an_interval_skips_in_progress(layer, user) -> None:
    seen = await rows_of_a_run(layer, user, lambda p: p.result(rows=3))
    assert [words for words, _ in seen] == ["Waiting to start", "Finished"]


# --- the hooks: every change publishes the row, once committed ---------------------------------


@pytest.fixture
def rows(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, str]]:
    """The rows published, as (state words, attempt, whether committed), in order."""
    published: list[tuple[str, int, str]] = []

    def record(sent: Any) -> None:
        op = type(sent)._default_manager.select_related("owner").get(pk=sent.pk)
        committed = "in transaction" if connections["default"].in_atomic_block else "committed"
        published.append((cells(row(render_row(op)))[1], op.attempt, committed))

    monkeypatch.setattr(receivers, "send_row", record)
    return published


def test_enqueue_claim_and_end_publish_the_row(user, rows) -> None:
    op = make(user)
    with transaction.atomic():
        op.enqueue()  # the eager runner runs it once this commits
        assert rows == []
    # A run this short never says "In progress": that row waits one interval (see
    # test_a_run_shows_waiting_in_progress_then_finished) and the end comes first.
    assert rows == [("Waiting to start", 1, "committed"), ("Finished", 1, "committed")]


def test_a_failed_run_publishes_failed(user, rows) -> None:
    op = make(user)
    Scripted.SCRIPTS[op.pk] = [lambda p: p.error("disk full")]
    try:
        execute(LABEL, op.pk)
    finally:
        Scripted.SCRIPTS.pop(op.pk)
    assert rows == [("Failed", 1, "committed")]


def test_a_publishing_failure_never_stops_the_dispatch(user, monkeypatch) -> None:
    def boom(op: Any) -> str:
        raise RuntimeError("template broke")

    monkeypatch.setattr(liveops.lists, "render_row", boom)
    op = make(user)
    with transaction.atomic():
        op.enqueue()
    assert Scripted.objects.get(pk=op.pk).get_state() is Phase.FINISHED_OK


def test_cancel_publishes_cancelling_or_cancelled(user, rows) -> None:
    running = make(user, started_on=T0)
    assert lifecycle.request_cancel(running)
    waiting = make(user)
    assert lifecycle.request_cancel(waiting)
    assert rows == [("Cancelling…", 1, "committed"), ("Cancelled", 1, "committed")]


def test_retry_publishes_the_new_attempt_then_its_run(user, rows) -> None:
    op = make(user, started_on=T0, finished_on=T0)
    assert lifecycle.request_retry(op)
    assert rows == [("Waiting to start", 2, "committed"), ("Finished", 2, "committed")]


def test_a_lost_or_unqueued_operation_publishes_its_end(user, rows) -> None:
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    lost = make(user, started_on=long_ago, heartbeat_on=long_ago)
    assert end_as_interrupted(Scripted, [lost.pk], LOST_MESSAGE, stale_only=True)
    unqueued = make(user)
    end_unqueued(LABEL, unqueued.pk, "no runner")
    assert rows == [("Interrupted", 1, "committed"), ("Failed", 1, "committed")]


def test_nothing_is_published_for_a_rolled_back_change(user, rows) -> None:
    op = make(user, started_on=T0)
    with transaction.atomic():
        lifecycle.request_cancel(op)
        transaction.set_rollback(True)
    assert rows == []
