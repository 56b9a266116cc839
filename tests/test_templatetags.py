"""``{% live_operation %}`` and ``{% liveops_scripts %}``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import django
import lxml.html
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.template import Context, Template
from django.template.context import RequestContext
from django.test import RequestFactory
from django.utils import timezone

import liveops
from liveops._state import ALL_REGIONS, Phase
from tests.testapp.models import Scripted

STATIC_ROOT_OF_PACKAGE = Path(liveops.__file__).resolve().parent / "static"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings: Any) -> None:
    """Create the user fixtures in milliseconds (autouse fixtures are set up first)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def render(source: str, request: Any = None, **context: Any) -> str:
    return Template("{% load liveops %}" + source).render(Context({"request": request, **context}))


def a_request(user: Any = None) -> Any:
    request = RequestFactory().get("/somewhere/")
    request.user = user if user is not None else AnonymousUser()
    return request


def failed_op(owner: Any) -> Scripted:
    now = timezone.now()
    return Scripted.objects.create(
        owner=owner,
        started_on=now,
        finished_on=now,
        error_message="Row 7 is broken.",
        traceback="Traceback (most recent call last):\nValueError: staff only",
        stage_states={"Prepare": "done", "Work": "failed"},
        log=[[1, "row 1 ok"], [2, "row 7 <broken>"]],
        log_seq=2,
        version=4,
        attempt=2,
    )


# --- {% live_operation %} ----------------------------------------------------------------


@pytest.mark.django_db
def test_live_operation_renders_the_container_with_every_region_current(user):
    op = failed_op(user)
    html = render("{% live_operation op %}", a_request(user), op=op)
    (container,) = lxml.html.fragments_fromstring(html)

    assert container.tag == "section"
    assert container.get("id") == f"liveop-{op.pk}"
    assert container.get("data-liveop") == f"testapp.scripted:{op.pk}"
    assert container.get("data-liveop-ws") == "/ws/liveops/"
    (connection,) = container.xpath(".//*[@id=$id]", id=f"liveop-{op.pk}-connection")
    assert connection.get("role") == "status"
    assert connection.text_content() == ""
    for region in ALL_REGIONS:
        (element,) = container.xpath(".//*[@id=$id]", id=f"liveop-{op.pk}-{region}")
        assert element.get("hx-swap-oob") == "true"
        assert element.get("data-liveop-state") == Phase.FINISHED_ERROR.value
        assert element.get("data-liveop-terminal") is not None
        assert element.get("data-liveop-v") == "4"
        assert element.get("data-liveop-attempt") == "2"

    def region(name: str) -> Any:
        (element,) = container.xpath(".//*[@id=$id]", id=f"liveop-{op.pk}-{name}")
        return element

    assert region("status").text_content().strip() == "Failed"
    assert [li.get("class") for li in region("stages").iter("li")] == [
        "liveops-stage liveops-stage--done",
        "liveops-stage liveops-stage--failed",
    ]
    assert [(li.get("id"), li.text) for li in region("log").iter("li")] == [
        (f"liveop-{op.pk}-log-1", "row 1 ok"),
        (f"liveop-{op.pk}-log-2", "row 7 <broken>"),
    ]
    assert "Row 7 is broken." in region("result").text_content()
    assert region("result").find(".//details") is None  # the owner is not staff


@pytest.mark.django_db
def test_live_operation_shows_the_traceback_to_staff(user, staff_user):
    op = failed_op(user)
    html = render("{% live_operation op %}", a_request(staff_user), op=op)
    (container,) = lxml.html.fragments_fromstring(html)
    (details,) = container.xpath(".//*[@id=$id]//details", id=f"liveop-{op.pk}-result")
    assert "ValueError: staff only" in details.text_content()


def test_live_operation_of_a_new_operation_waits_to_start():
    op = Scripted()  # no database needed: the tag renders the fields it is given
    (container,) = lxml.html.fragments_fromstring(render("{% live_operation op %}", op=op))
    (status,) = container.xpath(".//*[@id=$id]", id=f"liveop-{op.pk}-status")
    assert status.get("data-liveop-state") == Phase.NOT_STARTED.value
    assert status.get("data-liveop-terminal") is None
    assert status.text_content().strip() == "Waiting to start"


