"""The one renderer: state views in, HTML region fragments out.

A live tick is ``render_regions(view, changed regions)``; a snapshot is
``render_regions(view, ALL_REGIONS)``. Both go through the same code, so a page
built from ticks and a page built from a snapshot cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.template.loader import render_to_string, select_template
from django.utils import translation
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from liveops.models import LiveOperation
from liveops.state import ALL_REGIONS, Phase, StateView
from liveops.updates import Chunk, Rank, Update

__all__ = [
    "container_id",
    "frame",
    "phase_label",
    "region_id",
    "render_container",
    "render_parts",
    "render_regions",
    "render_update",
]

_PHASE_LABELS = {
    Phase.NOT_STARTED: "Waiting to start",
    Phase.STARTED: "In progress",
    Phase.FINISHED_OK: "Finished",
    Phase.FINISHED_ERROR: "Failed",
    Phase.CANCELLED: "Cancelled",
}


def phase_label(phase: Phase, *, interrupted: bool = False) -> str:
    """Return the phase in words, in the active language."""
    return _("Interrupted") if interrupted else _(_PHASE_LABELS[phase])


def container_id(op: LiveOperation) -> str:
    """Return the DOM id of the operation's container."""
    return f"liveop-{op.pk}"


def region_id(op: LiveOperation, region: str) -> str:
    """Return the DOM id of one region of the operation."""
    return f"liveop-{op.pk}-{region}"


def frame(html: str) -> str:
    """Wrap fragments in the JSON envelope sent over the WebSocket."""
    return json.dumps({"liveop_html": html}, ensure_ascii=False)


def render_regions(
    op: LiveOperation,
    view: StateView,
    regions: Iterable[str] = ALL_REGIONS,
    *,
    new_log: Sequence[tuple[int, str]] | None = None,
    staff: bool = False,
    log_max: int = 200,
) -> str:
    """Render the given regions of ``view`` as ``hx-swap-oob`` elements, in one string.

    With ``new_log``, the log region is sent as an append of those lines only;
    otherwise it is replaced by the whole tail.
    """
    parts = render_parts(op, view, regions, new_log=new_log, staff=staff, log_max=log_max)
    return "".join(parts.values())


def render_parts(
    op: LiveOperation,
    view: StateView,
    regions: Iterable[str] = ALL_REGIONS,
    *,
    new_log: Sequence[tuple[int, str]] | None = None,
    staff: bool = False,
    log_max: int = 200,
) -> dict[str, str]:
    """Render the given regions as ``render_regions`` does, one element per region name."""
    wanted = set(regions)
    with translation.override(op.language or None):
        parts = {}
        for region in ALL_REGIONS:
            if region not in wanted:
                continue
            if region == "log":
                parts[region] = _render_log(op, view, new_log, log_max)
            else:
                parts[region] = _render_region(op, view, region, staff)
        return parts


def render_update(
    op: LiveOperation,
    view: StateView,
    regions: Iterable[str],
    *,
    group: str,
    new_log: Sequence[tuple[int, str]] | None = None,
    log_max: int = 200,
) -> Update:
    """Render a live update for ``group``: each region once, and for staff where it differs."""
    parts = render_parts(op, view, regions, new_log=new_log, log_max=log_max)
    staff_parts = (
        render_parts(op, view, regions, new_log=new_log, staff=True, log_max=log_max)
        if view.traceback
        else parts
    )
    rank = Rank(view.attempt, view.phase.is_terminal, view.version)
    appended = len(new_log[-log_max:]) if new_log is not None and _appends_log(view, new_log) else 0
    chunks = {
        name: (
            Chunk(
                rank,
                html,
                staff_parts[name] if staff_parts[name] != html else None,
                append=name == "log" and _appends_log(view, new_log),
                lines=appended if name == "log" else 0,
            ),
        )
        for name, html in parts.items()
    }
    return Update(group, chunks, log_max)


