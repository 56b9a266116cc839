"""An operation no worker starts is flagged, never left "Waiting to start" unseen (issue 12).

After ``WAIT_WARNING_SECONDS`` its page and its list rows say "Waiting for a worker for
3 minutes" with a sentence for the viewer, the watchdog of a server whose sockets show it
says so live (and logs once what to check), ``liveops_sweep`` reports it and with
``--end-waiting`` ends it, and a cancel still ends it at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import lxml.html
import pytest
from channels.layers import channel_layers
from django.core.management import call_command
from django.utils import timezone

from liveops._fragments import render_regions, wait_text
from liveops._liveness import heartbeat, long_waits
from liveops.lifecycle import NEVER_STARTED_MESSAGE, request_cancel, request_retry
from liveops.lists import render_row
from liveops.models import Phase
from liveops.signals import operation_waiting
from tests.testapp.models import Endless
from tests.viewers import open_viewer

pytestmark = pytest.mark.django_db(transaction=True)

SENTENCE = "No worker has started this operation yet."


@pytest.fixture(autouse=True)
def flag_after_two_minutes(settings: Any) -> Iterator[None]:
    settings.LIVEOPS = {"RUNNER": "eager", "WAIT_WARNING_SECONDS": 120}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def waiting_for(user: Any, seconds: float, **fields: Any) -> Endless:
    """Return an operation queued ``seconds`` ago that no worker has started."""
    op = Endless.objects.create(owner=user, **fields)
    Endless.objects.filter(pk=op.pk).update(created_on=timezone.now() - timedelta(seconds=seconds))
    return Endless.objects.get(pk=op.pk)


def region_text(html: str, op: Endless, region: str) -> str:
    element = lxml.html.fragment_fromstring(html, create_parent="div").get_element_by_id(
        f"liveop-{op.pk}-{region}"
    )
    return " ".join(element.text_content().split())


def regions(op: Endless) -> str:
    return render_regions(op, op.to_view())


def sweep(*args: str) -> str:
    out = StringIO()
    call_command("liveops_sweep", *args, stdout=out)
    return out.getvalue()


# --- what a page and a row say ------------------------------------------------------------


@pytest.mark.parametrize(
    ("waited", "limit", "expected"),
    [
        (119, 120, ""),
        (185, 120, "Waiting for a worker for 3 minutes"),
        (2 * 3600 + 60, 120, "Waiting for a worker for 2 hours"),
        (45, 30, "Waiting for a worker for 45 seconds"),
        (1, 0.5, "Waiting for a worker for 1 second"),
        (10**6, 0, ""),  # 0 turns the flag off
    ],
)
def test_the_wait_in_words(settings: Any, waited: float, limit: float, expected: str) -> None:
    settings.LIVEOPS = {"WAIT_WARNING_SECONDS": limit}
    since = timezone.now().timestamp() - waited
    assert wait_text(since).replace("\xa0", " ") == expected  # timesince's no-break space
    assert wait_text(None) == ""  # started or ended: no wait


def test_a_short_wait_says_waiting_to_start(user: Any) -> None:
    html = regions(waiting_for(user, 30))
    op = Endless.objects.get()
    assert region_text(html, op, "status") == "Waiting to start"
    assert region_text(html, op, "notice") == ""


def test_a_long_wait_is_said_on_the_page_and_in_the_row(user: Any) -> None:
    op = waiting_for(user, 185)
    html = regions(op)
    assert region_text(html, op, "status") == "Waiting for a worker for 3 minutes"
    assert region_text(html, op, "notice").startswith(SENTENCE)
    row = lxml.html.fragment_fromstring(render_row(op))
    state = row.find_class("liveops-row-state")[0].text_content()
    assert " ".join(state.split()) == "Waiting for a worker for 3 minutes"


def test_the_wait_is_said_in_the_operations_language(user: Any) -> None:
    op = waiting_for(user, 185, language="de")
    status = region_text(regions(op), op, "status")
    assert status == "Wartet seit 3 Minuten auf einen Worker"


def test_a_started_operation_is_not_flagged(user: Any) -> None:
    op = waiting_for(user, 600)
    Endless.objects.filter(pk=op.pk).update(started_on=timezone.now(), heartbeat_on=timezone.now())
    op = Endless.objects.get(pk=op.pk)
    assert op.queued_on() is None
    assert region_text(regions(op), op, "status").startswith("In progress")
    assert long_waits(Endless) == []


def test_a_retry_starts_the_wait_afresh(user: Any) -> None:
    op = waiting_for(user, 600)
    Endless.objects.filter(pk=op.pk).update(finished_on=timezone.now())  # it ended long ago
    op = Endless.objects.get(pk=op.pk)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Endless, "enqueue", lambda self: None)  # nothing runs the new attempt
        assert request_retry(op)
    assert op.get_state() is Phase.NOT_STARTED
    assert region_text(regions(op), op, "status") == "Waiting to start"
    assert long_waits(Endless) == []


def test_a_flagged_operation_can_still_be_cancelled(user: Any) -> None:
    op = waiting_for(user, 600)
    assert long_waits(Endless) == [op]
    assert request_cancel(op)
    assert op.get_state() is Phase.CANCELLED
    assert long_waits(Endless) == []


# --- the sweep -------------------------------------------------------------------------


def test_the_sweep_reports_long_waits_and_flags_them(user: Any) -> None:
    flagged, fresh = waiting_for(user, 600), waiting_for(user, 10)
    sent: list[tuple[Any, timedelta]] = []

    def receiver(sender: Any, op: Any, waited: timedelta, **kwargs: Any) -> None:
        sent.append((op.pk, waited))

    operation_waiting.connect(receiver)
    try:
        out = sweep()
    finally:
        operation_waiting.disconnect(receiver)
    assert f"testapp.Endless {flagged.pk}: no worker has started it for 10\xa0minutes." in out
    assert str(fresh.pk) not in out
    assert "1 operation(s) waiting for a worker for more than 120 s still waiting." in out
    assert "Check that a worker is running" in out
    assert [pk for pk, _ in sent] == [flagged.pk]
    assert sent[0][1] >= timedelta(seconds=600)
    # Reporting changes nothing stored.
    assert Endless.objects.get(pk=flagged.pk).get_state() is Phase.NOT_STARTED


def test_the_sweep_ends_long_waits_when_asked(user: Any) -> None:
    flagged, fresh = waiting_for(user, 600), waiting_for(user, 10)
    out = sweep("--end-waiting")
    assert "testapp.Endless: 1 waiting operation(s) ended." in out
    ended = Endless.objects.get(pk=flagged.pk)
    assert ended.get_state() is Phase.FINISHED_ERROR
    assert ended.error_message == NEVER_STARTED_MESSAGE
    assert Endless.objects.get(pk=fresh.pk).get_state() is Phase.NOT_STARTED
    assert "0 operation(s) waiting" in sweep("--end-waiting")  # and only once


def test_the_sweep_says_nothing_of_waits_when_the_flag_is_off(settings: Any, user: Any) -> None:
    settings.LIVEOPS = {"WAIT_WARNING_SECONDS": 0}
    waiting_for(user, 10**6)
    out = sweep("--end-waiting")
    assert "waiting" not in out
    assert Endless.objects.get().get_state() is Phase.NOT_STARTED


# --- live: the watchdog of the server the page is connected to --------------------------------


def test_an_open_page_is_told_when_the_wait_gets_long(
    settings: Any, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "HEARTBEAT_SECONDS": 0.2, "STALE_SECONDS": 1.0}
    heartbeat._wake.set()
    op = waiting_for(user, 0)
    settings.LIVEOPS = {**settings.LIVEOPS, "WAIT_WARNING_SECONDS": 0.5}

    async def watch() -> tuple[str, str]:
        viewer = await open_viewer(op.live_token, user=user)
        try:
            snapshot = json.loads(await viewer.receive_from(timeout=5))["liveop_html"]
            flagged = json.loads(await viewer.receive_from(timeout=5))["liveop_html"]
            await asyncio.sleep(1.0)  # more patrols: the wait is flagged again only each minute
            assert await viewer.receive_nothing(timeout=0.3)
            return snapshot, flagged
        finally:
            await viewer.disconnect()

    with caplog.at_level(logging.WARNING, logger="liveops"):
        snapshot, flagged = asyncio.run(watch())
    assert region_text(snapshot, op, "status") == "Waiting to start"
    assert region_text(flagged, op, "status") in {
        f"Waiting for a worker for {n} second{'' if n == 1 else 's'}" for n in (0, 1, 2, 3)
    }
    assert region_text(flagged, op, "notice").startswith(SENTENCE)
    warnings = [r.getMessage() for r in caplog.records if "for a worker" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"{op} has waited 0 s for a worker (RUNNER 'eager')" in warnings[0]
    assert "check that a worker is running" in warnings[0]


def test_an_open_list_is_told_when_the_wait_gets_long(settings: Any, user: Any) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "HEARTBEAT_SECONDS": 0.2, "STALE_SECONDS": 1.0}
    heartbeat._wake.set()
    op = waiting_for(user, 0)
    settings.LIVEOPS = {**settings.LIVEOPS, "WAIT_WARNING_SECONDS": 0.5}

    async def watch() -> tuple[str, str]:
        viewer = await open_viewer(query=f"list={op.live_label()}:1:25", user=user)
        try:
            snapshot = json.loads(await viewer.receive_from(timeout=5))["liveop_html"]
            flagged = json.loads(await viewer.receive_from(timeout=5))["liveop_html"]
            return snapshot, flagged
        finally:
            await viewer.disconnect()

    snapshot, flagged = asyncio.run(watch())

    def state(html: str) -> str:
        row = lxml.html.fragment_fromstring(html)
        assert row.get("id") == f"liveop-row-{op.pk}"
        return " ".join(row.find_class("liveops-row-state")[0].text_content().split())

    assert state(snapshot) == "Waiting to start"
    assert state(flagged).startswith("Waiting for a worker for ")
