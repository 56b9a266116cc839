"""The one renderer: state views in, HTML region fragments out.

A live tick is ``render_regions(op, view, changed regions)``; a snapshot is
``render_regions(op, view)``, every region. Both go through the same code, so a page
built from ticks and a page built from a snapshot cannot disagree.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string, select_template
from django.utils import translation
from django.utils.formats import number_format
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from liveops._conf import get_settings
from liveops._state import ALL_REGIONS, Phase, StateView
from liveops._updates import Chunk, Rank, Update
from liveops.models import LiveOperation, live_page_url

# Marked here, translated when rendered (in the operation's language).
_PHASE_LABELS = {
    Phase.NOT_STARTED: gettext_noop("Waiting to start"),
    Phase.STARTED: gettext_noop("In progress"),
    Phase.FINISHED_OK: gettext_noop("Finished"),
    Phase.FINISHED_ERROR: gettext_noop("Failed"),
    Phase.CANCELLED: gettext_noop("Cancelled"),
}


def phase_label(phase: Phase, *, interrupted: bool = False) -> str:
    """Return the phase in words, in the active language."""
    return _("Interrupted") if interrupted else _(_PHASE_LABELS[phase])


def wait_text(waiting_since: float | None) -> str:
    """Return "Waiting for a worker for 3 minutes" once a wait passed WAIT_WARNING_SECONDS; else "".

    ``waiting_since`` is when the attempt was queued (``StateView.waiting_since``).
    """
    if waiting_since is None:  # started or ended: every region a run sends
        return ""
    limit = get_settings().WAIT_WARNING_SECONDS
    if not limit:
        return ""
    waited = time.time() - waiting_since
    if waited < limit:
        return ""
    if waited < 60:
        seconds = int(waited)
        duration = ngettext("%(count)s second", "%(count)s seconds", seconds) % {"count": seconds}
    else:
        now = datetime.now()
        duration = timesince(now - timedelta(seconds=waited), now, depth=1)
    return _("Waiting for a worker for %(duration)s") % {"duration": duration}


def container_id(op: LiveOperation) -> str:
    """Return the DOM id of the operation's container."""
    return f"liveop-{op.pk}"


def region_id(op: LiveOperation, region: str) -> str:
    """Return the DOM id of one region of the operation."""
    return f"liveop-{op.pk}-{region}"


def render_regions(
    op: LiveOperation,
    view: StateView,
    regions: Iterable[str] | None = None,
    *,
    new_log: Sequence[tuple[int, str]] | None = None,
    staff: bool = False,
    log_max: int = 200,
) -> str:
    """Render the given regions of ``view`` (all by default) as ``hx-swap-oob`` elements.

    With ``new_log``, the log region is sent as an append of those lines only;
    otherwise it is replaced by the whole tail.
    """
    parts = render_parts(op, view, regions, new_log=new_log, staff=staff, log_max=log_max)
    return "".join(parts.values())


def render_parts(
    op: LiveOperation,
    view: StateView,
    regions: Iterable[str] | None = None,
    *,
    new_log: Sequence[tuple[int, str]] | None = None,
    staff: bool = False,
    log_max: int = 200,
) -> dict[str, str]:
    """Render the given regions as ``render_regions`` does, one element per region name."""
    names = op.region_names()
    wanted = set(names if regions is None else regions)
    with translation.override(op.get_language()):
        parts = {}
        for region in names:
            if region not in wanted:
                continue
            if region == "log":
                parts[region] = _render_log(op, view, new_log, log_max)
            elif region in ALL_REGIONS:
                parts[region] = _render_region(op, view, region, staff)
            else:
                parts[region] = _render_extra(op, view, region)
        return parts


def render_update(
    op: LiveOperation,
    view: StateView,
    regions: Iterable[str],
    new_log: Sequence[tuple[int, str]] | None = None,
    *,
    group: str,
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
    log_lines, appends = _log_lines(view, new_log, log_max)
    oldest, newest = (log_lines[0][0], log_lines[-1][0]) if log_lines else (0, 0)

    def chunk(name: str, html: str) -> Chunk:
        staff_html = staff_parts[name] if staff_parts[name] != html else None
        if name != "log":
            return Chunk(rank, html, staff_html)
        appended = len(log_lines) if appends else 0
        return Chunk(rank, html, staff_html, appends, appended, oldest, newest)

    return Update(group, {name: (chunk(name, html),) for name, html in parts.items()}, log_max)


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
    script_notice: bool = False,
    wsgi_notice: bool = False,
) -> str:
    """Render the whole live container, each region already holding the current state.

    With ``cancel_url`` and ``retry_url`` (and the page's ``csrf_token``) it holds the
    cancel and retry forms, which work without JavaScript; the stylesheet shows the
    one that applies to the state the page shows. ``script_notice`` and ``wsgi_notice``
    add the developer's notices of liveops/_dev_notices.html (the tag sets them in DEBUG).
    """
    with translation.override(op.get_language()):
        parts = render_parts(op, view, staff=staff, log_max=log_max)
        regions = {name: mark_safe(parts.pop(name)) for name in ALL_REGIONS}
        regions["extras"] = mark_safe("".join(parts.values()))  # safe: rendered above
        return render_to_string(
            "liveops/container.html",
            {
                "op": op,
                "container_id": container_id(op),
                "connection_id": region_id(op, "connection"),
                "ws_path": ws_path,
                "live_url": live_page_url(op),
                "grant": grant,
                "cancel_url": cancel_url,
                "retry_url": retry_url,
                "csrf_token": csrf_token,
                "script_notice": script_notice,
                "wsgi_notice": wsgi_notice,
                "regions": regions,
                "client_texts": json.dumps(client_texts(), ensure_ascii=False),
            },
        )


