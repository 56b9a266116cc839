"""Template tags: ``{% live_operation op %}``, ``{% live_operation_list page_obj %}``, and
``{% liveops_scripts %}``; and what django-liveops 0.4 templates use: the ``pairs`` and
``get_item`` filters and the deprecated ``{% render_op_result op %}``."""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django import template
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.core.paginator import Page
from django.http import HttpRequest, QueryDict
from django.middleware.csrf import get_token
from django.template.base import Parser, TextNode, Token
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from liveops import _grants as grants
from liveops._conf import get_settings
from liveops._fragments import render_container, render_result_template
from liveops._protocol import WEBSOCKET_PATH
from liveops.lists import list_texts, render_row
from liveops.models import LiveOperation, get_operation_model

register = template.Library()

logger = logging.getLogger("liveops")

_VENDOR_DIR = Path(__file__).resolve().parent.parent / "static" / "liveops" / "vendor"


@functools.cache
def vendored_htmx_path() -> str:
    """Return the static path of the vendored htmx 2 (its version is in the file name)."""
    (found,) = sorted(_VENDOR_DIR.glob("htmx-*.min.js"))
    return f"liveops/vendor/{found.name}"


@register.simple_tag(takes_context=True)
def live_operation(context: template.Context, op: LiveOperation) -> SafeString:
    """Render the live container of ``op``, already showing its current state."""
    if not isinstance(op, LiveOperation):
        raise TypeError(f"{{% live_operation %}} takes a LiveOperation, not {op!r}.")
    request = context.get("request")
    user = getattr(request, "user", None)
    notices = _dev_notices(request)
    html = render_container(
        op,
        op.to_view(),
        staff=bool(getattr(user, "is_staff", False)),
        ws_path=get_script_prefix() + WEBSOCKET_PATH,
        log_max=get_settings().LOG_TAIL,
        grant=_grant(request, op),
        script_notice=notices.get("script_notice", False),
        wsgi_notice=notices.get("wsgi_notice", False),
        **_action_forms(request, op),
    )
    return mark_safe(html)  # safe: rendered by templates with autoescape


@register.simple_tag(takes_context=True)
def live_operation_list(
    context: template.Context, page: Page[Any], *, label: str = "", caption: str = ""
) -> SafeString:
    """Render the live table of ``page`` (a ``page_obj``): rows, empty state, pagination.

    The type comes from the page's queryset (``label="app.model"`` when the page holds
    a plain list). Page 1 gains new operations live; every page updates its rows.
    Paginate ``liveops.lists.list_queryset(model, user)``: newest first, owners joined.
    """
    if not isinstance(page, Page):
        raise TypeError(f"{{% live_operation_list %}} takes a page (page_obj), not {page!r}.")
    model = _list_model(page, label)
    request = context.get("request")
    label = model.live_label()
    rows = [mark_safe(render_row(op)) for op in page.object_list]  # safe: templates escape
    things = capfirst(model._meta.verbose_name_plural)
    html = render_to_string(
        "liveops/list.html",
        {
            "caption": caption or _("%(things)s, newest first") % {"things": things},
            "label": label,
            "ws_path": get_script_prefix() + WEBSOCKET_PATH,
            "page": page,
            "per_page": page.paginator.per_page,
            "rows": rows,
            "status_id": f"liveops-list-{label}-{page.number}-status",
            "texts": json.dumps(list_texts(), ensure_ascii=False),
            "previous_url": _page_url(request, page, -1),
            "next_url": _page_url(request, page, +1),
        },
    )
    notices = _dev_notices(request)
    if notices:  # before the table, where its caption would be read first
        html = render_to_string("liveops/_dev_notices.html", notices) + html
    return mark_safe(html)  # safe: rendered by templates with autoescape


def _list_model(page: Page[Any], label: str) -> type[LiveOperation]:
    if label:
        return get_operation_model(label)
    model = getattr(page.paginator.object_list, "model", None)
    if model is None and len(page.object_list):
        model = type(page.object_list[0])
    if isinstance(model, type) and issubclass(model, LiveOperation):
        return model
    raise TypeError("{% live_operation_list %} cannot tell the type: pass label='app.model'.")


def _page_url(request: HttpRequest | None, page: Page[Any], step: int) -> str:
    """Return the query string of the page ``step`` away, keeping the other parameters."""
    wanted = page.number + step
    if not 1 <= wanted <= page.paginator.num_pages:
        return ""
    query = request.GET.copy() if request is not None else QueryDict(mutable=True)
    query["page"] = str(wanted)
    return f"?{query.urlencode()}"


def _action_forms(request: HttpRequest | None, op: LiveOperation) -> dict[str, str]:
    """The cancel and retry forms' actions and the CSRF token, for what this user may do.

    Both are rendered whatever the state; the stylesheet shows the one that applies,
    so a page keeps working after an in-place end or retry.
    """
    user = getattr(request, "user", None)
    if request is None or user is None:
        return {}
    kwargs = {"label": op.live_label(), "pk": op.pk}
    forms = {}
    try:
        if op.can_cancel(user):
            forms["cancel_url"] = reverse("liveops:cancel", kwargs=kwargs)
        if op.can_retry(user):
            forms["retry_url"] = reverse("liveops:retry", kwargs=kwargs)
    except NoReverseMatch:  # the project did not include liveops.urls
        return {}
    if forms:
        forms["csrf_token"] = get_token(request)
    return forms


