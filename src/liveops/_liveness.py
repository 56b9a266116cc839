"""Nothing stays "running" forever, nor waits unseen: heartbeats, lost and long-waiting operations.

A running operation's process refreshes ``heartbeat_on`` every
``HEARTBEAT_SECONDS`` from one thread per process (on its own database
connection, so it commits even while ``run()`` holds a transaction). An operation
whose heartbeat is older than ``STALE_SECONDS`` was lost — its worker was killed
or its machine went away — and is ended as interrupted: lazily when someone
looks (a snapshot, the live page), by the watchdog of every server process that
has viewers of it, and by ``manage.py liveops_sweep``. A process that shuts down
cleanly ends its own running operations as interrupted before it exits.

An operation no worker has started for ``WAIT_WARNING_SECONDS`` is flagged
(``operation_waiting``): its page and rows say how long it has waited, the log says
what to check, and ``liveops_sweep`` reports it (and can end it).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Protocol
from uuid import UUID

from channels.db import database_sync_to_async
from django.db import connections
from django.db.models import Q
from django.utils import timezone

from liveops._conf import get_settings
from liveops._state import Phase
from liveops.lifecycle import INTERRUPTED_MESSAGE, LOST_MESSAGE, end_as_interrupted, in_phase
from liveops.models import LiveOperation
from liveops.signals import announce, operation_waiting

logger = logging.getLogger("liveops")


class Beating(Protocol):
    """A run whose heartbeat this process keeps (``liveops._execution.Run``)."""

    @property
    def op(self) -> LiveOperation: ...

    def interrupt(self) -> None: ...


def _running(model: type[LiveOperation]) -> Any:
    return in_phase(model._default_manager.all(), Phase.STARTED)


def is_stale(op: LiveOperation) -> bool:
    """Return whether ``op`` looks running but its heartbeat stopped (no query)."""
    if op.started_on is None or op.finished_on is not None or op.heartbeat_on is None:
        return False
    return op.heartbeat_on < timezone.now() - timedelta(seconds=get_settings().STALE_SECONDS)


def ensure_fresh(op: LiveOperation) -> LiveOperation:
    """Return ``op``, first ended as lost (and reloaded) if its heartbeat is stale."""
    if expire_stale_among(type(op), [op]):
        op.refresh_from_db()
    return op


def expire_stale_among(model: type[LiveOperation], ops: Iterable[LiveOperation]) -> bool:
    """End the lost runs among ``ops``; return whether any looked lost (then read them again).

    No query when none looks lost: the heartbeats are already loaded.
    """
    stale = [op.pk for op in ops if is_stale(op)]
    if stale:
        expire_stale(model, stale)
    return bool(stale)


def expire_stale(model: type[LiveOperation], pks: Iterable[UUID | str] | None = None) -> int:
    """End the lost operations of ``model`` (all of them, or those in ``pks``); count them."""
    if pks is None:
        cutoff = timezone.now() - timedelta(seconds=get_settings().STALE_SECONDS)
        pks = _running(model).filter(heartbeat_on__lt=cutoff).values_list("pk", flat=True)
    return len(end_as_interrupted(model, pks, LOST_MESSAGE, stale_only=True))


def _pks_by_model(
    pairs: Iterable[tuple[type[LiveOperation], Any]],
) -> dict[type[LiveOperation], list[Any]]:
    by_model: dict[type[LiveOperation], list[Any]] = defaultdict(list)
    for model, pk in pairs:
        by_model[model].append(pk)
    return by_model


class Heartbeat:
    """One thread per process: refresh the heartbeat of every run in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: set[Beating] = set()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def add(self, run: Beating) -> None:
        """Start beating for ``run`` (and end it as interrupted if the process exits)."""
        with self._lock:
            self._runs.add(run)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat_forever, name="liveops-heartbeat", daemon=True
                )
                self._thread.start()
                atexit.register(self.interrupt_all)

    def remove(self, run: Beating) -> None:
        """Stop beating for ``run``."""
        with self._lock:
            self._runs.discard(run)

    def runs(self) -> list[Beating]:
        """Return the runs of this process."""
        with self._lock:
            return list(self._runs)

    def beat(self) -> None:
        """Refresh the heartbeat of every run now (one UPDATE per model)."""
        now = timezone.now()
        for model, pks in _pks_by_model((type(r.op), r.op.pk) for r in self.runs()).items():
            _running(model).filter(pk__in=pks).update(heartbeat_on=now)

    def _beat_forever(self) -> None:
        while True:
            self._wake.wait(get_settings().HEARTBEAT_SECONDS)
            self._wake.clear()
            try:
                self.beat()
            except Exception:
                logger.exception("liveops: the heartbeat failed; it will try again")
            finally:
                connections.close_all()  # this thread's: an idle session would block DB admin

    def interrupt_all(self) -> list[LiveOperation]:
        """End every run of this process as interrupted (the process is shutting down).

        Return their operations as stored once ended, whoever ended them: this or the
        run itself, which stops at its next ``check_cancelled()`` and may store first.
        """
        runs = self.runs()
        for run in runs:
            run.interrupt()
        ended: list[LiveOperation] = []
        for model, pks in _pks_by_model((type(r.op), r.op.pk) for r in runs).items():
            try:
                # The UPDATE waits for a run's own end that is being stored, so the rows
                # read next hold a committed end either way.
                end_as_interrupted(model, pks, INTERRUPTED_MESSAGE, stale_only=False)
                ended += model._default_manager.filter(pk__in=pks, finished_on__isnull=False)
            except Exception:
                logger.exception("liveops: could not mark %s interrupted", pks)
        connections.close_all()
        return ended