def client_texts() -> dict[str, str]:
    """Return what ``liveops.js`` says about the connection, in the active language.

    The container carries them (``data-liveop-texts``), so the script needs no catalogue.
    """
    return {
        "connecting": _("Connecting…"),
        "live": _("Live"),
        "retrying": _("Connection lost. Retrying…"),
        # {seconds} is filled in by the script.
        "reconnecting": _("Reconnecting in {seconds} s…"),
        "4400": _("The page asked for operations in a form the server does not accept."),
        "4401": _("Please log in again to watch this operation."),
        "4403": _("You are not allowed to watch this operation."),
        "4404": _("This operation no longer exists."),
        "4500": _("Live updates are not set up on this server; its log says how to fix it."),
        # After handshakes that never opened while the page's own URL still answers.
        "nows": _(
            "This server does not accept WebSockets: serve the site with an ASGI server "
            "(uvicorn or daphne); see “Reconnecting… forever” in django-liveops' "
            "troubleshooting guide."
        ),
        "refused": _("The server refused the live connection."),
        "unwatchable": _("This operation cannot be watched."),
        "nosocket": _("Cannot open a live connection for this page."),
    }


def element_attributes(
    element_id: str, css_class: str, swap: str, rank: Rank, phase: Phase
) -> SafeString:
    """Return the attributes of a region or list row element: its id and its rank (rules 1-3)."""
    return format_html(
        'id="{}" class="{}" hx-swap-oob="{}" data-liveop-v="{}" data-liveop-attempt="{}"'
        ' data-liveop-state="{}"{}',
        element_id,
        css_class,
        swap,
        rank.version,
        rank.attempt,
        phase.value,
        mark_safe(" data-liveop-terminal") if rank.terminal else "",
    )


def _attributes(
    op: LiveOperation, view: StateView, region: str, swap: str, css_class: str = ""
) -> SafeString:
    rank = Rank(view.attempt, view.phase.is_terminal, view.version)
    return element_attributes(
        region_id(op, region), css_class or f"liveops-{region}", swap, rank, view.phase
    )


def _template_names(op: LiveOperation, view: StateView, region: str) -> list[str]:
    meta = op._meta
    names = [f"liveops/{meta.app_label}/{meta.model_name}/{region}.html"]
    if region == "result" and _shows_own_result(view):
        names[:0] = result_template_names(op)
    names.append(f"liveops/regions/{region}.html")
    return names


def result_template_names(op: LiveOperation) -> list[str]:
    """Return the templates that may show the operation's successful result, in the order tried.

    Ours, ``result_template_name`` or ``<app_label>/<model_name>_result.html``, then the name
    django-liveops 0.4 looked for, ``<app_label>/<snake_class>_result.html``, so a project
    moving from 0.4 keeps its result templates where they are.
    """
    meta = op._meta
    ours = op.result_template_name or f"{meta.app_label}/{meta.model_name}_result.html"
    legacy = f"{meta.app_label}/{snake_class_name(type(op))}_result.html"
    names = [ours] if legacy == ours else [ours, legacy]
    chosen = getattr(op, "get_result_template_name", None)  # a 0.4 model's own override
    return [chosen(), *names] if callable(chosen) else names


