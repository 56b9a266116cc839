"""Upgrading from django-liveops 0.4: ``run_liveop`` without ``--owner`` says what to type.

0.4 took the first superuser, or created admin/admin when there was none. Ours creates
no user: its error gives the command line to run instead.
"""

from __future__ import annotations

import shlex
import sys
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.testapp.models import Pulsed

pytestmark = pytest.mark.django_db


def error_of(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        call_command("run_liveop", *args, stdout=StringIO(), stderr=StringIO())
    return str(info.value)


def suggested_lines(message: str) -> list[str]:
    """The indented command lines of an error, as a shell would split them."""
    return [line.strip() for line in message.splitlines() if line.startswith("    ")]


def test_without_users_it_says_to_create_one_and_creates_none() -> None:
    message = error_of("testapp.pulsed", "--steps=3")
    assert "Pulsed needs an owner: name an existing user with --owner USERNAME" in message
    assert "There are no users yet" in message
    assert suggested_lines(message) == [
        "python manage.py createsuperuser",
        "python manage.py run_liveop testapp.pulsed --owner USERNAME --steps=3",
    ]
    assert get_user_model().objects.count() == 0  # 0.4 created admin/admin here
    assert Pulsed.objects.count() == 0


def test_it_names_the_first_active_superuser(django_user_model: Any) -> None:
    django_user_model.objects.create_user("alice")
    django_user_model.objects.create_superuser("root old", is_active=False)
    django_user_model.objects.create_superuser("ops admin")
    django_user_model.objects.create_superuser("zed")
    message = error_of("testapp.Pulsed", "--released=2", "--plain")
    assert "There are no users" not in message
    (line,) = suggested_lines(message)
    # Quoted for the shell: the command runs as it is pasted.
    assert shlex.split(line) == [
        *("python", "manage.py", "run_liveop", "testapp.Pulsed"),
        *("--owner", "ops admin", "--released=2", "--plain"),
    ]
    assert get_user_model().objects.count() == 4


def test_without_a_superuser_it_names_a_user(user: Any) -> None:
    (line,) = suggested_lines(error_of("testapp.pulsed"))
    assert line == "python manage.py run_liveop testapp.pulsed --owner alice"


def test_an_unknown_owner_suggests_an_existing_one(user: Any) -> None:
    message = error_of("testapp.pulsed", "--owner=nobody")
    assert message.startswith("No user with username 'nobody'; run_liveop does not create users.")
    assert suggested_lines(message) == ["python manage.py run_liveop testapp.pulsed --owner alice"]


@pytest.mark.django_db(transaction=True)  # the run commits on a thread of its own
def test_the_suggested_command_line_runs(user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # plain lines
    (line,) = suggested_lines(error_of("testapp.pulsed", "--steps=2", "--released=2"))
    python, manage, *args = shlex.split(line)
    assert (python, manage) == ("python", "manage.py")
    call_command(*args, stdout=StringIO(), stderr=StringIO())
    op = Pulsed.objects.get()
    assert (op.owner_id, op.steps) == (user.pk, 2)
