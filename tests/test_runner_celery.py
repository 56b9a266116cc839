"""The celery runner, with a real Celery worker process, Redis and PostgreSQL."""

from __future__ import annotations

import base64
import importlib
import json
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from liveops.models import Phase
from tests.pg_workers import (
    WorkerProcess,
    database_name,
    python,
    require_postgres,
    require_redis,
    wait_for,
    worker_env,
)
from tests.testapp.models import Counted, CountedRun

# --- without a worker ------------------------------------------------------------------


def test_import_without_celery_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "liveops.runners.celery", raising=False)
    monkeypatch.setitem(sys.modules, "celery", None)
    with pytest.raises(ImproperlyConfigured, match=r'pip install "django-liveops\[celery\]"'):
        importlib.import_module("liveops.runners.celery")


def test_enqueue_refuses_celerys_fallback_app(monkeypatch, settings):
    # A project that never imports its Celery app: Celery would fall back to its
    # "default" app and amqp://localhost, where no worker of the project listens.
    from celery import Celery, _state

    from liveops.runners.celery import CeleryRunner

    fallback = Celery("default", fixups=[], set_as_current=False)
    monkeypatch.setattr(_state, "default_app", fallback)
    monkeypatch.setattr(_state._tls, "current_app", None)
    settings.LIVEOPS = {"RUNNER": "celery"}
    with pytest.raises(ImproperlyConfigured, match="no Celery app"):
        CeleryRunner().enqueue("testapp.counted", str(uuid.uuid4()))


# --- Redis, PostgreSQL and a worker process ----------------------------------------------


@dataclass
class Broker:
    app: Any  # the tests' Celery app
    redis: Any  # a client of its Redis database
    prefix: str  # of every queue and task id of this module, which Redis forgets afterwards


@pytest.fixture(scope="session")
def services() -> None:
    require_postgres()
    require_redis()


@pytest.fixture(scope="module")
def broker(services: None) -> Iterator[Broker]:
    import redis

    from tests.celery_app import app

    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    prefix = f"liveops-test-{uuid.uuid4().hex[:8]}"
    try:
        yield Broker(app, client, prefix)
    finally:
        keys = list(client.scan_iter(f"*{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@dataclass
class CeleryWorker:
    process: WorkerProcess
    queue: str


def _start_worker(broker: Broker, name: str, **env: str) -> Iterator[CeleryWorker]:
    queue = f"{broker.prefix}-{name}"
    node = f"{queue}@{socket.gethostname()}"
    process = WorkerProcess(
        f"celery worker {name}",
        python(
            *("-m", "celery", "-A", "tests.celery_app", "worker", "-Q", queue, "-n", node),
            *("--pool=solo", "--concurrency=1", "--loglevel=INFO"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ),
        {**worker_env(database_name()), **env},
    )
    try:
        wait_for(
            lambda: broker.app.control.ping(destination=[node], timeout=0.5),
            30,
            "the celery worker answers a ping",
            watch=[process],
        )
        yield CeleryWorker(process, queue)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def celery_worker(request: pytest.FixtureRequest, broker: Broker) -> Iterator[CeleryWorker]:
    """A worker of a project that lists the runner's module in CELERY_IMPORTS."""
    request.getfixturevalue("django_db_setup")
    yield from _start_worker(broker, "work")


@pytest.fixture(scope="module")
def guide_worker(request: pytest.FixtureRequest, broker: Broker) -> Iterator[CeleryWorker]:
    """A worker of a project set up only as Celery's Django guide says: no CELERY_IMPORTS.

    Its Celery app calls ``autodiscover_tasks()`` (tests/celery_app.py), and its settings
    name the celery runner, as a project that runs operations in Celery has them. It
    skips Django's system checks at start-up (``CELERY_SKIP_CHECKS``, as many do), which
    would otherwise import the runner's module by the way.
    """
    request.getfixturevalue("django_db_setup")
    yield from _start_worker(
        broker,
        "guide",
        LIVEOPS_TEST_CELERY_GUIDE="1",
        LIVEOPS_TEST_RUNNER="celery",
        CELERY_SKIP_CHECKS="1",
    )


def _wait_until_finished(op: Counted, worker: CeleryWorker) -> Counted:
    wait_for(
        lambda: Counted.objects.filter(pk=op.pk, finished_on__isnull=False).exists(),
        20,
        "the worker finishes the operation",
        watch=[worker.process],
    )
    op.refresh_from_db()
    return op


@pytest.mark.postgres
@pytest.mark.usefixtures("services")  # first: before pytest-django creates the database
@pytest.mark.django_db(transaction=True)
def test_enqueue_sends_type_and_pk_to_the_configured_queue_on_commit(broker, settings, user):
    parked = f"{broker.prefix}-parked"  # no worker reads it
    settings.LIVEOPS = {"RUNNER": "celery", "CELERY_TASK_OPTIONS": {"queue": parked}}
    client = broker.redis
    with transaction.atomic():
        op = Counted.objects.create(owner=user)
        op.enqueue()
        assert client.llen(parked) == 0, "sent before the transaction committed"
    messages = client.lrange(parked, 0, -1)
    assert len(messages) == 1
    message = json.loads(messages[0])
    assert message["headers"]["task"] == "liveops.run_operation"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert args == [op.live_label(), str(op.pk)]
    assert kwargs == {}


# A worker with CELERY_IMPORTS, and one set up only as Celery's Django guide says.
@pytest.mark.postgres
@pytest.mark.usefixtures("services")  # first: before pytest-django creates the database
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("worker_fixture", ["celery_worker", "guide_worker"])
def test_worker_runs_the_operation_after_commit(request, worker_fixture, settings, user):
    worker = request.getfixturevalue(worker_fixture)
    settings.LIVEOPS = {"RUNNER": "celery", "CELERY_TASK_OPTIONS": {"queue": worker.queue}}
    with transaction.atomic():
        op = Counted.objects.create(owner=user)
        op.enqueue()
    op = _wait_until_finished(op, worker)
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {"runs": 1, "pid": worker.process.pid}
    assert "unregistered task" not in worker.process.output().lower()


@pytest.mark.postgres
@pytest.mark.usefixtures("services")  # first: before pytest-django creates the database
@pytest.mark.django_db(transaction=True)
def test_a_duplicate_delivery_runs_nothing(broker, celery_worker, user):
    from liveops.runners.celery import run_operation

    op = Counted.objects.create(owner=user)
    deliveries = [
        run_operation.apply_async(
            args=(op.live_label(), str(op.pk)),
            queue=celery_worker.queue,
            task_id=f"{broker.prefix}-{n}",
            ignore_result=False,  # so the test can wait for both deliveries
        )
        for n in (1, 2)
    ]
    for delivery in deliveries:
        wait_for(
            delivery.ready,
            20,
            f"the worker has handled delivery {delivery.id}",
            watch=[celery_worker.process],
        )
        assert delivery.successful(), delivery.traceback
    assert CountedRun.objects.filter(operation_id=op.pk).count() == 1
    op.refresh_from_db()
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {"runs": 1, "pid": celery_worker.process.pid}
