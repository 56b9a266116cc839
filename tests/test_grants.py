"""View grants: a page's signed "may view" lets its socket in with one query per model."""

from __future__ import annotations

import json
from typing import Any

import lxml.html
import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.core import signing
from django.template import Context, Template
from django.test import RequestFactory

from liveops import _grants as grants
from tests.test_consumers import _tables, count_queries
from tests.testapp.models import Scripted
from tests.viewers import open_viewer

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "testapp.scripted:6c1f1c0e-6a7e-4b8e-9a53-3d4d5f6a7b8c"
TIMEOUT = 5
KEY_1, KEY_2 = "a" * 32, "b" * 32  # Django takes keys of 8 characters and more


class FakeUser:
    def __init__(self, pk: object, *, staff: bool = False) -> None:
        self.pk, self.is_staff, self.is_authenticated = pk, staff, True


# --- the signature -------------------------------------------------------------------------


def test_a_grant_says_who_the_page_was_for() -> None:
    grant = grants.issue(TOKEN, FakeUser(42, staff=True), "sessionkey")
    assert grants.check(grant, TOKEN, "sessionkey", 60) == grants.Grant("42", staff=True)
    assert len(grant) < 80  # fifty of them fit in one socket URL


@pytest.mark.parametrize(
    ("token", "session_key"),
    [
        (TOKEN.replace("6c1f", "7c1f"), "sessionkey"),  # another operation
        (TOKEN, "another-session"),  # copied to another browser
        (TOKEN, None),  # the socket carries no session cookie
    ],
)
def test_a_grant_is_only_good_for_its_operation_and_session(token: str, session_key: Any) -> None:
    grant = grants.issue(TOKEN, FakeUser(42), "sessionkey")
    assert grants.check(grant, token, session_key, 60) is None


def test_a_changed_user_or_staff_flag_breaks_the_signature() -> None:
    timestamp, signature, staff, user_pk = grants.issue(TOKEN, FakeUser(42), "s").split(".", 3)
    assert grants.check(f"{timestamp}.{signature}.1.{user_pk}", TOKEN, "s", 60) is None
    assert grants.check(f"{timestamp}.{signature}.{staff}.1", TOKEN, "s", 60) is None


def test_a_grant_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    grant = grants.issue(TOKEN, FakeUser(42), "s")
    assert grants.check(grant, TOKEN, "s", 60) is not None
    now = signing.time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now + 61)
    assert grants.check(grant, TOKEN, "s", 60) is None
    assert grants.check(grant, TOKEN, "s", 0) is None  # GRANT_SECONDS = 0: grants are off


@pytest.mark.parametrize(
    "grant",
    ["", "x", "a.b.c", "a.b.2.42", "..1.", "\u0000.\u2603.1.<script>", "a." * 5000, "💥.💥.0.💥"],
)
def test_garbage_is_no_grant(grant: str) -> None:
    assert grants.check(grant, TOKEN, "s", 60) is None


# --- the page issues it ----------------------------------------------------------------------


def _page_grant(op: Any, user: Any, session_key: str | None) -> str | None:
    request = RequestFactory().get("/")
    request.user = user
    request.session = SessionStore(session_key)
    html = Template("{% load liveops %}{% live_operation op %}").render(
        Context({"request": request, "op": op})
    )
    return lxml.html.fragment_fromstring(html).get("data-liveop-grant")


def test_the_page_grants_only_who_may_view(user: Any, other_user: Any) -> None:
    op = Scripted.objects.create(owner=user)
    grant = _page_grant(op, user, KEY_1)
    assert grant is not None
    assert grants.check(grant, op.live_token, KEY_1, 60) == grants.Grant(str(user.pk), False)
    assert _page_grant(op, other_user, KEY_2) is None


def test_no_grant_when_grants_are_off(user: Any, settings: Any) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "GRANT_SECONDS": 0}
    op = Scripted.objects.create(owner=user)
    assert _page_grant(op, user, KEY_1) is None


# --- the socket uses it ------------------------------------------------------------------------


def _login(user: Any) -> tuple[str, bytes]:
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None
    return (
        session.session_key,
        f"{django_settings.SESSION_COOKIE_NAME}={session.session_key}".encode(),
    )


async def test_a_granted_connect_reads_only_the_operation(user: Any, monkeypatch: Any) -> None:
    op = await database_sync_to_async(Scripted.objects.create)(owner=user)
    session_key, cookie = await database_sync_to_async(_login)(user)
    grant = grants.issue(op.live_token, user, session_key)
    with count_queries(monkeypatch) as queries:
        viewer = await open_viewer(f"{op.live_token}~{grant}", cookie=cookie)
        assert "liveop_html" in json.loads(await viewer.receive_from(timeout=TIMEOUT))
    await viewer.disconnect()
    assert _tables(queries) == ["testapp_scripted"]


async def test_without_a_valid_grant_the_session_decides(
    user: Any, other_user: Any, monkeypatch: Any
) -> None:
    op = await database_sync_to_async(Scripted.objects.create)(owner=user)
    _, cookie = await database_sync_to_async(_login)(user)
    forged = grants.issue(op.live_token, user, "not-this-session")
    with count_queries(monkeypatch) as queries:
        viewer = await open_viewer(f"{op.live_token}~{forged}", cookie=cookie)
        assert "liveop_html" in json.loads(await viewer.receive_from(timeout=TIMEOUT))
    await viewer.disconnect()
    assert _tables(queries) == ["auth_user", "django_session", "testapp_scripted"]
    # A grant made for someone else's session lets nobody else in.
    _, intruder = await database_sync_to_async(_login)(other_user)
    stolen = await open_viewer(f"{op.live_token}~{forged}", cookie=intruder)
    closed = await stolen.receive_output(timeout=TIMEOUT)
    assert closed == {"type": "websocket.close", "code": 4403}