def test_live_operation_uses_the_script_prefix(settings):
    from django.urls import set_script_prefix

    set_script_prefix("/app/")
    try:
        html = render("{% live_operation op %}", op=Scripted())
    finally:
        set_script_prefix("/")
    (container,) = lxml.html.fragments_fromstring(html)
    assert container.get("data-liveop-ws") == "/app/ws/liveops/"


@pytest.mark.parametrize("value", ["not an op", None, 42, object()])
def test_live_operation_rejects_a_non_operation(value):
    with pytest.raises(TypeError, match="takes a LiveOperation"):
        render("{% live_operation op %}", op=value)


# --- {% liveops_scripts %} ---------------------------------------------------------------


def _tags(html: str) -> list[Any]:
    return [el for el in lxml.html.fragments_fromstring(html) if not isinstance(el, str)]


def test_liveops_scripts_renders_the_stylesheet_and_the_script():
    tags = _tags(render("{% liveops_scripts %}", a_request()))
    assert [(t.tag, t.get("href") or t.get("src")) for t in tags] == [
        ("link", "/static/liveops/liveops.css"),
        ("script", "/static/liveops/liveops.js"),
    ]
    assert tags[0].get("rel") == "stylesheet"
    assert tags[1].get("defer") is not None
    assert tags[1].get("nonce") is None
    for tag in tags:
        relative = (tag.get("href") or tag.get("src")).removeprefix(django_settings.STATIC_URL)
        assert (STATIC_ROOT_OF_PACKAGE / relative).is_file()


def test_liveops_scripts_with_htmx_includes_the_vendored_file_that_exists():
    tags = _tags(render("{% liveops_scripts htmx=True %}", a_request()))
    sources = [t.get("src") for t in tags if t.tag == "script"]
    assert len(sources) == 2
    htmx, ours = sources
    assert ours == "/static/liveops/liveops.js"
    (vendored,) = (STATIC_ROOT_OF_PACKAGE / "liveops" / "vendor").glob("htmx-*.min.js")
    assert re.fullmatch(r"/static/liveops/vendor/htmx-\d+\.\d+\.\d+[^/]*\.min\.js", htmx)
    assert htmx == f"/static/liveops/vendor/{vendored.name}"
    relative = htmx.removeprefix(django_settings.STATIC_URL)
    assert (STATIC_ROOT_OF_PACKAGE / relative).is_file()
    assert finders.find(relative) == str(STATIC_ROOT_OF_PACKAGE / relative)


def test_liveops_scripts_without_htmx_has_no_htmx():
    assert "htmx" not in render("{% liveops_scripts htmx=False %}", a_request())


def test_liveops_scripts_adds_the_request_nonce():
    request = a_request()
    request.csp_nonce = "n0nce-abc"
    tags = _tags(render("{% liveops_scripts htmx=True %}", request))
    scripts = [t for t in tags if t.tag == "script"]
    assert len(scripts) == 2
    assert [s.get("nonce") for s in scripts] == ["n0nce-abc", "n0nce-abc"]


def test_liveops_scripts_escapes_the_nonce():
    request = a_request()
    request.csp_nonce = '"><script>alert(1)</script>'
    html = render("{% liveops_scripts %}", request)
    assert "<script>alert(1)" not in html
    (script,) = [t for t in _tags(html) if t.tag == "script"]
    assert script.get("nonce") == '"><script>alert(1)</script>'


def test_liveops_scripts_without_a_request_has_no_nonce():
    html = render("{% liveops_scripts %}")
    assert "nonce" not in html


@pytest.mark.skipif(django.VERSION < (6, 0), reason="Django's own CSP support came in 6.0")
def test_liveops_scripts_uses_the_nonce_of_djangos_own_csp(settings):
    """Django >= 6.0 ships CSP: its nonce is ``csp_nonce`` in the context, lazily made."""
    from django.middleware.csp import ContentSecurityPolicyMiddleware
    from django.template.context_processors import csp
    from django.utils.csp import CSP

    settings.SECURE_CSP = {"script-src": [CSP.NONCE]}
    request = a_request()
    middleware = ContentSecurityPolicyMiddleware(lambda r: HttpResponse())
    middleware.process_request(request)
    html = Template("{% load liveops %}{% liveops_scripts htmx=True %}").render(
        RequestContext(request, {}, processors=[csp])
    )
    response = middleware.process_response(request, HttpResponse(html))

    scripts = [t for t in _tags(html) if t.tag == "script"]
    nonces = {s.get("nonce") for s in scripts}
    assert len(scripts) == 2
    assert None not in nonces
    assert len(nonces) == 1
    assert f"'nonce-{nonces.pop()}'" in response["Content-Security-Policy"]