# A word boundary inside a class name: before a capital that follows a lower-case letter or a
# digit, and before the last capital of an acronym that starts a word ("PBNFile": PBN|File).
_WORD_START = re.compile(r"(?<=[a-z\d])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_class_name(model: type[LiveOperation]) -> str:
    """Return the class name in snake case, as django-liveops 0.4 named its templates.

    ``ImportPBN2`` is ``import_pbn2``, ``ABCTest`` is ``abc_test``; Django's ``model_name``
    of either has no underscores (``importpbn2``).
    """
    return _WORD_START.sub("_", model.__name__).lower()


def _shows_own_result(view: StateView) -> bool:
    """The developer's result template shows a success; a chained end names its successor."""
    return view.phase is Phase.FINISHED_OK and not view.chained_to


def render_result_template(op: LiveOperation, view: StateView) -> SafeString | None:
    """Render the developer's result template alone, as the result region would; None without one.

    Any end but a success that does not chain shows no such template: "" then. For
    ``{% render_op_result %}``, which django-liveops 0.4 pages put beside the container.
    """
    if not _shows_own_result(view):
        return SafeString("")
    try:
        template = select_template(result_template_names(op))
    except TemplateDoesNotExist:
        return None
    with translation.override(op.get_language()):
        html: str = template.render(_region_context(op, view, "result", staff=False))
    return mark_safe(html)  # safe: rendered by a template with autoescape


def _render_region(op: LiveOperation, view: StateView, region: str, staff: bool) -> str:
    template = select_template(_template_names(op, view, region))
    inner = template.render(_region_context(op, view, region, staff))
    return f"<div {_attributes(op, view, region, 'true')}>{inner}</div>"


def _region_context(op: LiveOperation, view: StateView, region: str, staff: bool) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if region == "result" and _shows_own_result(view):
        # What run() gave p.result(), as the guide says: {{ imported }}. Ours win a clash,
        # but for "operation", the op under django-liveops 0.4's name: there a result key won.
        context.update(view.result_context or {})
        context.setdefault("operation", op)
    waited = wait_text(view.waiting_since)
    context.update(
        {
            "op": op,
            "view": view,
            "region_id": region_id(op, region),
            "phase_label": waited or phase_label(view.phase, interrupted=view.interrupted),
            "waiting_too_long": bool(waited),
            "is_terminal": view.phase.is_terminal,
            "staff": staff,
        }
    )
    if region == "progress":
        context["count_text"] = count_text(view.done, view.track_unit)
        context["eta_text"] = _eta_text(view)
    if region == "stages":
        context["stage_total"] = len(view.stages)
        context["stage_done"] = sum(1 for _, stage_state in view.stages if stage_state == "done")
    if region == "result":
        finished_ok = view.phase is Phase.FINISHED_OK
        chained = finished_ok and bool(view.chained_to)
        context["chained_to"] = view.chained_to if chained else None
        context["success_url"] = op.get_success_url() if finished_ok and not chained else None
        context["result"] = view.result_context or {}
        context["result_items"] = sorted((view.result_context or {}).items())
    return context


def _render_extra(op: LiveOperation, view: StateView, region: str) -> str:
    """A custom region: the trusted HTML ``p.swap()`` put there (see Progress.swap)."""
    html = dict(view.extra_html).get(region, "")
    attributes = _attributes(op, view, region, "true", f"liveops-extra liveops-extra--{region}")
    return f"<div {attributes}>{html}</div>"


def count_text(done: int, unit: str) -> str:
    """Return "3 items" in the page's language, or "3 rows" for a custom unit.

    The default unit is translated with its plurals. A custom unit is the developer's
    own word: English pages add "s" to a plain English word; other languages show
    "3 \u00d7 unit", which needs no inflection.
    """
    count = number_format(done, force_grouping=True)  # 1,500 or 1.500, as the language has it
    if unit == "item":
        return ngettext("%(count)s item", "%(count)s items", done) % {"count": count}
    language = translation.get_language() or "en"
    if language.startswith("en") and unit.isalpha() and unit.isascii():
        return f"{count} {unit}{'' if done == 1 else 's'}"
    return f"{count} \u00d7 {unit}"  # a multiplication sign


#: No ETA before the bar has moved this far, or for this long: it would be noise.
ETA_MIN_PERCENT = 2.0
ETA_MIN_SECONDS = 3.0


def _eta_text(view: StateView) -> str:
    """Return "About 3 minutes left" for a running bar, from its pace so far; else ""."""
    percent, since = view.percent, view.progress_since
    if view.phase is not Phase.STARTED or percent is None or since is None:
        return ""
    elapsed = time.time() - since
    if percent < ETA_MIN_PERCENT or percent >= 100 or elapsed < ETA_MIN_SECONDS:
        return ""
    left = elapsed * (100 - percent) / percent
    if left < 60:
        seconds = max(5, 5 * round(left / 5))  # a steadier figure than every second
        return ngettext("About %(count)s second left", "About %(count)s seconds left", seconds) % {
            "count": seconds
        }
    now = datetime.now()
    return _("About %(time)s left") % {"time": timeuntil(now + timedelta(seconds=left), now)}


def _log_lines(
    view: StateView, new_log: Sequence[tuple[int, str]] | None, log_max: int
) -> tuple[Sequence[tuple[int, str]], bool]:
    """Return the log lines to send and whether they are appended (not the whole tail).

    The new lines go out as an append, except at the end: a terminal log is sent whole.
    """
    if new_log is not None and not view.phase.is_terminal:
        return new_log[-log_max:], True
    return view.log_tail[-log_max:], False


def _render_log(
    op: LiveOperation, view: StateView, new_log: Sequence[tuple[int, str]] | None, log_max: int
) -> str:
    lines, appends = _log_lines(view, new_log, log_max)
    prefix = region_id(op, "log")
    # Log lines are rendered here rather than by a template: a busy run sends
    # thousands of them and this is the hot path of the publisher.
    items = "".join(
        f'<li id="{prefix}-{seq}" data-liveop-seq="{seq}">{escape(line)}</li>'
        for seq, line in lines
    )
    swap = "beforeend" if appends else "true"
    attributes = _attributes(op, view, "log", swap)
    label = escape(_("Log"))
    # tabindex: a log taller than its box scrolls, and keyboard users must reach it too.
    return (
        f'<ol {attributes} data-liveop-log-max="{log_max}" aria-label="{label}" tabindex="0">'
        f"{items}</ol>"
    )
