"""The operation's lifecycle, defined once: its phases in SQL, and every transition.

``LiveOperation.get_state()`` reads a phase from one loaded row; ``PHASE_FILTERS`` says
the same in SQL (``tests/test_lifecycle.py`` checks the two against each other). Each
transition is one conditional UPDATE, so of several processes deciding at once one
wins, and an end that came first is kept. Every ending path stores an ``End`` (which
closes open stages by one rule), and every committed transition is announced once,
as ``operation_changed``: the live regions and list rows are its receivers.
"""

from __future__ import annotations

import functools
import logging
import traceback as tb
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import router, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop

from liveops._conf import get_settings
from liveops._state import Phase, close_open_stages
from liveops.models import LiveOperation, get_operation_model
from liveops.signals import Transition, announce, operation_changed

__all__ = ["PHASE_FILTERS", "UNFINISHED", "in_phase", "request_cancel", "request_retry"]

logger = logging.getLogger("liveops")

# The ends decided outside a run, in English here; each is stored in the operation's
# language (LiveOperation.in_its_language), which its pages are shown in.
LOST_MESSAGE = gettext_noop(
    "This operation stopped responding: the process running it went away. You can start it again."
)
INTERRUPTED_MESSAGE = gettext_noop(
    "This operation was interrupted: the process running it shut down. You can start it again."
)
NEVER_STARTED_MESSAGE = gettext_noop(
    "No worker started this operation in time, so it was stopped. You can start it again."
)

#: Which stored fields make each phase (what ``LiveOperation.get_state()`` reads).
PHASE_FILTERS: Mapping[Phase, Q] = {
    Phase.NOT_STARTED: Q(started_on__isnull=True, finished_on__isnull=True),
    Phase.STARTED: Q(started_on__isnull=False, finished_on__isnull=True),
    Phase.FINISHED_OK: Q(finished_on__isnull=False, finished_successfully=True, cancelled=False),
    Phase.FINISHED_ERROR: Q(
        finished_on__isnull=False, finished_successfully=False, cancelled=False
    ),
    Phase.CANCELLED: Q(cancelled=True),
}
#: Not ended yet: waiting to start, or running.
UNFINISHED = Q(finished_on__isnull=True)

# What a new attempt keeps: who and what the operation is, and its place in history.
_KEPT_BY_A_NEW_ATTEMPT = frozenset({"id", "owner", "created_on", "language", "attempt", "version"})


def in_phase(queryset: QuerySet[Any], *phases: Phase) -> QuerySet[Any]:
    """Return the operations of ``queryset`` in any of ``phases``."""
    wanted = Q()
    for phase in phases:
        wanted |= PHASE_FILTERS[phase]
    return queryset.filter(wanted)


def fresh_attempt() -> dict[str, Any]:
    """Return the field values a new attempt starts from: the fields' own defaults.

    Derived from ``LiveOperation``'s fields, so a field added to the model is reset too.
    Each call returns new mutable defaults (lists, dicts).
    """
    return {
        field.name: field.get_default()
        for field in LiveOperation._meta.fields
        if field.name not in _KEPT_BY_A_NEW_ATTEMPT
    }


@dataclass(frozen=True)
class End:
    """How an operation ended: what every ending path stores."""

    phase: Phase
    error_message: str = ""
    traceback: str = ""
    interrupted: bool = False

    def columns(self, stage_states: Mapping[str, str]) -> dict[str, Any]:
        """Return the stored fields of this end; a stage still open is closed by the phase."""
        closed = close_open_stages(stage_states, self.phase)
        return {
            "finished_on": timezone.now(),
            "finished_successfully": self.phase is Phase.FINISHED_OK,
            "cancelled": self.phase is Phase.CANCELLED,
            "error_message": self.error_message,
            "interrupted": self.interrupted,
            "stage_states": {name: state.value for name, state in closed.items()},
            "version": F("version") + 1,
            **({"traceback": self.traceback} if self.traceback else {}),
        }


def _announce_on_commit(op: LiveOperation, transition: Transition, using: str = "") -> None:
    sent = functools.partial(announce, operation_changed, type(op), op=op, transition=transition)
    transaction.on_commit(sent, using=using or router.db_for_write(type(op)))


# --- the run ---------------------------------------------------------------------------------


def claim(model: type[LiveOperation], pk: UUID | str) -> LiveOperation | None:
    """Mark the operation started and return it (owner loaded); None if it was claimed already.

    The version grows, so the started state outranks the waiting one everywhere.
    """
    now = timezone.now()
    claimable = in_phase(model._default_manager.filter(pk=pk), Phase.NOT_STARTED)
    if not claimable.update(started_on=now, heartbeat_on=now, version=F("version") + 1):
        return None
    try:
        op = model._default_manager.select_related("owner").get(pk=pk)
        _announce_on_commit(op, Transition.STARTED)
    except BaseException:  # claimed but stopped (e.g. SIGTERM): say so, never leave it running
        end_as_interrupted(
            model, [pk], INTERRUPTED_MESSAGE, stale_only=False, traceback=tb.format_exc()
        )
        raise
    return op


