"""Upgrading from django-liveops 0.4: its Celery messages, queued before the upgrade, still run.

0.4 sent ``liveops.runner._celery_task(app_label, ModelName, pk)``; ours is
``liveops.run_operation(label, pk)``. These tests run the task in this process (no
broker): a direct call, or Celery's eager ``apply()`` where retries matter.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from django.db import OperationalError

from liveops._state import Phase
from tests.testapp.models import Counted, CountedRun

celery_runner = pytest.importorskip("liveops.runners.celery")
LEGACY = "liveops.runner._celery_task"


def test_the_0_4_name_is_registered_with_the_same_delivery_options() -> None:
    from celery import current_app  # type: ignore[import-untyped]

    tasks = current_app.tasks
    legacy, ours = tasks[LEGACY], tasks[celery_runner.TASK_NAME]
    assert legacy is celery_runner.run_legacy_operation._get_current_object()
    options = ("acks_late", "reject_on_worker_lost", "ignore_result", "max_retries")
    assert {o: getattr(legacy, o) for o in options} == {o: getattr(ours, o) for o in options}
    assert (legacy.acks_late, legacy.reject_on_worker_lost, legacy.max_retries) == (
        True,
        True,
        None,
    )


@pytest.mark.django_db(transaction=True)
def test_a_0_4_message_runs_the_operation(user: Any) -> None:
    op = Counted.objects.create(owner=user)
    celery_runner.run_legacy_operation("testapp", "Counted", str(op.pk))
    op.refresh_from_db()
    assert op.get_state() is Phase.FINISHED_OK
    assert CountedRun.objects.filter(operation_id=op.pk).count() == 1
    # Delivered again (0.4's messages are at least once too): claimed already, nothing runs.
    celery_runner.run_legacy_operation("testapp", "Counted", str(op.pk))
    assert CountedRun.objects.filter(operation_id=op.pk).count() == 1


def test_the_model_class_name_becomes_our_label(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(celery_runner, "execute", lambda label, pk: calls.append((label, pk)))
    pk = str(uuid.uuid4())
    celery_runner.run_legacy_operation("testapp", "NarratedUnstored", pk)
    assert calls == [("testapp.narratedunstored", pk)]


@pytest.mark.parametrize(
    ("app_label", "model_name", "why"),
    [
        ("testapp", "Gone", "No model 'testapp.Gone'."),
        ("oldapp", "Export", "No model 'oldapp.Export'."),
        ("testapp", "CountedRun", "'testapp.CountedRun' is not a LiveOperation model."),
    ],
)
def test_an_unknown_model_is_logged_and_the_message_dropped(
    app_label: str,
    model_name: str,
    why: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def execute(label: str, pk: str) -> None:
        raise AssertionError("nothing may run")

    monkeypatch.setattr(celery_runner, "execute", execute)
    pk = str(uuid.uuid4())
    with caplog.at_level(logging.ERROR, logger="liveops"):
        # Eager apply(), as a worker would run it: it succeeds, so it is not retried.
        outcome = celery_runner.run_legacy_operation.apply(args=(app_label, model_name, pk))
    assert outcome.successful()
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert f"django-liveops 0.4 ({LEGACY}) for operation {pk} of {app_label}.{model_name}" in (
        message
    )
    assert why in message
    assert "Nothing ran, and the message is not retried." in message


def test_an_unreachable_database_is_retried_as_ours_is(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def execute(label: str, pk: str) -> None:
        calls.append((label, pk))
        if len(calls) == 1:
            raise OperationalError("the database restarts")

    monkeypatch.setattr(celery_runner, "execute", execute)
    pk = str(uuid.uuid4())
    outcome = celery_runner.run_legacy_operation.apply(args=("testapp", "Counted", pk))
    assert outcome.successful()
    assert calls == [("testapp.counted", pk)] * 2
