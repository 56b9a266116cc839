"""The lifecycle defined once: the phase in SQL agrees with ``get_state()``; a new attempt
starts from every field's default; an open stage ends by one rule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from liveops import control
from liveops.lifecycle import PHASE_FILTERS, UNFINISHED, fresh_attempt, in_phase
from liveops.models import LiveOperation
from liveops.state import Phase, StageState, close_open_stages
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
        current_stage="Work",
        stage_states={"Prepare": "done", "Work": "cancelled"},
        heartbeat_on=NOW,
        extra_html={"chart": "<b>1</b>"},
        chained_to={"op": "x", "url": "/x/", "title": "X"},
    )
    used.refresh_from_db()
    assert control.request_retry(used)
    used.refresh_from_db()
    kept = {"id", "created_on", "attempt", "version"}
    for field in LiveOperation._meta.fields:
        if field.name not in kept:
            assert getattr(used, field.attname) == getattr(new, field.attname), field.name
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
    from liveops.lists import publish_enqueued_row
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