def render_container(
    op: LiveOperation,
    view: StateView,
    *,
    staff: bool,
    ws_path: str,
    log_max: int,
    grant: str = "",
    cancel_url: str = "",
    retry_url: str = "",
    csrf_token: str = "",
) -> str:
    """Render the whole live container, each region already holding the current state.

    With ``cancel_url`` and ``retry_url`` (and the page's ``csrf_token``) it holds the
    cancel and retry forms, which work without JavaScript; the stylesheet shows the
    one that applies to the state the page shows.
    """
    with translation.override(op.language or None):
        regions = {
            region: mark_safe(render_regions(op, view, [region], staff=staff, log_max=log_max))
            for region in ALL_REGIONS
        }
        return render_to_string(
            "liveops/container.html",
            {
                "op": op,
                "container_id": container_id(op),
                "connection_id": region_id(op, "connection"),
                "ws_path": ws_path,
                "grant": grant,
                "cancel_url": cancel_url,
                "retry_url": retry_url,
                "csrf_token": csrf_token,
                "regions": regions,
            },
        )


def _attributes(op: LiveOperation, view: StateView, region: str, swap: str) -> SafeString:
    terminal = view.phase.is_terminal
    return format_html(
        'id="{}" class="liveops-{}" hx-swap-oob="{}" data-liveop-v="{}" data-liveop-attempt="{}"'
        ' data-liveop-state="{}"{}',
        region_id(op, region),
        region,
        swap,
        view.version,
        view.attempt,
        view.phase.value,
        mark_safe(" data-liveop-terminal") if terminal else "",
    )


def _template_names(op: LiveOperation, region: str) -> list[str]:
    meta = op._meta
    names = [f"liveops/{meta.app_label}/{meta.model_name}/{region}.html"]
    if region == "result":
        names.insert(
            0, op.result_template_name or f"{meta.app_label}/{meta.model_name}_result.html"
        )
    names.append(f"liveops/regions/{region}.html")
    return names


def _render_region(op: LiveOperation, view: StateView, region: str, staff: bool) -> str:
    template = select_template(_template_names(op, region))
    context: dict[str, Any] = {
        "op": op,
        "view": view,
        "region_id": region_id(op, region),
        "phase_label": phase_label(view.phase, interrupted=view.interrupted),
        "is_terminal": view.phase.is_terminal,
        "staff": staff,
    }
    if region == "progress":
        context["count_text"] = _count_text(view.done, view.track_unit)
    if region == "stages":
        context["stage_total"] = len(view.stages)
        context["stage_done"] = sum(1 for _, state in view.stages if state == "done")
    if region == "result":
        finished_ok = view.phase is Phase.FINISHED_OK
        context["success_url"] = op.get_success_url() if finished_ok else None
        context["result"] = view.result_context or {}
        context["result_items"] = sorted((view.result_context or {}).items())
    inner = template.render(context)
    return f"<div {_attributes(op, view, region, 'true')}>{inner}</div>"


def _count_text(done: int, unit: str) -> str:
    """Return "3 rows": English plurals for English pages, "3 \u00d7 unit" elsewhere."""
    language = translation.get_language() or "en"
    if language.startswith("en") and unit.isalpha() and unit.isascii():
        return f"{done:,} {unit}{'' if done == 1 else 's'}"
    return f"{done:,} \u00d7 {unit}"  # a multiplication sign


def _appends_log(view: StateView, new_log: Sequence[tuple[int, str]] | None) -> bool:
    """Whether the log goes out as new lines only: a terminal log is always sent whole."""
    return new_log is not None and not view.phase.is_terminal


def _render_log(
    op: LiveOperation, view: StateView, new_log: Sequence[tuple[int, str]] | None, log_max: int
) -> str:
    lines = new_log if new_log is not None and _appends_log(view, new_log) else view.log_tail
    prefix = region_id(op, "log")
    # Log lines are rendered here rather than by a template: a busy run sends
    # thousands of them and this is the hot path of the publisher.
    items = "".join(
        f'<li id="{prefix}-{seq}" data-liveop-seq="{seq}">{escape(line)}</li>'
        for seq, line in lines[-log_max:]
    )
    swap = "beforeend" if _appends_log(view, new_log) else "true"
    attributes = _attributes(op, view, "log", swap)
    label = escape(_("Log"))
    return f'<ol {attributes} data-liveop-log-max="{log_max}" aria-label="{label}">{items}</ol>'
