"""A django-liveops 0.4 project's templates and views on this package.

Its result and host templates are found under 0.4's names and get 0.4's context names,
its filters and tag exist, its host page goes live from a plain ``<script>`` tag, and its
view names still work, with a warning that names what to use now.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.urls import include, path
from django.utils import timezone

from liveops._fragments import (
    render_regions,
    result_template_names,
    snake_class_name,
)
from liveops._state import Phase, StateView
from liveops._updates import frame
from liveops.views import CreateLiveOperationView, LiveOperationListView, RestartView
from tests.testapp.models import CountedRun, Gated, NarratedUnstored, Scripted

STATIC = Path(__file__).resolve().parent.parent / "src" / "liveops" / "static" / "liveops"
HOSTILE = '<script>alert("x")</script>'

# --- a 0.4 project's views (this module is also the URLconf) ----------------------------

with warnings.catch_warnings(record=True) as DEFINED:
    warnings.simplefilter("always")

    class StartScripted(CreateLiveOperationView):
        model = Scripted
        fields: list[str] = []

    class GatedList(LiveOperationListView):
        model = Gated

    restart = RestartView.as_view()


class NotAnOperationList(LiveOperationListView):
    model = CountedRun  # a model, but not a LiveOperation


urlpatterns = [
    path("operations/", include("liveops.urls")),
    path("start/", StartScripted.as_view()),
    path("gated/", GatedList.as_view()),
    path("unlisted/", LiveOperationListView.as_view()),
    path("restart/<str:label>/<uuid:pk>/", restart),
]


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def use_templates(settings: Any, templates: dict[str, str]) -> None:
    """Put ``templates`` first, in memory, before the apps' own template folders."""
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": False,
            "OPTIONS": {
                "context_processors": ["django.template.context_processors.request"],
                "loaders": [
                    ("django.template.loaders.locmem.Loader", templates),
                    "django.template.loaders.app_directories.Loader",
                ],
            },
        }
    ]


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def finished(owner: Any, **fields: Any) -> Scripted:
    now = timezone.now()
    defaults: dict[str, Any] = {"started_on": now, "finished_on": now, "version": 3}
    return Scripted.objects.create(owner=owner, **{**defaults, **fields})


def result_region(op: Any, view: StateView) -> lxml.html.HtmlElement:
    return lxml.html.fragment_fromstring(render_regions(op, view, ["result"]))


def words(element: lxml.html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def render(source: str, **context: Any) -> str:
    return Template("{% load liveops %}" + source).render(Context(context))


# --- 0.4's names of a model ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("class_name", "snake"),
    [
        ("ImportPunktacji", "import_punktacji"),
        ("ImportPBN2", "import_pbn2"),
        ("ABCTest", "abc_test"),
        ("DemoOp", "demo_op"),
        ("CSVToJSONExport", "csv_to_json_export"),
        ("Import2PBN", "import2_pbn"),
        ("X", "x"),
    ],
)
def test_a_class_name_in_snake_case_splits_words_and_acronyms(class_name: str, snake: str) -> None:
    assert snake_class_name(type(class_name, (), {})) == snake  # type: ignore[arg-type]


def test_the_0_4_result_template_is_looked_up_after_ours() -> None:
    op = NarratedUnstored(owner_id=1)
    assert result_template_names(op) == [
        "testapp/narratedunstored_result.html",
        "testapp/narrated_unstored_result.html",
    ]
    # A one-word class has one name for both.
    assert result_template_names(Scripted(owner_id=1)) == ["testapp/scripted_result.html"]


def test_result_template_name_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NarratedUnstored, "result_template_name", "mine/result.html")
    assert result_template_names(NarratedUnstored(owner_id=1))[0] == "mine/result.html"


# --- result templates ------------------------------------------------------------------------

LEGACY_RESULT = {
    "testapp/narrated_unstored_result.html": (
        "<p>0.4: {{ imported }} rows of {{ operation.pk }}, op {{ op.pk }}</p>"
    )
}


def test_a_0_4_result_template_shows_a_success_with_operation_and_the_keys(settings: Any) -> None:
    use_templates(settings, LEGACY_RESULT)
    op = NarratedUnstored(owner_id=1)
    view = StateView(version=2, phase=Phase.FINISHED_OK, result_context={"imported": 12})
    region = result_region(op, view)
    assert words(region) == f"0.4: 12 rows of {op.pk}, op {op.pk}"
    assert region.get("id") == f"liveop-{op.pk}-result"  # still our region element
    assert region.get("data-liveop-v") == "2"


