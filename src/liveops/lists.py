"""The live list of operations: one ``<tr>`` per operation, pushed when its state changes.

A row is rendered from the database only (``render_row``) and carries the same rank
attributes as a region (attempt, terminal, version), so ``liveops.js`` applies rows by
the rules it applies regions by. Every committed change sends the row (``liveops._receivers``)
to the group of its owner and to the group of every operation of its type
(``row_messages``). A list socket joins one of the two (``list_group_for``): the one
that matches ``viewable_by(user)``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.template.loader import select_template
from django.utils import formats, timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext as _

from liveops._fragments import client_texts, element_attributes, phase_label, wait_text
from liveops._updates import Chunk, Rank, Update
from liveops.models import LiveOperation, live_page_url

__all__ = ["list_queryset"]

logger = logging.getLogger("liveops")

#: What a channel-layer group name may hold (channels: ASCII, fewer than 100 characters).
_GROUP_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- groups --------------------------------------------------------------------------------


def _group_part(value: str, limit: int) -> str:
    """Return ``value`` if a group name may hold it within ``limit`` characters, else a hash."""
    if len(value) <= limit and _GROUP_SAFE.match(value):
        return value
    return "h" + hashlib.sha256(value.encode()).hexdigest()[: limit - 1]


def list_group(label: str) -> str:
    """Return the group that carries the rows of every operation of type ``label``."""
    return f"liveops-list.{_group_part(label, 45)}"


def owner_list_group(label: str, owner_pk: object) -> str:
    """Return the group that carries the rows of ``owner_pk``'s operations of type ``label``."""
    return f"{list_group(label)}.{_group_part(str(owner_pk), 40)}"


def list_group_for(model: type[LiveOperation], user: Any) -> str:
    """Return the group a list socket of ``user`` joins: every row, or the user's own.

    Every row only when ``viewable_by(user)`` is every operation (staff, by default),
    so a ``viewable_by`` that shows staff less never pushes them more. Anyone else gets
    the rows of the operations they own (a wider ``viewable_by`` shows the rest on
    reload). Builds querysets but runs none; call it where the database is allowed,
    since an overridden ``viewable_by`` may query.
    """
    scoped = model.viewable_by(user).query
    everything = model._default_manager.all().query
    if not scoped.is_empty() and scoped.where == everything.where:
        return list_group(model.live_label())
    return owner_list_group(model.live_label(), user.pk)


# --- rows ------------------------------------------------------------------------------------


def row_id(op: LiveOperation) -> str:
    """Return the DOM id of the operation's row."""
    return f"liveop-row-{op.pk}"


def phase_text(op: LiveOperation) -> str:
    """Return the operation's phase in words: "Cancelling…" while a cancel is pending."""
    if op.cancel_requested and op.finished_on is None:
        return _("Cancelling…")
    queued = op.queued_on()
    waiting_too_long = wait_text(queued.timestamp() if queued else None)
    return waiting_too_long or phase_label(op.get_state(), interrupted=op.interrupted)


def format_duration(duration: timedelta) -> str:
    """Return a duration for people: "4.2 s", "3 min 05 s", "1 h 02 min"."""
    seconds = max(duration.total_seconds(), 0.0)
    tenths = round(seconds * 10)
    if tenths < 600:
        return _("%(seconds)s s") % {"seconds": formats.number_format(tenths / 10, 1)}
    whole = round(seconds)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return _("%(minutes)d min %(seconds)02d s") % {"minutes": minutes, "seconds": rest}
    hours, minutes = divmod(round(seconds / 60), 60)
    return _("%(hours)d h %(minutes)02d min") % {"hours": hours, "minutes": minutes}


def _sort_key(op: LiveOperation) -> int:
    """Return ``created_on`` in whole microseconds since the epoch (exact, no float)."""
    created = op.created_on
    epoch = _EPOCH if created.tzinfo is not None else _EPOCH.replace(tzinfo=None)
    return (created - epoch) // timedelta(microseconds=1)


def _rank(op: LiveOperation) -> Rank:
    return Rank(op.attempt, op.get_state().is_terminal, op.version)


def _iso(value: datetime | None) -> str:
    """Return a valid HTML ``datetime`` value (whole seconds, with the offset)."""
    if value is None:
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.isoformat(timespec="seconds")


def _template_names(op: LiveOperation) -> list[str]:
    meta = op._meta
    return [f"liveops/{meta.app_label}/{meta.model_name}/list_row.html", "liveops/list_row.html"]


def render_row(op: LiveOperation) -> str:
    """Render the operation's ``<tr>`` from what is stored, as a list row element.

    In the operation's language, like its regions, and in the default time zone: a
    row pushed to many pages is the same for all of them, and a page rendered in a
    user's time zone would otherwise change at its first snapshot. ``<time datetime>``
    holds the instant for scripts that show local times.
    """
    phase = op.get_state()
    with translation.override(op.get_language()), timezone.override(None):
        started = op.started_on
        ended = op.finished_on
        context = {
            "op": op,
            "title": str(op),
            "url": live_page_url(op),
            "phase": phase.value,
            "state_text": phase_text(op),
            "owner_name": op.owner.get_username(),
            "started_on": started,
            "started_iso": _iso(started),
            "duration_text": (
                format_duration(ended - started)
                if started is not None and ended is not None
                else ""
            ),
        }
        inner = select_template(_template_names(op)).render(context).strip()
    attributes = element_attributes(row_id(op), "liveops-row", "true", _rank(op), phase)
    label_and_sort = format_html(
        ' data-liveop-row="{}" data-liveop-sort="{}"', op.live_label(), _sort_key(op)
    )
    return f"<tr {attributes}{label_and_sort}>{inner}</tr>"


# --- the rows of a page ------------------------------------------------------------------------


def list_queryset(model: type[LiveOperation], user: Any) -> QuerySet[Any]:
    """Return the operations ``user`` may view, newest first, owners joined."""
    return model.viewable_by(user).select_related("owner").order_by("-created_on", "-pk")


def page_rows(
    model: type[LiveOperation], user: Any, page: int, per_page: int
) -> list[LiveOperation]:
    """Return the operations on page ``page`` (from 1) of ``user``'s list (one query)."""
    offset = (page - 1) * per_page
    return list(list_queryset(model, user)[offset : offset + per_page])


def list_texts() -> dict[str, str]:
    """Return what ``liveops.js`` says about a list's connection, in the active language."""
    return {
        **client_texts(),
        "4400": _("The page asked for a list in a form the server does not accept."),
        "4401": _("Please log in again to see this list live."),
        "4403": _("You are not allowed to see this list live."),
        "4404": _("This list does not exist."),
        "unwatchable": _("This list cannot be shown live."),
    }


# --- the messages of a row --------------------------------------------------------------------


def row_messages(op: LiveOperation) -> list[dict[str, Any]]:
    """Return the channel-layer messages that carry ``op``'s row, as it is now, to its lists.

    To the group of its owner and to the group of every operation of its type. Never
    raises (a list must not break an operation): a row that cannot be rendered is
    logged and sent nowhere.
    """
    try:
        label = op.live_label()
        region = {f"row-{op.pk}": (Chunk(_rank(op), render_row(op)),)}
        groups = (owner_list_group(label, op.owner_id), list_group(label))
        return [Update(group, region).to_message() for group in groups]
    except Exception as exc:
        logger.warning("liveops could not render the list row of %s: %r", op, exc)
        return []
