"""The parts of the move from django-liveops 0.4 that need no server: settings, routing,
URL names, the model's 0.4 names, the migration check and ``liveops_upgrade``.

tests/test_upgrade_from_04.py moves a whole 0.4 project on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import include, path, reverse
from django.utils import timezone

from liveops._checks import check_settings
from liveops._conf import get_settings, validate
from liveops.views import LiveOperationView
from tests.testapp.models import Scripted

ROOT = Path(__file__).resolve().parent.parent


class ScriptedByPk(LiveOperationView):
    """A 0.4 project's own live view: a model, and only the pk in its URL."""

    model = Scripted


urlpatterns = [
    path("operations/", include("liveops.urls")),
    path("import/<uuid:pk>/", ScriptedByPk.as_view(), name="scripted-by-pk"),
]


def _ids(settings: Any, liveops: dict[str, Any]) -> list[str]:
    settings.LIVEOPS = liveops
    return [message.id for message in check_settings()]


# --- settings ------------------------------------------------------------------------------


def test_the_04_settings_are_warnings_not_errors(settings: Any) -> None:
    old = {
        "BASE_TEMPLATE": "base.html",
        "LIST_LIVE": True,
        "REQUIRED_GROUP": "operators",
        "TOKEN_TTL_SECONDS": 600,
        "RUNNER": "threading",
    }
    assert validate(old) == []
    assert sorted(_ids(settings, old)) == ["liveops.W009", "liveops.W009"] + ["liveops.W010"] * 3


def test_a_renamed_04_setting_is_read_under_its_new_name(settings: Any) -> None:
    settings.LIVEOPS = {"TOKEN_TTL_SECONDS": 600, "RUNNER": "threading"}
    assert get_settings().GRANT_SECONDS == 600
    assert get_settings().runner_path == "liveops.runners.thread.ThreadRunner"
    messages = {m.msg: m.hint for m in check_settings()}
    assert any("'GRANT_SECONDS'" in hint for hint in messages.values()), messages
    assert any("'thread'" in hint for hint in messages.values()), messages


def test_the_new_name_wins_over_the_04_one_and_the_warning_says_so(settings: Any) -> None:
    settings.LIVEOPS = {"TOKEN_TTL_SECONDS": 600, "GRANT_SECONDS": 60}
    assert get_settings().GRANT_SECONDS == 60
    [warning] = check_settings()
    assert "it is ignored, as LIVEOPS['GRANT_SECONDS']" in warning.msg


def test_a_bad_04_value_is_reported_under_the_name_it_maps_to(settings: Any) -> None:
    assert [p.id for p in validate({"TOKEN_TTL_SECONDS": -5})] == ["liveops.E014"]


def test_required_group_says_how_to_restrict_viewers(settings: Any) -> None:
    settings.LIVEOPS = {"REQUIRED_GROUP": "operators"}
    [warning] = check_settings()
    assert warning.id == "liveops.W010"
    assert "can_view()" in warning.hint
    assert "viewable_by()" in warning.hint


def test_a_misspelt_key_is_still_an_error(settings: Any) -> None:
    assert [p.id for p in validate({"REQUIRED_GRUOP": "x"})] == ["liveops.E002"]


# --- routing ------------------------------------------------------------------------------


