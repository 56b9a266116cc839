"""View grants: the page that showed an operation lets its socket in without a session lookup.

When a page renders a live operation for someone who may view it, it signs that
decision into the container (``data-liveop-grant``): who (user pk, staff or not),
which operation, which browser session, and when. The socket presents the grant
with the operation (``op=<label>:<pk>~<grant>``); the consumer checks the
signature against the session cookie the socket itself carries, and needs no
session or user query. The page's HTML already showed the state, so the grant
reveals nothing the page did not; it binds to the session cookie, so a copied
grant is useless in another browser and a logout (which changes the session key)
ends it; and it expires after ``GRANT_SECONDS``, after which the socket is
authorized from the session as before.

Only the parts the server cannot rebuild travel: the operation comes from the
token beside it and the session key from the socket's own cookie.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.http.cookie import parse_cookie

_SALT = "liveops.grant"
#: Longer grants are not looked at (a user pk, a flag, a timestamp and a signature).
MAX_LENGTH = 300


@dataclass(frozen=True)
class Grant:
    """Who the page was rendered for."""

    user_pk: str
    staff: bool


def _signed_value(token: str, user_pk: str, staff: bool, session_key: str) -> str:
    return f"{token}|{user_pk}|{int(staff)}|{session_key}"


def issue(token: str, user: Any, session_key: str | None) -> str:
    """Return the grant of ``user`` (who may view the operation ``token``) in this session."""
    user_pk = str(user.pk) if getattr(user, "is_authenticated", False) else ""
    staff = bool(getattr(user, "is_staff", False))
    value = _signed_value(token, user_pk, staff, session_key or "")
    signed = signing.TimestampSigner(salt=_SALT).sign(value)
    timestamp, signature = signed[len(value) + 1 :].split(":")
    return f"{timestamp}.{signature}.{int(staff)}.{user_pk}"


def check(grant: str, token: str, session_key: str | None, max_age: float) -> Grant | None:
    """Return what ``grant`` says, or None if it is forged, expired or for something else."""
    if not grant or len(grant) > MAX_LENGTH or max_age <= 0:
        return None
    parts = grant.split(".", 3)
    if len(parts) != 4 or parts[2] not in ("0", "1"):
        return None
    timestamp, signature, staff_flag, user_pk = parts
    staff = staff_flag == "1"
    value = _signed_value(token, user_pk, staff, session_key or "")
    try:
        signing.TimestampSigner(salt=_SALT).unsign(
            f"{value}:{timestamp}:{signature}", max_age=timedelta(seconds=max_age)
        )
    except signing.BadSignature:  # SignatureExpired is one too
        return None
    return Grant(user_pk, staff)


def session_key_of(scope: Mapping[str, Any]) -> str | None:
    """Return the session key from the socket's own Cookie header (no middleware needed)."""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
    return None
