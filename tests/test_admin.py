"""The read-only operations admin: state and owner filters, the traceback, cancel and retry."""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest
from django.test import Client
from django.utils import timezone

from liveops._execution import execute
from liveops._state import Phase
from liveops.lifecycle import LOST_MESSAGE, end_as_interrupted
from tests.testapp.models import Endless, Scripted

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/testapp/scripted/"


@pytest.fixture
def admin_client(django_user_model: Any) -> Client:
    boss = django_user_model.objects.create_superuser("boss", password="pw")
    client = Client()
    client.force_login(boss)
    return client


def listed(client: Client, query: str = "") -> list[str]:
    """The operations a changelist page lists (their str), and their states."""
    response = client.get(f"{CHANGELIST}{query}")
    assert response.status_code == 200
    page = lxml.html.fromstring(response.content)
    return [
        " ".join(row.find_class("field-state")[0].text_content().split())
        for row in page.xpath("//table[@id='result_list']/tbody/tr")
    ]


def ended(owner: Any, *steps: Any) -> Any:
    op = Scripted.objects.create(owner=owner)
    Scripted.SCRIPTS[op.pk] = list(steps)
    execute(op.live_label(), op.pk)
    return Scripted.objects.get(pk=op.pk)


def test_the_list_filters_by_state_and_owner(admin_client, user, other_user) -> None:
    ended(user, lambda p: p.result())
    ended(user, lambda p: p.error("disk full"))
    Scripted.objects.create(owner=other_user)
    assert sorted(listed(admin_client)) == ["Failed", "Finished", "Waiting to start"]
    assert listed(admin_client, "?state=FINISHED_ERROR") == ["Failed"]
    assert listed(admin_client, "?state=NOT_STARTED") == ["Waiting to start"]
    assert sorted(listed(admin_client, f"?owner__id__exact={user.pk}")) == ["Failed", "Finished"]
    assert listed(admin_client, "?state=<script>") == []


def test_the_state_filter_finds_interrupted_operations(admin_client, user) -> None:
    ended(user, lambda p: p.error("disk full"))
    lost = Scripted.objects.create(owner=user, started_on=timezone.now())
    assert end_as_interrupted(Scripted, [lost.pk], LOST_MESSAGE, stale_only=False)
    assert listed(admin_client, "?state=INTERRUPTED") == ["Interrupted"]
    assert sorted(listed(admin_client, "?state=FINISHED_ERROR")) == ["Failed", "Interrupted"]


def test_it_is_read_only_and_shows_the_traceback(admin_client, user) -> None:
    op = ended(user, lambda p: 1 / 0)
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    page = admin_client.get(f"{CHANGELIST}{op.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "ZeroDivisionError" in html
    assert 'name="_save"' not in html  # nothing to save


def test_the_actions_cancel_and_run_again(admin_client, user) -> None:
    running = Endless.objects.create(owner=user)
    Endless.objects.filter(pk=running.pk).update(started_on=timezone.now())
    failed = ended(user, lambda p: p.error("disk full"))
    Scripted.SCRIPTS[failed.pk] = [lambda p: p.result(again=True)]

    response = admin_client.post(
        "/admin/testapp/endless/",
        {"action": "cancel_selected", "_selected_action": [running.pk]},
        follow=True,
    )
    assert "Asked 1 operation to stop." in response.content.decode()
    assert Endless.objects.get(pk=running.pk).cancel_requested

    response = admin_client.post(
        CHANGELIST, {"action": "run_selected_again", "_selected_action": [failed.pk]}, follow=True
    )
    assert "Started 1 operation again." in response.content.decode()
    again = Scripted.objects.get(pk=failed.pk)
    assert again.attempt == 2
    assert again.get_state() in {Phase.NOT_STARTED, Phase.FINISHED_OK}  # the runner decides
