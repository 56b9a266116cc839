"""``LiveOperationView`` (the live page) and ``LiveOperationCreateMixin`` (start, then watch)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import lxml.html
import pytest
from django.conf import settings as django_settings
from django.db import connection, connections, transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path
from django.utils import timezone
from django.views.generic import CreateView

from liveops._state import ALL_REGIONS, Phase
from liveops.runners.eager import EagerRunner
from liveops.views import LiveOperationCreateMixin
from tests.testapp.models import Gated, Scripted

# --- a small project using the mixin (this module is also the URLconf) -------------------

#: What the view saw when form_valid() began: whether a transaction was open.
SEEN: list[bool] = []


class StartScripted(LiveOperationCreateMixin, CreateView):
    model = Scripted
    fields: list[str] = []

    def form_valid(self, form: Any) -> HttpResponse:
        SEEN.append(connection.in_atomic_block)
        return super().form_valid(form)


class StartThenFail(StartScripted):
    def form_valid(self, form: Any) -> HttpResponse:
        super().form_valid(form)
        raise RuntimeError("the view failed after saving")


class StartGated(LiveOperationCreateMixin, CreateView):
    """A view with fields and no template of its own: the package's form page shows it."""

    model = Gated
    fields = ["label"]


urlpatterns = [
    path("operations/", include("liveops.urls")),
    path("start/", StartScripted.as_view(), name="start"),
    path("start-gated/", StartGated.as_view(), name="start-gated"),
    path("start-then-fail/", StartThenFail.as_view(), name="start-then-fail"),
]


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings: Any) -> None:
    """Create the user fixtures in milliseconds (autouse fixtures are set up first)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clean() -> Any:
    SEEN.clear()
    yield
    SEEN.clear()
    Scripted.SCRIPTS.clear()


def page_url(label: str, pk: object) -> str:
    return f"/operations/{label}/{pk}/"


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def finished_op(owner: Any) -> Scripted:
    return Scripted.objects.create(
        owner=owner,
        started_on=timezone.now(),
        finished_on=timezone.now(),
        finished_successfully=True,
        result_context={"imported": 12},
        version=9,
    )


# --- LiveOperationView -------------------------------------------------------------------


@pytest.mark.django_db
def test_owner_sees_the_live_page_with_the_current_state(user):
    op = finished_op(user)
    response = logged_in(user).get(op.get_absolute_url())
    assert op.get_absolute_url() == page_url("testapp.scripted", op.pk)
    assert response.status_code == 200
    doc = lxml.html.document_fromstring(response.content.decode())

    (container,) = doc.xpath("//section[@id=$id]", id=f"liveop-{op.pk}")
    assert container.get("data-liveop") == f"testapp.scripted:{op.pk}"
    assert container.get("data-liveop-ws") == "/ws/liveops/"
    for region in ALL_REGIONS:
        (element,) = container.xpath(".//*[@id=$id]", id=f"liveop-{op.pk}-{region}")
        assert element.get("data-liveop-state") == Phase.FINISHED_OK.value
        assert element.get("data-liveop-terminal") is not None
        assert element.get("data-liveop-v") == "9"
    (status,) = container.xpath(".//*[@id=$id]", id=f"liveop-{op.pk}-status")
    assert status.text_content().strip().startswith("Finished")
    (result,) = container.xpath(".//*[@id=$id]", id=f"liveop-{op.pk}-result")
    assert [dt.text for dt in result.iter("dt")] == ["imported"]
    assert [dd.text for dd in result.iter("dd")] == ["12"]
    assert len(container.xpath(".//*[@id=$id]", id=f"liveop-{op.pk}-connection")) == 1

    scripts = [s.get("src") for s in doc.iter("script")]
    assert "/static/liveops/liveops.js" in scripts
    assert "/static/liveops/liveops.css" in [link.get("href") for link in doc.iter("link")]


@pytest.mark.django_db
def test_owner_sees_a_not_started_operation_as_waiting(user):
    op = Scripted.objects.create(owner=user)
    response = logged_in(user).get(op.get_absolute_url())
    assert response.status_code == 200
    doc = lxml.html.document_fromstring(response.content.decode())
    (status,) = doc.xpath("//*[@id=$id]", id=f"liveop-{op.pk}-status")
    assert status.get("data-liveop-state") == Phase.NOT_STARTED.value
    assert status.get("data-liveop-terminal") is None
    assert status.text_content().strip() == "Waiting to start"


@pytest.mark.django_db
def test_another_user_gets_404(user, other_user):
    op = Scripted.objects.create(owner=user)
    assert logged_in(other_user).get(op.get_absolute_url()).status_code == 404


@pytest.mark.django_db
def test_anonymous_is_redirected_to_login(user):
    op = Scripted.objects.create(owner=user)
    response = Client().get(op.get_absolute_url())
    assert response.status_code == 302
    assert response["Location"] == (
        f"{django_settings.LOGIN_URL}?next={page_url('testapp.scripted', op.pk)}"
    )


@pytest.mark.django_db
def test_staff_get_200(user, staff_user):
    op = Scripted.objects.create(
        owner=user,
        started_on=timezone.now(),
        finished_on=timezone.now(),
        traceback="Traceback (most recent call last):\nValueError: staff only",
    )
    response = logged_in(staff_user).get(op.get_absolute_url())
    assert response.status_code == 200
    assert "ValueError: staff only" in response.content.decode()
    # ...and the owner, who is not staff, does not see the traceback.
    assert (
        "ValueError: staff only" not in logged_in(user).get(op.get_absolute_url()).content.decode()
    )


@pytest.mark.django_db
@pytest.mark.parametrize("label", ["testapp.nosuchmodel", "auth.user", "liveops.liveoperation"])
def test_unknown_or_non_operation_label_gets_404(user, label):
    op = Scripted.objects.create(owner=user)
    assert logged_in(user).get(page_url(label, op.pk)).status_code == 404


@pytest.mark.django_db
def test_unknown_pk_gets_404(user):
    assert logged_in(user).get(page_url("testapp.scripted", uuid.uuid4())).status_code == 404


@pytest.mark.django_db
def test_can_view_override_is_honoured(user, other_user, monkeypatch):
    op = Scripted.objects.create(owner=user)
    monkeypatch.setattr(Scripted, "can_view", lambda self, u: u.pk == other_user.pk)
    assert logged_in(other_user).get(op.get_absolute_url()).status_code == 200
    assert logged_in(user).get(op.get_absolute_url()).status_code == 404


# --- LiveOperationCreateMixin ------------------------------------------------------------


@pytest.fixture
def runner_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Spy on the eager runner: record the transaction state and row visibility at enqueue."""
    calls: list[dict[str, Any]] = []
    original = EagerRunner.enqueue

    def enqueue(self: EagerRunner, label: str, pk: object) -> None:
        visible: list[bool] = []

        def look() -> None:  # another connection sees only committed rows
            try:
                visible.append(Scripted.objects.filter(pk=pk).exists())
            finally:
                connections.close_all()

        thread = threading.Thread(target=look)
        thread.start()
        thread.join(10)
        calls.append(
            {
                "label": label,
                "pk": pk,
                "in_atomic_block": connection.in_atomic_block,
                "visible_elsewhere": visible,
            }
        )
        original(self, label, pk)

    monkeypatch.setattr(EagerRunner, "enqueue", enqueue)
    return calls


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn ATOMIC_REQUESTS on for this test only (the dict Django reads, restored after)."""
    monkeypatch.setitem(connections["default"].settings_dict, "ATOMIC_REQUESTS", True)


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.test_views")
def test_create_sets_owner_and_language_runs_after_commit_and_redirects(
    user, runner_calls, atomic_requests
):
    response = logged_in(user).post("/start/", {})

    (op,) = Scripted.objects.all()
    assert op.owner_id == user.pk
    assert op.language == "en"
    assert SEEN == [True]  # ATOMIC_REQUESTS really wrapped the view
    assert runner_calls == [
        {
            "label": "testapp.scripted",
            "pk": op.pk,
            "in_atomic_block": False,
            "visible_elsewhere": [True],
        }
    ]
    # RUNNER is eager: the operation ran before the response came back.
    assert op.get_state() is Phase.FINISHED_OK
    assert response.status_code == 302
    assert response["Location"] == page_url("testapp.scripted", op.pk)


@pytest.mark.django_db
@pytest.mark.urls("tests.test_views")
def test_a_create_view_without_a_template_shows_the_package_form_page(user: Any) -> None:
    response = logged_in(user).get("/start-gated/")
    assert response.status_code == 200
    assert [t.name for t in response.templates][:2] == [
        "liveops/operation_form.html",
        "liveops/base.html",
    ]
    page = lxml.html.fromstring(response.content)
    assert page.findtext(".//h1") == "Gated"
    (form,) = page.xpath("//form[@method='post']")
    assert form.xpath(".//input[@name='csrfmiddlewaretoken']")
    assert form.xpath(".//label[@for='id_label']/text()") == ["Label:"]
    assert form.xpath(".//button[@type='submit']/text()") == ["Start"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.test_views")
def test_create_without_atomic_requests_runs_after_its_own_commit(user, runner_calls):
    response = logged_in(user).post("/start/", {})
    (op,) = Scripted.objects.all()
    assert SEEN == [False]
    assert [(c["in_atomic_block"], c["visible_elsewhere"]) for c in runner_calls] == [
        (False, [True])
    ]
    assert op.get_state() is Phase.FINISHED_OK
    assert response["Location"] == op.get_absolute_url()


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.test_views")
def test_create_sets_the_request_language(user, runner_calls, settings):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:1],
        "django.middleware.locale.LocaleMiddleware",
        *settings.MIDDLEWARE[1:],
    ]
    logged_in(user).post("/start/", {}, headers={"accept-language": "fr"})
    (op,) = Scripted.objects.all()
    assert op.language == "fr"


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.test_views")
def test_nothing_runs_when_the_request_transaction_rolls_back(user, runner_calls, atomic_requests):
    with pytest.raises(RuntimeError, match="after saving"):
        logged_in(user).post("/start-then-fail/", {})
    assert SEEN == [True]
    assert not Scripted.objects.exists()
    assert runner_calls == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.test_views")
def test_nothing_runs_when_the_callers_transaction_is_marked_for_rollback(
    user, runner_calls, atomic_requests, monkeypatch
):
    original = StartScripted.form_valid

    def form_valid(self: StartScripted, form: Any) -> HttpResponse:
        response = original(self, form)
        transaction.set_rollback(True)
        return response

    monkeypatch.setattr(StartScripted, "form_valid", form_valid)
    response = logged_in(user).post("/start/", {})
    assert response.status_code == 302
    assert not Scripted.objects.exists()
    assert runner_calls == []
