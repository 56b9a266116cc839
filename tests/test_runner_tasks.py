"""The tasks runner: Django's task framework, in process and with a real db_worker."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from liveops.models import Phase
from tests.pg_workers import (
    WorkerProcess,
    database_name,
    python,
    require_postgres,
    wait_for,
    worker_env,
)
from tests.testapp.models import Counted, CountedRun

# Django 6 has django.tasks; on Django 5.2 the django-tasks backport provides it.
_TASKS = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"
IMMEDIATE = f"{_TASKS}.backends.immediate.ImmediateBackend"


@pytest.fixture
def fresh_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Import liveops.runners.tasks anew in the test; restore the old module afterwards."""
    monkeypatch.delitem(sys.modules, "liveops.runners.tasks", raising=False)


# --- in process (any database) ----------------------------------------------------------


@pytest.mark.django_db
def test_immediate_backend_runs_the_operation_once_the_transaction_commits(
    settings, user, django_capture_on_commit_callbacks
):
    settings.TASKS = {"default": {"BACKEND": IMMEDIATE}}
    settings.LIVEOPS = {"RUNNER": "tasks"}
    with django_capture_on_commit_callbacks(execute=True):
        op = Counted.objects.create(owner=user)
        op.enqueue()
        op.refresh_from_db()
        assert op.get_state() is Phase.NOT_STARTED
    op.refresh_from_db()
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {"runs": 1, "pid": os.getpid()}


@pytest.mark.django_db
def test_tasks_options_pick_the_queue(settings, user, django_capture_on_commit_callbacks):
    from liveops.runners.tasks import run_operation

    settings.TASKS = {"default": {"BACKEND": IMMEDIATE, "QUEUES": ["default", "liveops"]}}
    settings.LIVEOPS = {"RUNNER": "tasks", "TASKS_OPTIONS": {"queue_name": "liveops"}}
    task_base = importlib.import_module(f"{_TASKS}.base")
    seen = []

    def record(sender, task_result, **kwargs):
        seen.append((task_result.task.queue_name, task_result.args))

    signals = importlib.import_module(f"{_TASKS}.signals")
    signals.task_enqueued.connect(record)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            op = Counted.objects.create(owner=user)
            op.enqueue()
    finally:
        signals.task_enqueued.disconnect(record)
    assert seen == [("liveops", [op.live_label(), str(op.pk)])]
    assert isinstance(run_operation, task_base.Task)
    assert run_operation.module_path == "liveops.runners.tasks.run_operation"


@pytest.mark.usefixtures("fresh_module")
def test_import_without_the_task_framework_names_the_extra(monkeypatch):
    for name in ("django.tasks", "django.tasks.exceptions", "django_tasks"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImproperlyConfigured, match=r'pip install "django-liveops\[tasks\]"'):
        importlib.import_module("liveops.runners.tasks")


@pytest.mark.usefixtures("fresh_module")
def test_a_default_backend_without_the_default_queue_is_explained(settings):
    settings.TASKS = {"default": {"BACKEND": IMMEDIATE, "QUEUES": ["liveops"]}}
    with pytest.raises(ImproperlyConfigured, match=r"QUEUES: \['default', 'liveops'\]"):
        importlib.import_module("liveops.runners.tasks")


# --- a db_worker process (PostgreSQL) -----------------------------------------------------


@dataclass
class DbWorker:
    process: WorkerProcess
    queue: str


@pytest.fixture(scope="session")
def services() -> None:
    require_postgres()


@pytest.fixture(scope="module")
def db_worker(request: pytest.FixtureRequest, services: None) -> Iterator[DbWorker]:
    request.getfixturevalue("django_db_setup")
    queue = f"liveops-test-{uuid.uuid4().hex[:8]}"
    process = WorkerProcess(
        "db_worker",
        python(
            *("-m", "django", "db_worker", "--queue-name", queue),
            *("--interval", "0.1", "--no-startup-delay", "--no-reload", "--verbosity", "2"),
        ),
        worker_env(database_name()),
    )
    try:
        process.wait_for_output(r"Starting worker", timeout=20)
        yield DbWorker(process, queue)
    finally:
        process.stop()


@pytest.mark.postgres
@pytest.mark.usefixtures("services")  # first: before pytest-django creates the database
@pytest.mark.django_db(transaction=True)
def test_db_worker_runs_the_operation_after_commit(db_worker, settings, user):
    from django_tasks_db.models import DBTaskResult

    settings.LIVEOPS = {"RUNNER": "tasks", "TASKS_OPTIONS": {"queue_name": db_worker.queue}}
    with transaction.atomic():
        op = Counted.objects.create(owner=user)
        op.enqueue()
        assert not DBTaskResult.objects.exists(), "enqueued before the transaction committed"
    queued = DBTaskResult.objects.get()
    assert queued.task_path == "liveops.runners.tasks.run_operation"
    assert queued.queue_name == db_worker.queue
    assert queued.args_kwargs == {"args": [op.live_label(), str(op.pk)], "kwargs": {}}

    wait_for(
        lambda: Counted.objects.filter(pk=op.pk, finished_on__isnull=False).exists(),
        20,
        "the db_worker finishes the operation",
        watch=[db_worker.process],
    )
    op.refresh_from_db()
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {"runs": 1, "pid": db_worker.process.pid}
    wait_for(
        lambda: DBTaskResult.objects.filter(pk=queued.pk, status="SUCCESSFUL").exists(),
        20,
        "the db_worker records the task as successful",
        watch=[db_worker.process],
    )


@pytest.mark.postgres
@pytest.mark.usefixtures("services")  # first: before pytest-django creates the database
@pytest.mark.django_db(transaction=True)
def test_a_second_task_for_a_finished_operation_runs_nothing(db_worker, settings, user):
    from django_tasks_db.models import DBTaskResult

    from liveops.runners.tasks import run_operation

    op = Counted.objects.create(owner=user)
    task = run_operation.using(queue_name=db_worker.queue)
    results = [task.enqueue(op.live_label(), str(op.pk)) for _ in range(2)]
    wait_for(
        lambda: (
            DBTaskResult.objects.filter(pk__in=[r.id for r in results], status="SUCCESSFUL").count()
            == 2
        ),
        20,
        "the db_worker has run both tasks",
        watch=[db_worker.process],
    )
    assert CountedRun.objects.filter(operation_id=op.pk).count() == 1
    op.refresh_from_db()
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {"runs": 1, "pid": db_worker.process.pid}