def finish_run(
    op: LiveOperation,
    end: End,
    columns: Mapping[str, Any],
    *,
    using: str,
    then: Callable[[], None],
) -> bool:
    """Store the end ``op``'s run reached, with its other ``columns``; False if it ended already.

    Only an operation nobody else ended: a run declared lost or interrupted meanwhile
    keeps that end, and shows no other. Once this commits, ``then()`` (the run's own
    terminal message) runs, and the end is announced.
    """
    with transaction.atomic(using=using):
        unfinished = type(op)._default_manager.using(using).filter(UNFINISHED, pk=op.pk)
        if not unfinished.update(**{**end.columns(op.stage_states), **columns}):
            return False
        transaction.on_commit(then, using=using)
        stored = type(op)._default_manager.using(using).select_related("owner").get(pk=op.pk)
        _announce_on_commit(stored, Transition.FINISHED, using)
    return True


# --- ends decided outside the run --------------------------------------------------------------


def end_as_interrupted(
    model: type[LiveOperation],
    pks: Iterable[UUID | str],
    message: str,
    *,
    stale_only: bool,
    traceback: str = "",
) -> list[LiveOperation]:
    """End the still-running operations among ``pks`` as interrupted; return the ended.

    With ``stale_only``, only those whose heartbeat is older than ``STALE_SECONDS``.
    ``traceback`` (where the process was stopped, when known) is kept for staff.
    """
    candidates = in_phase(model._default_manager.filter(pk__in=list(pks)), Phase.STARTED)
    if stale_only:
        cutoff = timezone.now() - timedelta(seconds=get_settings().STALE_SECONDS)
        candidates = candidates.filter(heartbeat_on__lt=cutoff)
    ended = []
    for op in candidates:
        end = End(Phase.FINISHED_ERROR, op.in_its_language(message), traceback, interrupted=True)
        if candidates.filter(pk=op.pk).update(**end.columns(op.stage_states)):
            op.refresh_from_db()
            logger.warning("liveops: %s ended as interrupted: %s", op, message)
            _announce_on_commit(op, Transition.INTERRUPTED)
            ended.append(op)
    return ended


def end_unqueued(label: str, pk: UUID | str, message: str, *, detail: str = "") -> bool:
    """End an operation no runner would take as failed; False if it had started or ended."""
    return bool(end_unstarted(get_operation_model(label), [pk], message, detail=detail))


def end_unstarted(
    model: type[LiveOperation], pks: Iterable[UUID | str], message: str, *, detail: str = ""
) -> list[LiveOperation]:
    """End the operations among ``pks`` that no worker has started as failed; return the ended.

    ``message`` is stored in each operation's language, followed by ``detail`` as given.
    """
    waiting = in_phase(model._default_manager.filter(pk__in=list(pks)), Phase.NOT_STARTED)
    ended = []
    for op in waiting.select_related("owner"):
        end = End(Phase.FINISHED_ERROR, op.in_its_language(message) + detail)
        if waiting.filter(pk=op.pk).update(**end.columns({})):
            op.refresh_from_db()
            _announce_on_commit(op, Transition.NOT_QUEUED)
            ended.append(op)
    return ended


# --- what a viewer may ask -------------------------------------------------------------------


def request_cancel(op: LiveOperation) -> bool:
    """Ask ``op`` to stop; return False when it has ended already.

    A running operation sees the request at its next ``p.check_cancelled()`` (which
    ``p.track()`` calls) and ends as cancelled. One that has not started ends as
    cancelled now: the claim of a runner that comes later finds it finished.
    """
    unfinished = type(op)._default_manager.filter(UNFINISHED, pk=op.pk)
    with transaction.atomic():
        if not unfinished.update(cancel_requested=True, version=F("version") + 1):
            return False
        in_phase(unfinished, Phase.NOT_STARTED).update(**End(Phase.CANCELLED).columns({}))
        op.refresh_from_db()
        _announce_on_commit(op, Transition.CANCEL_REQUESTED)
    return True


def request_retry(op: LiveOperation) -> bool:
    """Start a new attempt of ``op`` if it has ended; return False when it has not.

    ``op.on_restart()`` resets the model's own fields first. The attempt number
    grows, so every page watching replaces its regions in place (a newer attempt
    outranks anything of an older one); the run is enqueued once this commits.
    """
    model = type(op)
    with transaction.atomic():
        ended = model._default_manager.select_for_update().filter(
            pk=op.pk, finished_on__isnull=False
        )
        fresh = ended.first()
        if fresh is None:
            return False
        fresh.on_restart()
        for name, value in fresh_attempt().items():
            setattr(fresh, name, value)
        fresh.attempt += 1
        fresh.version += 1
        fresh.heartbeat_on = timezone.now()  # when it was queued: its wait starts again
        fresh.save()
        # The new attempt's picture first, then the run (an eager one ends at once).
        _announce_on_commit(fresh, Transition.RETRIED)
        fresh.enqueue()
    op.refresh_from_db()
    return True