heartbeat = Heartbeat()


# --- waiting too long ---------------------------------------------------------------------

#: What the log says of an operation no worker has started (once per process).
LONG_WAIT_LOG = (
    "liveops: %s has waited %d s for a worker (RUNNER %r): check that a worker is running, "
    "that it reads the queue the operations are sent to and knows the task "
    "(docs/troubleshooting.md, “The operation waits forever”)."
)


def long_waits(
    model: type[LiveOperation], pks: Iterable[UUID | str] | None = None
) -> list[LiveOperation]:
    """Return the operations (all, or those in ``pks``) waiting longer than WAIT_WARNING_SECONDS."""
    limit = get_settings().WAIT_WARNING_SECONDS
    if not limit:
        return []
    cutoff = timezone.now() - timedelta(seconds=limit)
    waiting = in_phase(model._default_manager.select_related("owner"), Phase.NOT_STARTED)
    if pks is not None:
        waiting = waiting.filter(pk__in=list(pks))
    # A retry's heartbeat says when it was queued again (LiveOperation.queued_on).
    return list(
        waiting.filter(
            Q(heartbeat_on__lte=cutoff) | Q(heartbeat_on__isnull=True, created_on__lte=cutoff)
        )
    )


def waited(op: LiveOperation) -> timedelta:
    """Return how long ``op`` has waited for a worker (nothing, once one has started it)."""
    queued = op.queued_on()
    return timezone.now() - queued if queued else timedelta(0)


def flag_wait(op: LiveOperation) -> timedelta:
    """Send ``operation_waiting`` for ``op`` (its page and rows say how long); return the wait."""
    wait = waited(op)
    announce(operation_waiting, type(op), op=op, waited=wait)
    return wait


class Watchdog:
    """In a server process: look after the operations that local sockets are watching.

    Every heartbeat it ends those that were lost, and flags those no worker has started
    for longer than WAIT_WARNING_SECONDS, again each minute, so their "waiting for"
    grows on the page.
    """

    def __init__(self) -> None:
        self._watched: Counter[tuple[type[LiveOperation], Any]] = Counter()
        self._task: asyncio.Task[None] | None = None
        #: Per operation flagged as waiting: the minute of its wait it was last flagged in.
        self._flagged: dict[tuple[type[LiveOperation], Any], int] = {}

    def watch(self, model: type[LiveOperation], pk: Any) -> None:
        """Count one more local viewer of ``pk``; start the watchdog on this loop if needed."""
        self._watched[(model, pk)] += 1
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._patrol())

    def unwatch(self, model: type[LiveOperation], pk: Any) -> None:
        """Count one viewer fewer (of a ``pk`` not watched, nothing)."""
        key = (model, pk)
        self._watched[key] -= 1
        if self._watched[key] <= 0:
            del self._watched[key]
            self._flagged.pop(key, None)

    async def _patrol(self) -> None:
        while self._watched:
            await asyncio.sleep(get_settings().HEARTBEAT_SECONDS)
            for model, pks in _pks_by_model(list(self._watched)).items():
                try:
                    await database_sync_to_async(expire_stale)(model, pks)
                    await database_sync_to_async(self.flag_long_waits)(model, pks)
                except Exception:
                    logger.exception("liveops: the watchdog could not check %s", model)

    def flag_long_waits(self, model: type[LiveOperation], pks: list[Any]) -> None:
        """Flag the watched operations waiting too long: when first seen, then each minute."""
        for op in long_waits(model, pks):
            key, minute = (model, op.pk), int(waited(op).total_seconds() // 60)
            if key not in self._watched or self._flagged.get(key) == minute:
                continue  # its last viewer left meanwhile, or it was flagged this minute
            first = key not in self._flagged
            self._flagged[key] = minute
            wait = flag_wait(op)
            if first:
                logger.warning(LONG_WAIT_LOG, op, wait.total_seconds(), get_settings().RUNNER)


watchdog = Watchdog()
