"""Two worker processes race to execute the same operation on PostgreSQL: one runs it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from django.db import connection

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

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.usefixtures("services"),  # first: before pytest-django creates the database
    pytest.mark.django_db(transaction=True),
]

_lock_keys = itertools.count(7_301)


@pytest.fixture(scope="session")
def services() -> None:
    require_postgres()


@pytest.fixture(scope="module")
def racers(request: pytest.FixtureRequest, services: None) -> Iterator[list[WorkerProcess]]:
    request.getfixturevalue("django_db_setup")
    env = worker_env(database_name())
    started = [WorkerProcess(f"racer-{n}", python("-m", "tests.race_worker"), env) for n in (1, 2)]
    try:
        for racer in started:
            racer.wait_for_output(r"^started$", timeout=20)
        yield started
    finally:
        for racer in started:
            racer.stop()


def _waiting_at_barrier(key: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks "
            "WHERE locktype = 'advisory' AND classid = 0 AND objid = %s AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [key],
        )
        return int(cursor.fetchone()[0])


@pytest.mark.parametrize("round_", range(5))
def test_two_racing_workers_run_the_operation_once(racers, user, round_):
    op = Counted.objects.create(owner=user)
    key = next(_lock_keys)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        for racer in racers:
            racer.send_line(f"{op.live_label()} {op.pk} {key}")
        # Both are blocked on the barrier, so both call execute() the moment it opens.
        wait_for(lambda: _waiting_at_barrier(key) == 2, 20, "both racers wait", watch=racers)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    for racer in racers:
        racer.wait_for_output(rf"^done {op.pk}$", timeout=20)

    runs = list(CountedRun.objects.filter(operation_id=op.pk))
    assert len(runs) == 1, f"the operation ran {len(runs)} times"
    assert runs[0].pid in {racer.pid for racer in racers}
    op.refresh_from_db()
    assert op.get_state() is Phase.FINISHED_OK
    assert op.result_context == {"runs": 1, "pid": runs[0].pid}