def test_our_result_template_wins_over_the_0_4_one(settings: Any) -> None:
    use_templates(
        settings, {**LEGACY_RESULT, "testapp/narratedunstored_result.html": "<p>ours</p>"}
    )
    view = StateView(phase=Phase.FINISHED_OK, result_context={"imported": 12})
    assert words(result_region(NarratedUnstored(owner_id=1), view)) == "ours"


@pytest.mark.parametrize("phase", [Phase.STARTED, Phase.FINISHED_ERROR, Phase.CANCELLED])
def test_a_0_4_result_template_shows_a_success_only(settings: Any, phase: Phase) -> None:
    use_templates(settings, LEGACY_RESULT)
    view = StateView(phase=phase, result_context={"imported": 12})
    assert "0.4:" not in words(result_region(NarratedUnstored(owner_id=1), view))


def test_a_result_key_named_operation_is_kept_as_0_4_did(settings: Any) -> None:
    use_templates(settings, LEGACY_RESULT)
    op = NarratedUnstored(owner_id=1)
    view = StateView(phase=Phase.FINISHED_OK, result_context={"imported": 1, "operation": "x"})
    # {{ operation.pk }} of a string is empty; our own names still win their clashes.
    assert words(result_region(op, view)) == f"0.4: 1 rows of , op {op.pk}"


# --- the filters -------------------------------------------------------------------------


def test_pairs_lists_a_dict_even_one_with_an_items_key() -> None:
    source = "{% for k, v in d|pairs %}[{{ k }}={{ v }}]{% endfor %}"
    assert render(source, d={"items": 3, "b": 4}) == "[items=3][b=4]"
    for not_a_dict in (None, "ab", [("a", 1)], 5):
        assert render(source, d=not_a_dict) == ""


def test_get_item_looks_up_a_key_held_in_a_variable() -> None:
    source = "[{{ d|get_item:k }}]"
    assert render(source, d={"a": 1, "b": 2}, k="b") == "[2]"
    assert render(source, d={"a": 1}, k="missing") == "[]"
    assert render(source, d=["a"], k=0) == "[]"
    assert render(source, d=None, k="a") == "[]"


def test_the_filters_escape_what_they_return() -> None:
    hostile = {HOSTILE: HOSTILE}
    listed = render("{% for k, v in d|pairs %}{{ k }}{{ v }}{% endfor %}", d=hostile)
    picked = render("{{ d|get_item:k }}", d=hostile, k=HOSTILE)
    for html in (listed, picked):
        assert "<script>" not in html
        assert "&lt;script&gt;" in html


# --- {% render_op_result %} ----------------------------------------------------------------


@pytest.mark.django_db
def test_render_op_result_renders_the_result_template_and_warns(user, monkeypatch) -> None:
    monkeypatch.setattr(Scripted, "result_template_name", "upgrade04/result.html")
    op = finished(
        user,
        finished_successfully=True,
        result_context={"imported": 3, "rows": {"a": 1, "b": HOSTILE}, "wanted": "b"},
    )
    with pytest.deprecated_call(match=r"render_op_result %\} is deprecated; use \{% live_op"):
        html = render("{% render_op_result op %}", op=op)
    doc = lxml.html.fragment_fromstring(html, create_parent="div")
    assert words(doc.find_class("summary")[0]) == f"{op.pk}: 3 imported"
    assert [words(li) for li in doc.iter("li")] == ["a=1", f"b={HOSTILE}"]
    assert words(doc.find_class("picked")[0]) == HOSTILE
    assert "<script>" not in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {"finished_on": None, "started_on": None},
        {"finished_on": None},
        {"finished_successfully": False, "error_message": "boom"},
        {"cancelled": True},
    ],
)
def test_render_op_result_is_empty_unless_the_operation_succeeded(user, fields) -> None:
    op = finished(user, **{"finished_successfully": True, "result_context": {"n": 3}, **fields})
    with pytest.deprecated_call():
        assert render("[{% render_op_result op %}]", op=op) == "[]"


@pytest.mark.django_db
def test_render_op_result_without_a_template_lists_the_result_escaped(user) -> None:
    op = finished(
        user, finished_successfully=True, result_context={"imported": 3, HOSTILE: HOSTILE}
    )
    with pytest.deprecated_call():
        html = render("{% render_op_result op %}", op=op)
    escaped = HOSTILE.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    assert html == f"imported=3<br>{escaped}={escaped}"


def test_render_op_result_takes_an_operation() -> None:
    with pytest.deprecated_call(), pytest.raises(TypeError, match="takes a LiveOperation"):
        render("{% render_op_result op %}", op="not one")


