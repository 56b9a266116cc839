"""The lifecycle defined once: the phase in SQL agrees with ``get_state()``; a new attempt
starts from every field's default; an open stage ends by one rule; every transition is
announced once, after it commits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from liveops import lifecycle
from liveops._state import Phase, StageState, close_open_stages
from liveops.lifecycle import PHASE_FILTERS, UNFINISHED, fresh_attempt, in_phase
from liveops.models import LiveOperation
from liveops.signals import Transition, operation_changed
from tests.testapp.models import Scripted

pytestmark = pytest.mark.django_db

NOW = timezone.now()

#: Every kind of row the lifecycle writes, as the fields that make it.
ROWS: dict[str, dict[str, Any]] = {
    "waiting": {},
    "waiting, cancel requested": {"cancel_requested": True},
    "running": {"started_on": NOW},
    "running, cancel requested": {"started_on": NOW, "cancel_requested": True},
    "finished": {"started_on": NOW, "finished_on": NOW, "finished_successfully": True},
    "failed": {"started_on": NOW, "finished_on": NOW},
    "interrupted": {"started_on": NOW, "finished_on": NOW, "interrupted": True},
    "never queued": {"finished_on": NOW},
    "cancelled while waiting": {"finished_on": NOW, "cancelled": True},
    "cancelled while running": {"started_on": NOW, "finished_on": NOW, "cancelled": True},
}


@pytest.mark.parametrize("kind", list(ROWS))
def test_exactly_the_phase_get_state_reads_matches_in_sql(user: Any, kind: str) -> None:
    op = Scripted.objects.create(owner=user, **ROWS[kind])
    everything = Scripted.objects.filter(pk=op.pk)
    matching = [phase for phase, where in PHASE_FILTERS.items() if everything.filter(where)]
    assert matching == [op.get_state()]
    assert in_phase(everything, op.get_state()).get() == op
    assert everything.filter(UNFINISHED).exists() is not op.get_state().is_terminal


def test_in_phase_takes_several_phases(user: Any) -> None:
    waiting = Scripted.objects.create(owner=user)
    running = Scripted.objects.create(owner=user, started_on=NOW)
    Scripted.objects.create(owner=user, finished_on=NOW)
    found = in_phase(Scripted.objects.all(), Phase.NOT_STARTED, Phase.STARTED)
    assert set(found) == {waiting, running}


def test_a_new_attempt_starts_from_every_fields_default(user: Any) -> None:
    new = Scripted.objects.create(owner=user, language="de")
    used = Scripted.objects.create(owner=user, language="de")
    Scripted.objects.filter(pk=used.pk).update(
        started_on=NOW,
        finished_on=NOW + timedelta(seconds=3),
        cancel_requested=True,
        cancelled=True,
        interrupted=True,
        traceback="Traceback …",
        error_message="It broke",
        result_context={"rows": 3},
        status_text="Working",
        status_level="warning",
        percent=42.0,
        log=[[1, "a line"]],
        log_seq=1,
        track={"done": 1, "total": 2, "label": "Rows", "unit": "row"},
        stage_states={"Prepare": "done", "Work": "cancelled"},
        heartbeat_on=NOW,
        extra_html={"chart": "<b>1</b>"},
        chained_to={"op": "x", "url": "/x/", "title": "X"},
    )
    used.refresh_from_db()
    assert lifecycle.request_retry(used)
    used.refresh_from_db()
    kept = {"id", "created_on", "attempt", "version", "heartbeat_on"}
    for field in LiveOperation._meta.fields:
        if field.name not in kept:
            assert getattr(used, field.attname) == getattr(new, field.attname), field.name
    assert used.heartbeat_on > NOW  # when the attempt was queued: its wait starts again
    assert used.queued_on() == used.heartbeat_on
    assert used.attempt == 2
    assert used.language == "de"


def test_fresh_attempt_values_are_new_objects_each_time() -> None:
    first, second = fresh_attempt(), fresh_attempt()
    assert first == second
    first["log"].append([1, "x"])
    assert second["log"] == []
    assert "owner" not in first
    assert "attempt" not in first


@pytest.mark.parametrize(
    ("phase", "becomes"),
    [
        (Phase.FINISHED_OK, StageState.DONE),
        (Phase.FINISHED_ERROR, StageState.FAILED),
        (Phase.CANCELLED, StageState.CANCELLED),
    ],
)
def test_an_open_stage_ends_by_how_the_operation_ended(phase: Phase, becomes: StageState) -> None:
    stages = {"Download": "done", "Validate": "active", "Import": "pending"}
    assert close_open_stages(stages, phase) == {
        "Download": StageState.DONE,
        "Validate": becomes,
        "Import": StageState.PENDING,
    }


def test_enqueue_without_the_liveops_app_says_the_fix(user: Any) -> None:
    from liveops._receivers import publish_enqueued_row
    from liveops.runners import dispatch_enqueued
    from liveops.signals import operation_enqueued

    op = Scripted.objects.create(owner=user)
    # As if "liveops" were not in INSTALLED_APPS: its ready() connected nothing.
    receivers = {"liveops.lists": publish_enqueued_row, "liveops.runners": dispatch_enqueued}
    for uid in receivers:
        operation_enqueued.disconnect(dispatch_uid=uid)
    try:
        with pytest.raises(ImproperlyConfigured, match='add "liveops" to INSTALLED_APPS'):
            op.enqueue()
    finally:
        for uid, receiver in receivers.items():
            operation_enqueued.connect(receiver, dispatch_uid=uid)
    assert op.get_state() is Phase.NOT_STARTED


# --- every transition is announced once, after it commits -------------------------------------


@pytest.fixture
def announced() -> Any:
    """The ``operation_changed`` announcements, as (transition, phase stored, committed)."""
    seen: list[tuple[Transition, Phase, bool]] = []
    not_as_stored: list[Transition] = []  # asserted here: send_robust would swallow an assert

    def record(sender: Any, op: Any, transition: Transition, **kwargs: Any) -> None:
        stored = sender.objects.get(pk=op.pk)
        if (op.version, op.get_state()) != (stored.version, stored.get_state()):
            not_as_stored.append(transition)
        seen.append((transition, stored.get_state(), not connection.in_atomic_block))

    operation_changed.connect(record, dispatch_uid="test.announced")
    yield seen
    operation_changed.disconnect(dispatch_uid="test.announced")
    assert not_as_stored == [], "the op announced differs from the stored row"


LONG_AGO = NOW - timedelta(days=1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("fields", "change", "expected"),
    [
        ({}, lambda op: lifecycle.claim(Scripted, op.pk), (Transition.STARTED, Phase.STARTED)),
        (
            {"started_on": NOW},
            lambda op: lifecycle.request_cancel(op),
            (Transition.CANCEL_REQUESTED, Phase.STARTED),
        ),
        (
            {},
            lambda op: lifecycle.request_cancel(op),
            (Transition.CANCEL_REQUESTED, Phase.CANCELLED),
        ),
        (
            {"started_on": LONG_AGO, "heartbeat_on": LONG_AGO},
            lambda op: lifecycle.end_as_interrupted(
                Scripted, [op.pk], lifecycle.LOST_MESSAGE, stale_only=True
            ),
            (Transition.INTERRUPTED, Phase.FINISHED_ERROR),
        ),
        (
            {},
            lambda op: lifecycle.end_unqueued(op.live_label(), op.pk, "no runner"),
            (Transition.NOT_QUEUED, Phase.FINISHED_ERROR),
        ),
    ],
    ids=["claim", "cancel running", "cancel waiting", "lost", "never queued"],
)
def test_each_transition_is_announced_once_after_commit(
    user: Any, announced: Any, fields: dict[str, Any], change: Any, expected: Any
) -> None:
    op = Scripted.objects.create(owner=user, **fields)
    with transaction.atomic():
        assert change(op)
        assert announced == []  # nothing is told before the change is stored for good
    assert announced == [(*expected, True)]


@pytest.mark.django_db(transaction=True)
def test_a_run_and_its_retry_announce_each_step_once(user: Any, announced: Any) -> None:
    op = Scripted.objects.create(owner=user)
    op.enqueue()  # the eager runner: claimed, run and ended at once
    assert announced == [
        (Transition.STARTED, Phase.STARTED, True),
        (Transition.FINISHED, Phase.FINISHED_OK, True),
    ]
    announced.clear()
    assert lifecycle.request_retry(op)
    assert [transition for transition, _, _ in announced] == [
        Transition.RETRIED,
        Transition.STARTED,
        Transition.FINISHED,
    ]


@pytest.mark.django_db(transaction=True)
def test_a_change_that_finds_nothing_to_do_announces_nothing(user: Any, announced: Any) -> None:
    ended = Scripted.objects.create(owner=user, started_on=NOW, finished_on=NOW)
    assert lifecycle.claim(Scripted, ended.pk) is None
    assert not lifecycle.request_cancel(ended)
    assert not lifecycle.end_as_interrupted(Scripted, [ended.pk], "gone", stale_only=False)
    assert not lifecycle.end_unqueued(ended.live_label(), ended.pk, "no runner")
    running = Scripted.objects.create(owner=user, started_on=NOW)
    assert not lifecycle.request_retry(running)
    assert announced == []


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_is_logged_and_the_change_kept(user: Any, caplog: Any) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver broke")

    operation_changed.connect(broken, dispatch_uid="test.broken")
    try:
        op = Scripted.objects.create(owner=user)
        assert lifecycle.request_cancel(op)
    finally:
        operation_changed.disconnect(dispatch_uid="test.broken")
    assert Scripted.objects.get(pk=op.pk).get_state() is Phase.CANCELLED
    assert "receiver broke" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_failing_list_receiver_does_not_keep_the_runner_from_the_operation(
    user: Any, caplog: Any
) -> None:
    from liveops._receivers import publish_enqueued_row
    from liveops.runners import dispatch_enqueued
    from liveops.signals import operation_enqueued

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the list broke")

    for uid in ("liveops.lists", "liveops.runners"):
        operation_enqueued.disconnect(dispatch_uid=uid)
    operation_enqueued.connect(broken, dispatch_uid="liveops.lists")  # first, as the lists are
    operation_enqueued.connect(dispatch_enqueued, dispatch_uid="liveops.runners")
    try:
        op = Scripted.objects.create(owner=user)
        op.enqueue()  # the eager runner
    finally:
        for uid in ("liveops.lists", "liveops.runners"):
            operation_enqueued.disconnect(dispatch_uid=uid)
        operation_enqueued.connect(publish_enqueued_row, dispatch_uid="liveops.lists")
        operation_enqueued.connect(dispatch_enqueued, dispatch_uid="liveops.runners")
    assert Scripted.objects.get(pk=op.pk).get_state() is Phase.FINISHED_OK
    assert "the list broke" in caplog.text
