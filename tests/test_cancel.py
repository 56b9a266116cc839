"""Cancel: the request, the view with CSRF (three ways), and a run that stops."""

from __future__ import annotations

import threading
import time
from typing import Any

import lxml.html
import pytest
from django.db import connections
from django.test import Client

from liveops import _receivers as receivers
from liveops import lifecycle
from liveops._execution import execute
from liveops._state import ALL_REGIONS, Phase
from tests.testapp.models import Endless, Scripted

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 10.0


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, tuple[str, ...]]]:
    """What the cancel publishes, once its transaction has committed."""
    sent: list[tuple[Any, tuple[str, ...]]] = []

    def record(op: Any, regions: tuple[str, ...] = ALL_REGIONS) -> None:
        sent.append((op.pk, tuple(regions)))

    monkeypatch.setattr(receivers, "publish_snapshot", record)
    return sent


def reload(op: Any) -> Any:
    return type(op).objects.get(pk=op.pk)


# --- the request ---------------------------------------------------------------------------


def test_a_running_operation_is_asked_and_every_page_says_cancelling(user, published) -> None:
    op = Endless.objects.create(owner=user)
    type(op).objects.filter(pk=op.pk).update(started_on="2026-01-01T00:00:00Z")
    assert lifecycle.request_cancel(op)
    stored = reload(op)
    assert (stored.cancel_requested, stored.finished_on, stored.version) == (True, None, 1)
    assert published == [(op.pk, ("notice",))]
    assert stored.get_state() is Phase.STARTED  # until run() sees it


def test_an_operation_not_started_ends_cancelled_and_never_runs(user, published) -> None:
    op = Scripted.objects.create(owner=user)
    ran: list[bool] = []
    Scripted.SCRIPTS[op.pk] = [lambda p: ran.append(True)]
    assert lifecycle.request_cancel(op)
    assert reload(op).get_state() is Phase.CANCELLED
    assert published[0][1][0] == "status"  # every region: the end
    execute(op.live_label(), op.pk)
    assert ran == []
    assert reload(op).get_state() is Phase.CANCELLED


def test_a_finished_operation_keeps_its_end(user, published) -> None:
    op = Scripted.objects.create(owner=user)
    execute(op.live_label(), op.pk)
    before = reload(op)
    assert not lifecycle.request_cancel(op)
    after = reload(op)
    assert (after.get_state(), after.cancel_requested, after.version) == (
        Phase.FINISHED_OK,
        False,
        before.version,
    )
    assert published == []


def test_a_run_sees_the_request_and_ends_cancelled(user) -> None:
    op = Endless.objects.create(owner=user)

    def work() -> None:
        try:
            execute(op.live_label(), op.pk)
        finally:
            connections.close_all()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + DEADLINE
    while reload(op).stage_states != {"Work": "active"} and time.monotonic() < deadline:
        time.sleep(0.02)  # polling until run() is inside its stage, under the deadline
    asked = time.monotonic()
    assert lifecycle.request_cancel(op)
    worker.join(DEADLINE)
    assert not worker.is_alive()
    stored = reload(op)
    assert stored.get_state() is Phase.CANCELLED
    assert stored.stage_states == {"Work": "cancelled"}
    # check_cancelled() reads the flag at most every 0.5 s.
    assert stored.finished_on is not None
    assert time.monotonic() - asked < 0.5 + 2.0  # the read interval, plus a loaded machine


# --- the view --------------------------------------------------------------------------------


def live_page(client: Client, op: Any) -> Any:
    response = client.get(op.get_absolute_url())
    assert response.status_code == 200
    return lxml.html.fromstring(response.content)


def cancel_form(page: Any) -> tuple[str, dict[str, str]]:
    (form,) = page.find_class("liveops-cancel")
    fields = {i.get("name"): i.get("value") for i in form.iter("input")}
    return form.get("action"), fields


@pytest.mark.parametrize(
    "csrf_settings",
    [
        {},
        {"CSRF_USE_SESSIONS": True},
        {"CSRF_COOKIE_NAME": "our_csrf", "CSRF_HEADER_NAME": "HTTP_X_OUR_CSRF"},
    ],
    ids=["cookie", "session", "custom-cookie-name"],
)
def test_the_form_cancels_without_javascript(user, settings, published, csrf_settings) -> None:
    for name, value in csrf_settings.items():
        setattr(settings, name, value)
    op = Endless.objects.create(owner=user)
    type(op).objects.filter(pk=op.pk).update(started_on="2026-01-01T00:00:00Z")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    action, fields = cancel_form(live_page(client, op))
    assert client.post(action, {}).status_code == 403  # no token, no cancel
    assert not reload(op).cancel_requested

    response = client.post(action, fields)
    assert response.status_code == 302
    assert response["Location"] == op.get_absolute_url()
    page = live_page(client, op)
    (notice,) = page.find_class("liveops-notice-text")
    assert notice.text_content() == "Cancelling…"  # which hides the button (liveops.css)