# --- host templates ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_0_4_host_template_by_attribute_gets_object_and_base_template(
    user, monkeypatch, settings
) -> None:
    use_templates(settings, {"base.html": "{% block content %}{% endblock %}"})
    monkeypatch.setattr(Scripted, "host_template_name", "upgrade04/host.html", raising=False)
    op = finished(user, finished_successfully=True, result_context={"imported": 3})
    response = logged_in(user).get(op.get_absolute_url())
    assert response.status_code == 200
    assert [t.name for t in response.templates][:2] == ["upgrade04/host.html", "base.html"]
    assert response.context["base_template"] == "base.html"
    assert response.context["object"] == op
    assert response.context["operation"] == op
    assert response.context["scripted"] == op  # Django's name, 0.4's page had it too


@pytest.mark.django_db
def test_base_template_comes_from_the_0_4_setting(user, monkeypatch, settings) -> None:
    settings.LIVEOPS = {**settings.LIVEOPS, "BASE_TEMPLATE": "upgrade04/base.html"}
    monkeypatch.setattr(Scripted, "host_template_name", "upgrade04/host.html", raising=False)
    op = finished(user, finished_successfully=True)
    response = logged_in(user).get(op.get_absolute_url())
    assert response.status_code == 200
    assert response.context["base_template"] == "upgrade04/base.html"
    doc = lxml.html.document_fromstring(response.content.decode())
    assert doc.get_element_by_id("site-nav").text == "My site"  # the site's own page


@pytest.mark.django_db
def test_the_0_4_host_page_holds_the_live_container_and_its_script(user, monkeypatch, settings):
    settings.LIVEOPS = {**settings.LIVEOPS, "BASE_TEMPLATE": "upgrade04/base.html"}
    monkeypatch.setattr(Scripted, "host_template_name", "upgrade04/host.html", raising=False)
    op = Scripted.objects.create(owner=user)
    doc = lxml.html.document_fromstring(logged_in(user).get(op.get_absolute_url()).content)
    container = doc.get_element_by_id(f"liveop-{op.pk}")
    assert container.get("data-liveop") == op.live_token
    assert container.get("data-liveop-ws") == "/ws/liveops/"
    assert [s.get("src") for s in doc.iter("script")] == ["/static/liveops/liveops.js"]
    assert [link.get("href") for link in doc.iter("link")] == ["/static/liveops/liveops.css"]


@pytest.mark.django_db
def test_a_0_4_host_page_with_render_op_result_answers(user, monkeypatch, settings) -> None:
    settings.LIVEOPS = {**settings.LIVEOPS, "BASE_TEMPLATE": "upgrade04/base.html"}
    monkeypatch.setattr(Scripted, "host_template_name", "upgrade04/host_with_result.html", False)
    monkeypatch.setattr(Scripted, "result_template_name", "upgrade04/result.html")
    op = finished(
        user,
        finished_successfully=True,
        result_context={"imported": 7, "rows": {"z": 26}, "wanted": "z"},
    )
    with pytest.deprecated_call():
        response = logged_in(user).get(op.get_absolute_url())
    assert response.status_code == 200
    doc = lxml.html.document_fromstring(response.content.decode())
    legacy = doc.get_element_by_id("legacy-result")
    assert words(legacy.find_class("summary")[0]) == f"{op.pk}: 7 imported"
    # ...and the live container's result region shows the same template.
    region = doc.get_element_by_id(f"liveop-{op.pk}-result")
    assert [words(li) for li in region.iter("li")] == ["z=26"]


LEGACY_HOST = {
    "base.html": "{% block content %}{% endblock %}",
    "testapp/narrated_unstored.html": (
        "{% extends base_template %}{% block content %}0.4 host of {{ object.pk }}{% endblock %}"
    ),
}


@pytest.mark.django_db
def test_the_0_4_host_template_name_is_found(user, settings) -> None:
    use_templates(settings, LEGACY_HOST)
    op = NarratedUnstored.objects.create(owner=user)
    assert logged_in(user).get(op.get_absolute_url()).content.decode() == f"0.4 host of {op.pk}"


@pytest.mark.django_db
def test_our_host_template_name_comes_before_the_0_4_one(user, settings) -> None:
    use_templates(settings, {**LEGACY_HOST, "testapp/narratedunstored_detail.html": "ours"})
    op = NarratedUnstored.objects.create(owner=user)
    assert logged_in(user).get(op.get_absolute_url()).content.decode() == "ours"


@pytest.mark.django_db
def test_without_a_host_template_the_package_page_is_used(user) -> None:
    op = NarratedUnstored.objects.create(owner=user)
    response = logged_in(user).get(op.get_absolute_url())
    assert response.status_code == 200
    assert response.templates[0].name == "liveops/operation_detail.html"


# --- the view names of 0.4 ---------------------------------------------------------------


