"""Template tags: ``{% live_operation op %}`` and ``{% liveops_scripts %}``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from django import template
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from liveops import grants
from liveops.conf import get_settings
from liveops.fragments import render_container
from liveops.models import LiveOperation
from liveops.routing import WEBSOCKET_PATH

register = template.Library()

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
    html = render_container(
        op,
        op.to_view(),
        staff=bool(getattr(user, "is_staff", False)),
        ws_path=get_script_prefix() + WEBSOCKET_PATH,
        log_max=get_settings().LOG_TAIL,
        grant=_grant(request, op),
        **_action_forms(request, op),
    )
    return mark_safe(html)  # safe: rendered by templates with autoescape


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


def _grant(request: HttpRequest | None, op: LiveOperation) -> str:
    """Sign that this page's user may view ``op``, when they may (see liveops.grants)."""
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