def test_the_script_gets_202_then_409_once_it_has_ended(user, published) -> None:
    op = Scripted.objects.create(owner=user)
    client = Client()
    client.force_login(user)
    url = f"{op.get_absolute_url()}cancel/"
    accepted = client.post(url, headers={"Accept": "application/json"})
    assert (accepted.status_code, accepted.json()) == (
        202,
        {"applied": True, "state": "CANCELLED", "attempt": 1},
    )
    late = client.post(url, headers={"Accept": "application/json"})
    assert late.status_code == 409
    assert late.json()["applied"] is False


def test_only_those_who_may_view_can_cancel(user, other_user, published) -> None:
    op = Scripted.objects.create(owner=user)
    url = f"{op.get_absolute_url()}cancel/"
    client = Client()
    assert client.post(url).status_code == 302  # to the login page
    client.force_login(other_user)
    assert client.post(url).status_code == 404  # no hint that it exists
    assert client.get(url).status_code == 405
    assert not reload(op).cancel_requested


def test_a_page_may_name_where_to_go_back_to_but_not_another_site(user, published) -> None:
    op = Scripted.objects.create(owner=user)
    client = Client()
    client.force_login(user)
    url = f"{op.get_absolute_url()}cancel/"
    assert client.post(url, {"next": "/reports/"})["Location"] == "/reports/"
    assert client.post(url, {"next": "https://evil.example/"})["Location"] == (
        op.get_absolute_url()
    )


def test_no_forms_for_who_may_not_act(user, staff_user, monkeypatch, published) -> None:
    op = Scripted.objects.create(owner=user)
    monkeypatch.setattr(Scripted, "can_cancel", lambda self, user: not user.is_staff)
    monkeypatch.setattr(Scripted, "can_retry", lambda self, user: not user.is_staff)
    client = Client()
    client.force_login(user)
    page = live_page(client, op)
    assert len(page.find_class("liveops-cancel") + page.find_class("liveops-retry")) == 2
    client.force_login(staff_user)  # may watch (staff), may not act here
    page = live_page(client, op)
    assert page.find_class("liveops-cancel") + page.find_class("liveops-retry") == []
    assert client.post(f"{op.get_absolute_url()}cancel/").status_code == 403


# --- retry -----------------------------------------------------------------------------------


def test_a_retry_starts_a_new_attempt_from_a_clean_slate(user, published, monkeypatch) -> None:
    op = Scripted.objects.create(owner=user)
    Scripted.SCRIPTS[op.pk] = [lambda p: p.log("first"), lambda p: p.error("disk full")]
    execute(op.live_label(), op.pk)
    failed = reload(op)
    assert failed.get_state() is Phase.FINISHED_ERROR
    restarted: list[int] = []
    monkeypatch.setattr(Scripted, "on_restart", lambda self: restarted.append(self.attempt))
    monkeypatch.setattr(Scripted, "enqueue", lambda self: None)  # run it by hand below

    assert lifecycle.request_retry(op)
    fresh = reload(op)
    assert restarted == [1]
    assert (fresh.attempt, fresh.version) == (2, failed.version + 1)
    assert fresh.get_state() is Phase.NOT_STARTED
    assert (fresh.error_message, fresh.log, fresh.log_seq, fresh.result_context) == (
        "",
        [],
        0,
        None,
    )
    assert published[-1] == (op.pk, ("status", "notice", "progress", "stages", "log", "result"))

    Scripted.SCRIPTS[op.pk] = [lambda p: p.result(rows=3)]
    execute(op.live_label(), op.pk)
    done = reload(op)
    assert (done.get_state(), done.attempt, done.result_context) == (
        Phase.FINISHED_OK,
        2,
        {"rows": 3},
    )


def test_no_retry_before_the_end(user, published) -> None:
    op = Endless.objects.create(owner=user)
    type(op).objects.filter(pk=op.pk).update(started_on="2026-01-01T00:00:00Z")
    assert not lifecycle.request_retry(op)
    assert reload(op).attempt == 1
    client = Client()
    client.force_login(user)
    url = f"{op.get_absolute_url()}retry/"
    assert client.post(url).status_code == 409
    refused = client.post(url, headers={"Accept": "application/json"})
    assert (refused.status_code, refused.json()["applied"]) == (409, False)


def test_the_retry_form_runs_it_again_without_javascript(user, settings) -> None:
    settings.LIVEOPS = {"RUNNER": "eager"}
    op = Scripted.objects.create(owner=user)
    Scripted.SCRIPTS[op.pk] = [lambda p: p.error("first try fails")]
    execute(op.live_label(), op.pk)
    Scripted.SCRIPTS[op.pk] = [lambda p: p.result(rows=1)]
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = live_page(client, op)
    (form,) = page.find_class("liveops-retry")
    fields = {i.get("name"): i.get("value") for i in form.iter("input")}
    response = client.post(form.get("action"), fields)
    assert (response.status_code, response["Location"]) == (302, op.get_absolute_url())
    done = reload(op)  # the eager runner ran the new attempt when the retry committed
    assert (done.get_state(), done.attempt) == (Phase.FINISHED_OK, 2)
