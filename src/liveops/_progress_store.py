"""Stored live progress (``PERSIST_PROGRESS``): the picture of a running operation, in its row.

When an operation type stores its progress, each flush of its run's channel also stores
the whole picture it sends — status, percent, count, stages, custom regions, the log
tail and the version — so a snapshot of a running operation equals the page of a
viewer who watched from the start. The channel pushes a flush only once its picture
is committed (or, if the database is slow, sends the next flush whole), the same
store-commit-push order the terminal state has (docs/architecture.md).

The writes never happen on ``run()``'s thread. One thread per process stores them on
a connection of its own, so they commit even while ``run()`` holds a transaction. A
newer picture of an operation replaces an older one that is still waiting, so a
slow database gets fewer writes, never a queue; each write is a conditional UPDATE
that only applies to the same attempt, still running, at an older version.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction

from liveops._state import StageState, StateView
from liveops.models import LiveOperation

logger = logging.getLogger("liveops")

#: How long a write waits for SQLite's one write lock (held by a run()'s transaction,
#: say) before it gives up until the next flush: the live pages do not wait for it.
SQLITE_BUSY_MS = 200


def progress_columns(view: StateView) -> dict[str, Any]:
    """Return the model columns that hold the progress part of ``view``."""
    return {
        "status_text": view.status_text,
        "status_level": view.status_level,
        "percent": view.percent,
        "track": {
            "done": view.done,
            "total": view.total,
            "label": view.track_label,
            "unit": view.track_unit,
            # When the bar started from empty, so a snapshot's ETA is the live one.
            "since": view.progress_since,
        },
        "log": [list(entry) for entry in view.log_tail],
        "log_seq": view.log_tail[-1][0] if view.log_tail else 0,
    }


def picture_columns(view: StateView) -> dict[str, Any]:
    """Return every column of a running operation's picture: progress, stages, custom regions."""
    return {
        **progress_columns(view),
        "stage_states": {
            name: state.value for name, state in view.stages if state is not StageState.PENDING
        },
        "extra_html": dict(view.extra_html),
        "version": view.version,
    }


@dataclass
class _Write:
    """The newest picture of one operation waiting to be stored, and who waits for it."""

    model: type[LiveOperation]
    pk: Any
    attempt: int
    view: StateView
    waiting: list[Future[bool]] = field(default_factory=list)


class ProgressWriter:
    """One thread per process that stores running operations' pictures, the newest of each."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._pending: dict[tuple[str, type[LiveOperation], Any], _Write] = {}
        #: The operations whose runs in this process store their pictures here.
        self._running: set[tuple[type[LiveOperation], Any]] = set()
        self._thread: threading.Thread | None = None
        #: Whether the last batch failed: an outage is logged once, not once per flush.
        self._failing = False

    def submit(self, op: LiveOperation, alias: str, view: StateView) -> Future[bool]:
        """Store ``view`` as ``op``'s picture in database ``alias`` soon; the future says
        whether it was stored.

        Cheap and non-blocking: it runs on the publisher's loop. A picture of ``op`` still
        waiting is replaced by this newer one, and its waiters learn this one's result.
        """
        model = type(op)
        future: Future[bool] = Future()
        write = _Write(model, op.pk, op.attempt, view, [future])
        with self._wake:
            self._running.add((model, op.pk))
            key = (alias, model, op.pk)
            if (older := self._pending.get(key)) is not None:
                write.waiting[:0] = older.waiting
            self._pending[key] = write
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="liveops-progress-writer", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        return future

    def run_ended(self, op: LiveOperation) -> None:
        """Forget ``op``'s run; once no run here stores pictures, the writer's connection closes.

        So the writer holds a connection only while it has work: an idle session would
        keep a database from being dropped or renamed, and a worker waits long between runs.
        """
        with self._wake:
            self._running.discard((type(op), op.pk))
            self._wake.notify()

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    if not self._running:
                        connections.close_all()  # this thread's only
                    self._wake.wait()
                batch, self._pending = self._pending, {}
            by_alias: dict[str, list[_Write]] = defaultdict(list)
            for (alias, _model, _pk), write in batch.items():
                by_alias[alias].append(write)
            for alias, writes in by_alias.items():
                self._store(alias, writes)

    def _store(self, alias: str, writes: list[_Write]) -> None:
        """Store ``writes`` in one transaction; tell each waiter whether its picture is stored."""
        try:
            stored = store_pictures(alias, writes)
        except Exception as exc:  # a slow or refusing database never fails a run
            if not self._failing:
                self._failing = True
                logger.warning(
                    "liveops could not store live progress (%r); the live pages go on, and "
                    "the next write that succeeds stores the whole picture again.",
                    exc,
                )
            connection = connections[alias]
            if connection.connection is not None and not connection.is_usable():
                connection.close()  # the next batch opens a new one
            stored = {}
        else:
            if self._failing:
                self._failing = False
                logger.info("liveops stores live progress again.")
        for write in writes:
            result = stored.get((write.model, write.pk), False)
            for future in write.waiting:
                if not future.done():
                    future.set_result(result)


def store_pictures(alias: str, writes: list[_Write]) -> Mapping[tuple[type, Any], bool]:
    """Store each write whose row is free; return, per (model, pk), whether it was stored.

    A row that ``run()``'s own transaction holds (it saved the operation inside its
    ``atomic()``) is skipped rather than waited for (PostgreSQL, MySQL: ``SKIP LOCKED``),
    so one run cannot hold up the pictures of the others; its next flush tries again.
    """
    connection = connections[alias]
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        connection.connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
    features = connection.features
    skip_locked = features.has_select_for_update_skip_locked
    # A run() that inserts rows referencing its operation holds a key-share lock on it.
    no_key = features.has_select_for_no_key_update
    stored: dict[tuple[type, Any], bool] = {}
    by_model: dict[type[LiveOperation], list[_Write]] = defaultdict(list)
    for write in writes:
        by_model[write.model].append(write)
    with transaction.atomic(using=alias):
        for model, model_writes in by_model.items():
            rows = model._default_manager.using(alias)
            free = set(
                rows.select_for_update(skip_locked=skip_locked, no_key=no_key)
                .filter(pk__in=[write.pk for write in model_writes])
                .values_list("pk", flat=True)
            )
            for write in model_writes:
                applies = rows.filter(
                    pk=write.pk,
                    finished_on__isnull=True,
                    attempt=write.attempt,
                    started_on__isnull=False,
                    version__lt=write.view.version,
                )
                columns = picture_columns(write.view)
                is_stored = write.pk in free and applies.update(**columns) == 1
                stored[(model, write.pk)] = is_stored
    return stored


progress_writer = ProgressWriter()
