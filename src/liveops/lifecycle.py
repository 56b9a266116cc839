"""The operation's lifecycle, defined once: which stored rows are in which phase, and
what a new attempt starts from (how an end closes open stages: ``state.close_open_stages``).

``LiveOperation.get_state()`` reads a phase from one loaded row; ``PHASE_FILTERS`` says
the same in SQL, for the claim, the watchdog, the sweep, cancel, retry and the admin.
``tests/test_lifecycle.py`` checks the two against each other on every kind of row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Q, QuerySet

from liveops.models import LiveOperation
from liveops.state import Phase

__all__ = [
    "PHASE_FILTERS",
    "UNFINISHED",
    "fresh_attempt",
    "in_phase",
]

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