def test_defining_or_routing_the_0_4_views_warns_with_the_new_names() -> None:
    messages = [str(w.message) for w in DEFINED if w.category is DeprecationWarning]
    assert messages == [
        "liveops.views.CreateLiveOperationView is deprecated; use LoginRequiredMixin, "
        "liveops.views.LiveOperationCreateMixin and django.views.generic.CreateView, "
        "in that order.",
        "liveops.views.RestartView is deprecated; use liveops.views.RetryView.",
    ]
    assert [w.filename for w in DEFINED] == [__file__, __file__]
    with pytest.deprecated_call(match="CreateLiveOperationView is deprecated"):
        CreateLiveOperationView.as_view(model=Scripted, fields=[])
    with pytest.deprecated_call(match="RestartView is deprecated; use liveops.views.RetryView"):

        class MyRestart(RestartView):
            pass


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_create_live_operation_view_saves_runs_and_redirects(
    user, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(user).post("/start/", {})
    (op,) = Scripted.objects.all()
    assert op.owner == user
    assert op.get_state() is Phase.FINISHED_OK  # the eager runner ran it
    assert response.status_code == 302
    assert response["Location"] == op.get_absolute_url()


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_create_live_operation_view_is_for_logged_in_users() -> None:
    response = Client().post("/start/", {})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not Scripted.objects.exists()


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_restart_view_starts_a_new_attempt(user, django_capture_on_commit_callbacks) -> None:
    op = finished(user, finished_successfully=False, error_message="boom")
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(user).post(f"/restart/{op.live_label()}/{op.pk}/")
    assert response.status_code == 302
    op.refresh_from_db()
    assert op.attempt == 2
    assert op.get_state() is Phase.FINISHED_OK


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_list_view_subclass_for_one_model_lists_that_model(user, other_user) -> None:
    older = Gated.objects.create(owner=user, label="older")
    newer = Gated.objects.create(owner=user, label="newer")
    Gated.objects.create(owner=other_user, label="not mine")
    Scripted.objects.create(owner=user)
    response = logged_in(user).get("/gated/")
    assert response.status_code == 200
    assert list(response.context["operations"]) == [newer, older]
    assert response.context["base_template"] == "base.html"
    assert response.context["title"] == "Gateds"


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_list_view_without_a_type_says_what_it_needs(user) -> None:
    with pytest.raises(ImproperlyConfigured, match="a <label> in its URL pattern"):
        logged_in(user).get("/unlisted/")
    view = NotAnOperationList()
    view.setup(RequestFactory().get("/"))
    with pytest.raises(ImproperlyConfigured, match="CountedRun, which is not a LiveOperation"):
        view.get_queryset()


# --- a 0.4 host page in a browser ------------------------------------------------------------

ORIGIN = "http://liveops.test"


@pytest.mark.browser
@pytest.mark.django_db
def test_a_0_4_host_page_goes_live_from_its_plain_script_tag(
    user, monkeypatch, settings, browser
) -> None:
    """No {% liveops_scripts %}, no htmx: the script tag of 0.4's host template suffices."""
    settings.LIVEOPS = {**settings.LIVEOPS, "BASE_TEMPLATE": "upgrade04/base.html"}
    monkeypatch.setattr(Scripted, "host_template_name", "upgrade04/host.html", raising=False)
    op = Scripted.objects.create(owner=user)
    page_html = logged_in(user).get(op.get_absolute_url()).content.decode()
    newer = StateView(version=5, phase=Phase.STARTED, status_text="Halfway there")
    sockets: list[str] = []

    def answer(ws: Any) -> None:
        sockets.append(ws.url)
        ws.send(frame(render_regions(op, newer, ["status"])))

    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.route(
            f"{ORIGIN}/page/", lambda route: route.fulfill(body=page_html, content_type="text/html")
        )
        page.route(
            re.compile(r".*/static/liveops/liveops\.(js|css)$"),
            lambda route: route.fulfill(path=STATIC / route.request.url.rsplit("/", 1)[1]),
        )
        page.route_web_socket(re.compile(r"^ws://liveops\.test/"), answer)
        page.goto(f"{ORIGIN}/page/")
        status = page.locator(f"#liveop-{op.pk}-status")
        status.filter(has_text="Halfway there").wait_for()
        connection = page.locator(f"#liveop-{op.pk}-connection")
        connection.filter(has_text="Live").wait_for()
        assert page.evaluate("typeof window.htmx") == "undefined"
    finally:
        context.close()
    assert len(sockets) == 1
    assert sockets[0].startswith(f"{ORIGIN.replace('http', 'ws')}/ws/liveops/?op=")