# --- the developer's notices (DEBUG) and the WSGI warning ----------------------------------


def notices_of(html: str) -> dict[str, str]:
    """Return the developer's notices in ``html`` by their marker attribute."""
    found = {}
    for fragment in lxml.html.fragments_fromstring(html):
        for el in fragment.xpath("descendant-or-self::*[@class='liveops-dev-notice']"):
            (marker,) = [a for a in el.attrib if a.startswith("data-liveop-")]
            found[marker] = el.text_content()
    return found


@pytest.fixture
def wsgi_warned(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The once-per-process flag of the WSGI warning, not set yet."""
    import threading

    from liveops.templatetags import liveops as tags

    flag = threading.Event()
    monkeypatch.setattr(tags, "_wsgi_warned", flag)
    return flag


@pytest.mark.django_db
def test_in_debug_a_container_says_when_its_script_has_not_run_and_when_served_over_wsgi(
    settings: Any, wsgi_warned: Any
) -> None:
    settings.DEBUG = True
    html = render("{% live_operation op %}", a_request(), op=Scripted())
    notices = notices_of(html)
    assert sorted(notices) == ["data-liveop-dev-notice", "data-liveop-script-missing"]
    assert "{% load liveops %}{% liveops_scripts %}" in notices["data-liveop-script-missing"]
    assert "served over WSGI" in notices["data-liveop-dev-notice"]
    assert "uvicorn yourproject.asgi:application" in notices["data-liveop-dev-notice"]
    (container,) = lxml.html.fragments_fromstring(html)
    assert {el.get("lang") for el in container.xpath(".//p[@class='liveops-dev-notice']")} == {
        "en"  # English inside a container that may be in another language
    }


@pytest.mark.django_db
def test_in_debug_an_asgi_page_gets_only_the_script_notice(settings: Any) -> None:
    from django.test import AsyncRequestFactory

    settings.DEBUG = True
    request = AsyncRequestFactory().get("/somewhere/")
    request.user = AnonymousUser()
    html = render("{% live_operation op %}", request, op=Scripted())
    assert list(notices_of(html)) == ["data-liveop-script-missing"]


@pytest.mark.django_db
def test_without_debug_there_is_no_notice_but_wsgi_is_logged_once_per_process(
    caplog: pytest.LogCaptureFixture, wsgi_warned: Any
) -> None:
    assert not django_settings.DEBUG
    for _ in range(3):
        html = render("{% live_operation op %}", a_request(), op=Scripted())
        assert notices_of(html) == {}
    warnings = [r for r in caplog.records if r.name == "liveops" and "over WSGI" in r.message]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
    assert "/somewhere/" in warnings[0].message
    assert "/ws/liveops/" in warnings[0].message


@pytest.mark.django_db
def test_in_debug_a_live_list_has_the_notices_before_its_table(
    settings: Any, user: Any, wsgi_warned: Any
) -> None:
    from django.core.paginator import Paginator

    settings.DEBUG = True
    page = Paginator(Scripted.objects.order_by("-created_on"), 10).page(1)
    html = render("{% live_operation_list page %}", a_request(user), page=page)
    assert sorted(notices_of(html)) == ["data-liveop-dev-notice", "data-liveop-script-missing"]
    assert html.index("liveops-dev-notice") < html.index("<table")


def test_loading_the_tags_does_not_import_the_socket_stack() -> None:
    # {% load liveops %} needs the socket's path, not the consumer behind it.
    script = (
        "import sys, django; django.setup(); import liveops.templatetags.liveops; "
        "print(' '.join(sorted(sys.modules)))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        timeout=60,
    ).stdout.split()
    assert "liveops.templatetags.liveops" in loaded
    socket_stack = {"liveops.consumers", "liveops._fanout", "channels.auth", "channels.sessions"}
    assert socket_stack.isdisjoint(loaded)