def test_routing_imports_before_django_is_set_up() -> None:
    """0.4's asgi.py imports liveops.routing before get_asgi_application()."""
    code = (
        "from liveops.routing import websocket_urlpatterns\n"
        "from django.core.asgi import get_asgi_application\n"
        "get_asgi_application()\n"
        "from liveops.consumers import LiveOperationConsumer\n"
        "assert websocket_urlpatterns[0].callback.consumer_class is LiveOperationConsumer\n"
        "print('served')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "served"


# --- URL names, views and the model's 0.4 names ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_the_04_url_names_reverse_and_serve_our_views(user: Any) -> None:
    op = Scripted.objects.create(owner=user)
    live = reverse("liveops:live", kwargs={"op_type": "testapp.scripted", "pk": op.pk})
    assert live == op.get_absolute_url()
    restart = reverse("liveops:restart", kwargs={"op_type": "testapp.scripted", "pk": op.pk})
    client = Client()
    client.force_login(user)
    # Our RetryView answers: an operation that has not ended cannot run again yet.
    assert client.post(restart, HTTP_ACCEPT="application/json").status_code == 409
    Scripted.objects.filter(pk=op.pk).update(finished_on=timezone.now(), version=3)
    assert client.post(restart, HTTP_ACCEPT="application/json").status_code == 202


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_04_live_view_with_a_model_and_a_pk_serves_the_page(user: Any, other_user: Any) -> None:
    op = Scripted.objects.create(owner=user)
    client = Client()
    client.force_login(user)
    response = client.get(f"/import/{op.pk}/")
    assert response.status_code == 200
    assert f'data-liveop="testapp.scripted:{op.pk}"' in response.content.decode()
    client.force_login(other_user)
    assert client.get(f"/import/{op.pk}/").status_code == 404  # still only its viewers


def test_op_type_key_is_the_label_and_deprecated() -> None:
    with pytest.deprecated_call(match="live_label"):
        assert Scripted.op_type_key() == Scripted.live_label() == "testapp.scripted"


# --- liveops_upgrade --------------------------------------------------------------------------


@pytest.mark.django_db
def test_liveops_upgrade_fixes_what_04_left_and_only_that(user: Any) -> None:
    now = timezone.now()
    ended = {"started_on": now, "finished_on": now}
    old = dict(owner=user, version=0, percent=0)
    done = Scripted.objects.create(**old, **ended, finished_successfully=True)
    failed = Scripted.objects.create(**old, **ended, traceback="Row 3 has no score")
    crashed = Scripted.objects.create(
        **old, **ended, traceback="Traceback (most recent call last):\n  …\nKeyError: 'x'"
    )
    cancelled = Scripted.objects.create(**old, **ended, cancelled=True)
    running = Scripted.objects.create(**old, started_on=now)
    waiting = Scripted.objects.create(**old)
    ours = Scripted.objects.create(owner=user, version=4, percent=0, started_on=now)

    out = StringIO()
    call_command("liveops_upgrade", stdout=out)
    assert "testapp.Scripted: 6 row(s) from 0.4 upgraded." in out.getvalue()

    def row(op: Scripted) -> Scripted:
        return Scripted.objects.get(pk=op.pk)

    assert row(done).percent == 100
    assert {row(op).percent for op in (failed, crashed, cancelled, running, waiting)} == {None}
    assert row(failed).error_message == "Row 3 has no score"
    assert row(crashed).error_message == ""  # a Python traceback stays for staff only
    assert row(running).heartbeat_on is not None
    assert row(waiting).heartbeat_on is None
    assert row(cancelled).heartbeat_on is None
    assert (row(ours).percent, row(ours).version, row(ours).heartbeat_on) == (0, 4, None)

    again = StringIO()
    call_command("liveops_upgrade", stdout=again)
    assert again.getvalue().strip() == "0 row(s) from django-liveops 0.4 upgraded."


@pytest.mark.parametrize("name", ["WebProgress", "TextProgress"])
def test_the_04_progress_classes_are_progress(name: str) -> None:
    import liveops.progress

    with pytest.deprecated_call(match=r"use liveops\.progress\.Progress"):
        assert getattr(liveops.progress, name) is liveops.progress.Progress
    with pytest.raises(AttributeError):
        liveops.progress.NoSuchProgress  # noqa: B018


@pytest.mark.django_db
def test_a_one_line_liveops_base_gives_the_package_pages_the_04_base(
    user: Any, settings: Any, tmp_path: Path
) -> None:
    """docs/upgrading.md: templates/liveops/base.html = {% extends "base.html" %}."""
    (tmp_path / "liveops").mkdir()
    (tmp_path / "base.html").write_text(
        "{% load liveops %}<html><head>{% liveops_scripts %}</head><body>"
        '<nav id="site-nav">Site</nav>{% block content %}{% endblock %}</body></html>'
    )
    (tmp_path / "liveops" / "base.html").write_text('{% extends "base.html" %}')
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    op = Scripted.objects.create(owner=user)
    client = Client()
    client.force_login(user)
    html = client.get(op.get_absolute_url()).content.decode()
    assert '<nav id="site-nav">Site</nav>' in html
    assert f'data-liveop="testapp.scripted:{op.pk}"' in html
    assert html.count("liveops.js") == 1