_wsgi_warned = threading.Event()


def _dev_notices(request: HttpRequest | None) -> dict[str, bool]:
    """The developer's notices a container or list shows in DEBUG (liveops/_dev_notices.html).

    A page served over WSGI also logs a warning, once per process and whatever DEBUG says:
    its WebSocket has nowhere to go unless a proxy sends it to an ASGI server.
    """
    if isinstance(request, WSGIRequest) and not _wsgi_warned.is_set():
        _wsgi_warned.set()  # two threads at once may both log it: harmless, and no lock
        logger.warning(
            "A live page (%s) was served over WSGI (manage.py runserver without daphne, or "
            "gunicorn/uwsgi), which cannot carry its WebSocket: unless a proxy sends %s to an "
            "ASGI server, live pages keep reconnecting. Serve the site with an ASGI server: "
            'uvicorn yourproject.asgi:application, or put "daphne" first in INSTALLED_APPS '
            "so that runserver serves ASGI.",
            request.path,
            get_script_prefix() + WEBSOCKET_PATH,
        )
    if not settings.DEBUG:
        return {}
    # The script removes the first notice when it starts; the second is for the server.
    return {"script_notice": True, "wsgi_notice": isinstance(request, WSGIRequest)}


def _grant(request: HttpRequest | None, op: LiveOperation) -> str:
    """Sign that this page's user may view ``op``, when they may (see liveops._grants)."""
    user = getattr(request, "user", None)
    if request is None or user is None or not get_settings().GRANT_SECONDS:
        return ""
    if not op.can_view(user):
        return ""  # the socket asks the session, and is refused as before
    session = getattr(request, "session", None)
    return grants.issue(op.live_token, user, getattr(session, "session_key", None))


@register.simple_tag(takes_context=True)
def liveops_scripts(context: template.Context, htmx: bool = False) -> SafeString:
    """Render the stylesheet and script tags (and the vendored htmx 2 with ``htmx=True``).

    Each tag carries the CSP nonce of Django's own CSP support (``csp_nonce`` in
    the context) or of django-csp (``request.csp_nonce``) when there is one.
    """
    nonce: Any = context.get("csp_nonce")
    if nonce is None:
        nonce = getattr(context.get("request"), "csp_nonce", None)
    nonce_attr = format_html(' nonce="{}"', nonce) if nonce is not None else ""
    sources = [static(vendored_htmx_path())] if htmx else []
    sources.append(static("liveops/liveops.js"))
    tags = [
        format_html(
            '<link rel="stylesheet" href="{}"{}>', static("liveops/liveops.css"), nonce_attr
        )
    ]
    tags += [format_html('<script src="{}"{} defer></script>', src, nonce_attr) for src in sources]
    return mark_safe("\n".join(tags))  # safe: each part built with format_html


class _JoinedLines(template.Node):
    def __init__(self, nodelist: template.NodeList) -> None:
        self.nodelist = nodelist

    def render(self, context: template.Context) -> SafeString:
        return self.nodelist.render(context)


@register.tag
def joinlines(parser: Parser, token: Token) -> _JoinedLines:
    """``{% joinlines %}…{% endjoinlines %}``: a template laid out on many lines, output as one.

    When the template is compiled, every line break of its own text goes, with the
    whitespace around it; rendered values (log lines, tracebacks) keep theirs. A space
    that must stay at the end of a line goes before a comment: ``</span> {# #}``.
    """
    nodelist = parser.parse(("endjoinlines",))
    parser.delete_first_token()
    for node in nodelist.get_nodes_by_type(TextNode):
        if isinstance(node, TextNode):  # always: it tells mypy
            node.s = re.sub(r"\s*\n\s*", "", node.s, flags=re.ASCII)
    return _JoinedLines(nodelist)


# --- what django-liveops 0.4 templates use (docs/upgrading.md) ---------------------------


@register.filter
def pairs(value: object) -> list[tuple[Any, Any]]:
    """Return a dict's ``(key, value)`` pairs, [] for anything else: ``{% for k, v in d|pairs %}``.

    Unlike ``d.items``, which a dict holding the key ``"items"`` answers with that value.
    """
    return list(value.items()) if isinstance(value, Mapping) else []


@register.filter
def get_item(value: object, key: Any) -> Any:
    """Return ``value[key]`` for a dict and a key held in a variable; "" when there is none."""
    return value.get(key, "") if isinstance(value, Mapping) else ""


@register.simple_tag
def render_op_result(op: LiveOperation) -> SafeString:
    """Deprecated: render the op's result template after a success, "" otherwise.

    Without a result template, the result's ``key=value`` pairs, one a line. The result
    region of ``{% live_operation op %}`` shows the same template live.
    """
    warnings.warn(
        "{% render_op_result %} is deprecated; use {% live_operation op %}, whose result "
        "region shows the result template (and follows the operation live).",
        DeprecationWarning,
        stacklevel=2,
    )
    if not isinstance(op, LiveOperation):
        raise TypeError(f"{{% render_op_result %}} takes a LiveOperation, not {op!r}.")
    view = op.to_view()
    html = render_result_template(op, view)
    if html is not None:
        return html
    items = (view.result_context or {}).items()
    return format_html_join(mark_safe("<br>"), "{}={}", items)
