"""A read-only admin for operation models: ``admin.site.register(MyOp, LiveOperationAdmin)``.

Operations are changed by running, not by editing: the admin lists them with their
state, owner, start and duration, filters by state and owner, shows everything an
operation stored (the traceback included: the admin is for staff), and offers the
two things a person may ask of one — cancel and run again — as actions.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from liveops._fragments import phase_label
from liveops._state import Phase
from liveops.lifecycle import PHASE_FILTERS, request_cancel, request_retry
from liveops.models import LiveOperation

__all__ = ["LiveOperationAdmin", "PhaseFilter"]


_INTERRUPTED = "INTERRUPTED"


class PhaseFilter(admin.SimpleListFilter):
    """Filter operations by their phase."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        phases = [(phase.value, str(phase_label(phase))) for phase in Phase]
        # Not a phase (on the wire an interruption is a failure), but what an operator asks.
        return [*phases, (_INTERRUPTED, str(phase_label(Phase.FINISHED_ERROR, interrupted=True)))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        wanted = self.value()
        if wanted is None:
            return queryset
        if wanted == _INTERRUPTED:
            return queryset.filter(interrupted=True)
        try:
            return queryset.filter(PHASE_FILTERS[Phase(wanted)])
        except ValueError:  # a hand-written ?state= that names no phase
            return queryset.none()


class LiveOperationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """List, filter and inspect operations; cancel them or run them again."""

    list_display = ["__str__", "state", "owner", "created_on", "started_on", "duration"]
    list_filter = [PhaseFilter, "owner"]
    list_select_related = ["owner"]
    date_hierarchy = "created_on"
    actions = ["cancel_selected", "run_selected_again"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # operations are started by the site's own views

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # read-only: every field is shown, none is edited

    @admin.display(description=_("state"))
    def state(self, op: LiveOperation) -> str:
        """The phase in words."""
        return str(phase_label(op.get_state(), interrupted=op.interrupted))

    @admin.display(description=_("duration"))
    def duration(self, op: LiveOperation) -> str:
        """From start to end (or to now, while it runs)."""
        if op.started_on is None:
            return str(self.get_empty_value_display())
        end = op.finished_on or op.heartbeat_on or op.started_on
        return str(end - op.started_on).split(".")[0]

    @admin.display(description=_("traceback"))
    def traceback_text(self, op: LiveOperation) -> SafeString:
        if not op.traceback:
            return format_html("{}", self.get_empty_value_display())
        return format_html("<pre>{}</pre>", op.traceback)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        # Every stored field, those the model marks not editable included.
        names = [f.name for f in self.model._meta.fields if f.name != "traceback"]
        return [*names, "traceback_text"]

    @admin.action(description=_("Cancel the selected operations"))
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Ask each running or waiting operation to stop."""
        asked = sum(request_cancel(op) for op in queryset if op.can_cancel(request.user))
        text = ngettext("Asked %(n)d operation to stop.", "Asked %(n)d operations to stop.", asked)
        self._report(request, text % {"n": asked}, asked)

    @admin.action(description=_("Run the selected operations again"))
    def run_selected_again(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Start a new attempt of each operation that has ended; skip the others."""
        started = sum(request_retry(op) for op in queryset if op.can_retry(request.user))
        text = ngettext(
            "Started %(n)d operation again.", "Started %(n)d operations again.", started
        )
        self._report(request, text % {"n": started}, started)

    def _report(self, request: HttpRequest, text: str, count: int) -> None:
        """Say what an action did: a warning when it applied to none of the selection."""
        self.message_user(request, text, messages.SUCCESS if count else messages.WARNING)
