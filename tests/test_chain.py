"""Chaining: ``p.chain_to(next_op)`` finishes an operation and continues in another."""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest
from django.db import connection

from liveops import lifecycle
from liveops._fragments import render_regions
from liveops._state import Phase, StateView
from liveops.testing import LiveRun, RecordingProgress
from tests.testapp.models import Chaining, Gated, Scripted

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chaining(user: Any) -> Any:
    made: list[Any] = []

    def make(next_op: Any = None, **fields: Any) -> Chaining:
        op = Chaining.objects.create(owner=user, **fields)
        if next_op is not None:
            Chaining.NEXT[op.pk] = next_op
        made.append(op)
        return op

    yield make
    for op in made:
        Chaining.NEXT.pop(op.pk, None)


def test_the_operation_ends_and_the_next_one_runs_as_its_owner(
    chaining: Any, liveops_run: LiveRun, user: Any
) -> None:
    record = liveops_run(chaining(language="de"))
    first = record.op
    assert record.phase is Phase.FINISHED_OK
    assert first.result_context == {"rows": 3}
    (following,) = Scripted.objects.all()
    assert first.chained_to == {
        "op": following.live_token,
        "url": following.get_absolute_url(),
        "title": str(following),
    }
    assert (following.owner_id, following.language) == (user.pk, "de")
    assert following.get_state() is Phase.FINISHED_OK  # the eager runner ran it on commit


def test_the_end_links_to_the_next_operation_and_not_to_a_success_url(
    chaining: Any, liveops_run: LiveRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Chaining, "get_success_url", lambda self: "/done/")
    record = liveops_run(chaining())
    following = Scripted.objects.get()
    result = record.region("result")
    assert f'data-liveop-chain="{following.live_token}"' in result
    assert f'href="{following.get_absolute_url()}"' in result
    assert "data-liveop-continue" not in result
    assert record.texts("result") == ["Result", "rows", "3", "Next operation:", str(following)]


def test_a_hostile_title_is_escaped(
    chaining: Any, liveops_run: LiveRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    monkeypatch.setattr(Gated, "__str__", lambda self: self.label)
    monkeypatch.setattr("liveops.runners.dispatch", lambda label, pk: None)  # Gated would wait
    record = liveops_run(chaining(lambda: Gated(label=hostile)))
    assert record.op.chained_to["title"] == hostile
    result = record.region("result")
    assert "<img" not in result
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in result


def test_an_unsaved_next_operation_keeps_its_own_owner(
    chaining: Any, liveops_run: LiveRun, django_user_model: Any
) -> None:
    bob = django_user_model.objects.create_user("bob")
    record = liveops_run(chaining(lambda: Scripted(owner=bob, language="fr")))
    following = Scripted.objects.get()
    assert (following.owner_id, following.language) == (bob.pk, "fr")
    assert record.op.chained_to["op"] == following.live_token


def test_a_next_operation_that_started_already_fails_the_run(
    chaining: Any, liveops_run: LiveRun, user: Any
) -> None:
    started = Scripted.objects.create(owner=user)
    Scripted.objects.filter(pk=started.pk).update(started_on="2026-01-01T00:00:00Z")
    started.refresh_from_db()
    record = liveops_run(chaining(lambda: started))
    assert record.phase is Phase.FINISHED_ERROR
    assert "has not started" in record.op.traceback
    assert record.op.chained_to is None


def test_chaining_to_itself_fails_the_run(chaining: Any, liveops_run: LiveRun) -> None:
    op = chaining()
    Chaining.NEXT[op.pk] = lambda: Chaining.objects.get(pk=op.pk)
    record = liveops_run(op)
    assert record.phase is Phase.FINISHED_ERROR
    assert "in itself" in record.op.traceback


def test_anything_but_an_operation_fails_the_run(chaining: Any, liveops_run: LiveRun) -> None:
    record = liveops_run(chaining(lambda: "not an operation"))
    assert record.phase is Phase.FINISHED_ERROR
    assert "takes a LiveOperation" in record.op.traceback


def test_an_operation_ended_elsewhere_does_not_create_the_next_one(
    chaining: Any, liveops_run: LiveRun
) -> None:
    op = chaining()

    def cancelled_meanwhile() -> Scripted:
        # Someone else stores an end while run() is still going: its end wins.
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Chaining._meta.db_table} SET finished_on = %s, cancelled = %s "
                "WHERE id = %s",
                ["2026-01-01T00:00:00Z", True, op.pk.hex],
            )
        return Scripted()

    Chaining.NEXT[op.pk] = cancelled_meanwhile
    record = liveops_run(op)
    assert record.phase is Phase.CANCELLED
    assert not Scripted.objects.exists(), "the next operation was rolled back with the end"
    assert record.op.chained_to is None


def test_running_it_again_forgets_the_chain(
    chaining: Any, liveops_run: LiveRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = liveops_run(chaining())
    assert record.op.chained_to is not None
    monkeypatch.setattr("liveops.runners.dispatch", lambda label, pk: None)  # not run yet
    assert lifecycle.request_retry(record.op)
    record.op.refresh_from_db()
    assert record.op.chained_to is None
    assert record.op.attempt == 2


def test_recording_progress_keeps_the_next_operation_unsaved() -> None:
    p = RecordingProgress()
    following = Scripted()
    p.chain_to(following, {"rows": 2}, more=1)
    assert p.next_op is following
    assert following._state.adding
    assert p.phase is Phase.FINISHED_OK
    assert p.result_context == {"rows": 2, "more": 1}
    assert p.calls[-1] == ("chain_to", (following, {"rows": 2}), {"more": 1})
    p.log("ignored after the end")
    assert p.view.log_tail == ()


@pytest.mark.parametrize(("url", "linked"), [("/operations/x/1/", True), ("", False)])
def test_without_a_page_to_go_to_the_next_operation_is_named_not_linked(
    url: str, linked: bool
) -> None:
    chained = {"op": "testapp.scripted:1", "url": url, "title": "Sending"}
    view = StateView(phase=Phase.FINISHED_OK, chained_to=chained)
    html = render_regions(Scripted(owner_id=1), view, ["result"])
    assert ("data-liveop-chain" in html) is linked
    assert "Next operation: Sending" in " ".join(lxml.html.fromstring(html).text_content().split())
