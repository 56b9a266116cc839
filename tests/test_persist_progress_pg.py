"""Stored live progress (``PERSIST_PROGRESS``) on PostgreSQL, while run() holds a transaction.

The writer stores pictures on a connection of its own, so they commit while run()'s
transaction is open; a row that transaction locked is skipped (``SKIP LOCKED``), not
waited for, so it holds up no other operation's picture.

    pytest -m postgres --ds=tests.settings_pg tests/test_persist_progress_pg.py
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from liveops._state import Phase
from tests import test_persist_progress as unit
from tests.pg_workers import require_postgres
from tests.test_persist_progress import DEADLINE, Stores, row, start, wait_until, waits_for
from tests.testapp.models import CountedRun, Scripted

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.usefixtures("services"),  # first: before pytest-django creates the database
    pytest.mark.django_db(transaction=True),
]

#: PERSIST_PROGRESS on, the eager runner, and gates that are all opened at the end.
gates = unit.gates
gate = unit.gate


@pytest.fixture(scope="session")
def services() -> None:
    require_postgres()


def other_sessions() -> int:
    """Count the sessions on the test database but this one (the writer's, say)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


@pytest.fixture(autouse=True)
def _writer_closes_its_session(django_db_blocker: Any) -> Iterator[None]:
    """After each test, wait until the writer has closed its connection, as it does once
    no run of the process stores progress: PostgreSQL drops no test database a session
    still uses, and a session left over would count in the next test."""
    yield
    with django_db_blocker.unblock():
        wait_until(lambda: other_sessions() == 0, "the writer to close its connection")


def test_progress_of_a_run_inside_a_transaction_is_visible_mid_run(
    gates: list[threading.Event], user: Any
) -> None:
    """A run() whose whole body is one ``transaction.atomic()`` that writes other tables:
    another connection sees its status, percent and log while the transaction is open."""
    op = Scripted.objects.create(owner=user)
    finish = gate(gates)

    def all_in_one_transaction(p: Any) -> None:
        with transaction.atomic():
            CountedRun.objects.create(operation_id=op.pk, pid=0)
            p.status("importing")
            p.percent(50)
            p.log("inside the transaction")
            waits_for(finish)(p)

    run = start(op, all_in_one_transaction)
    stored = wait_until(lambda: (found := row(op)).log_seq == 1 and found, "the stored line")
    assert stored.get_state() is Phase.STARTED
    assert (stored.status_text, stored.percent) == ("importing", 50.0)
    assert stored.log == [[1, "inside the transaction"]]
    # The run's transaction is still open: its own row is not visible here yet.
    assert not CountedRun.objects.filter(operation_id=op.pk).exists()
    finish.set()
    run.join(DEADLINE)
    assert row(op).get_state() is Phase.FINISHED_OK
    assert CountedRun.objects.filter(operation_id=op.pk).count() == 1


def test_a_run_that_locks_its_own_row_is_skipped_and_holds_up_no_other(
    gates: list[threading.Event], monkeypatch: pytest.MonkeyPatch, user: Any
) -> None:
    """A run() that updates its own operation row inside its ``atomic()`` holds that row
    locked: the writer skips it (its picture is not stored, and it is not waited for) while
    another operation running at the same time has its pictures stored; once the lock is
    released the next flush stores the whole picture, and both runs finish."""
    stores = Stores(monkeypatch)
    locker, other = Scripted.objects.create(owner=user), Scripted.objects.create(owner=user)
    locked, leave, finish, other_done = gate(gates), gate(gates), gate(gates), gate(gates)
    logged: list[int] = []

    def lock_own_row(p: Any) -> None:
        with transaction.atomic():
            Scripted.objects.filter(pk=locker.pk).update(language="en")  # the row lock
            locked.set()
            give_up = time.monotonic() + DEADLINE
            while not leave.is_set() and time.monotonic() < give_up:
                logged.append(len(logged) + 1)
                p.log(f"line {len(logged)}")
                time.sleep(0.02)
        p.log("after the lock")

    def keep_logging(p: Any) -> None:
        n = 0
        while not other_done.is_set():
            n += 1
            p.log(f"other {n}")
            time.sleep(0.02)

    locking = start(locker, lock_own_row, waits_for(finish))
    assert locked.wait(DEADLINE)
    seen_before = len(stores.batches)
    others = start(other, keep_logging)
    # While the row is locked: the other operation's pictures get stored, this one's do not.
    wait_until(
        lambda: (
            sum(batch.get((Scripted, other.pk), False) for batch in stores.batches) >= 3
            and any(batch.get((Scripted, locker.pk)) is False for batch in stores.batches)
        ),
        "the other's pictures stored, the locked one's skipped",
    )
    assert not any(batch.get((Scripted, locker.pk)) for batch in stores.batches[seen_before:])
    assert row(other).log_seq > 0
    assert row(locker).log_seq == 0
    assert stores.refused == 0  # skipped, not failed: nothing waited for the lock
    leave.set()
    after = wait_until(
        lambda: (found := row(locker)).log and found.log[-1][1] == "after the lock" and found,
        "the picture after the lock",
    )
    assert after.log == [[n, f"line {n}"] for n in logged] + [[len(logged) + 1, "after the lock"]]
    finish.set()
    other_done.set()
    locking.join(DEADLINE)
    others.join(DEADLINE)
    assert row(locker).get_state() is Phase.FINISHED_OK
    assert row(other).get_state() is Phase.FINISHED_OK
