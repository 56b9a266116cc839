"""The LIVEOPS setting: defaults, one check id per mistake, the cached reader, the runner."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import ERROR
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from liveops._checks import check_settings
from liveops._conf import DEFAULTS, LiveOpsSettings, get_settings
from liveops.runners import get_runner
from liveops.runners.eager import EagerRunner
from liveops.runners.thread import ThreadRunner

# (LIVEOPS value, check id, the bad value as the message shows it, a phrase of the hint)
BAD: list[tuple[object, str, str, str]] = [
    (["RUNNER", "eager"], "liveops.E001", "list (['RUNNER', 'eager'])", "LIVEOPS = {}"),
    ("eager", "liveops.E001", "str ('eager')", "LIVEOPS = {}"),
    ({"THROTLE_HZ": 5}, "liveops.E002", "'THROTLE_HZ'", "Did you mean 'THROTTLE_HZ'?"),
    (
        {"COLOUR": "red"},
        "liveops.E002",
        "'COLOUR'",
        "CHANNEL_LAYER, GRANT_SECONDS, HEARTBEAT_SECONDS",
    ),
    ({"RUNNER": "celeryy"}, "liveops.E003", "'celeryy'", "'eager', 'thread'"),
    ({"RUNNER": 3}, "liveops.E003", "is 3,", "dotted path"),
    ({"THROTTLE_HZ": 0}, "liveops.E004", "is 0;", "default 10"),
    ({"THROTTLE_HZ": -1}, "liveops.E004", "is -1;", "default 10"),
    ({"THROTTLE_HZ": "10"}, "liveops.E004", "is '10';", "default 10"),
    ({"THROTTLE_HZ": True}, "liveops.E004", "is True;", "default 10"),
    ({"THROTTLE_HZ": 1000}, "liveops.E004", "is 1000;", "default 10"),
    ({"THROTTLE_HZ": float("nan")}, "liveops.E004", "is nan;", "default 10"),
    ({"PERSIST_PROGRESS": "yes"}, "liveops.E005", "is 'yes';", "Use False"),
    ({"PERSIST_PROGRESS": 1}, "liveops.E005", "is 1;", "Use False"),
    ({"THREAD_WORKERS": 0}, "liveops.E006", "is 0;", "such as 4"),
    ({"THREAD_WORKERS": 2.5}, "liveops.E006", "is 2.5;", "such as 4"),
    ({"LOG_TAIL": 0}, "liveops.E007", "is 0;", "such as 200"),
    ({"LOG_TAIL": False}, "liveops.E007", "is False;", "such as 200"),
    ({"CHANNEL_LAYER": 5}, "liveops.E008", "is 5;", "CHANNEL_LAYERS"),
    ({"HEARTBEAT_SECONDS": 0}, "liveops.E010", "is 0;", "default 10"),
    ({"HEARTBEAT_SECONDS": "5"}, "liveops.E010", "is '5';", "default 10"),
    ({"STALE_SECONDS": 15}, "liveops.E011", "is 15;", "Use 30 (three missed"),
    ({"HEARTBEAT_SECONDS": 2, "STALE_SECONDS": 3}, "liveops.E011", "is 3;", "Use 6"),
    ({"CELERY_TASK_OPTIONS": "liveops"}, "liveops.E012", "is 'liveops';", "{'queue'"),
    ({"TASKS_OPTIONS": ["x"]}, "liveops.E013", "is ['x'];", "{'queue_name'"),
    ({"GRANT_SECONDS": -1}, "liveops.E014", "is -1;", "default 3600"),
    ({"GRANT_SECONDS": "1h"}, "liveops.E014", "is '1h';", "default 3600"),
    ({"WAIT_WARNING_SECONDS": -5}, "liveops.E020", "is -5;", "default 120"),
    ({"WAIT_WARNING_SECONDS": True}, "liveops.E020", "is True;", "default 120"),
    ({"WAIT_WARNING_SECONDS": 10**7}, "liveops.E020", "is 10000000;", "default 120"),
    # Last: get_settings() does not look at CHANNEL_LAYERS (see BAD[:-1] below).
    ({"CHANNEL_LAYER": "events"}, "liveops.E009", "'events'", "InMemoryChannelLayer"),
]
IDS = [f"{check_id}-{value!r}" for value, check_id, _, _ in BAD]


def test_the_defaults(settings: Any) -> None:
    settings.LIVEOPS = {}
    assert get_settings() == LiveOpsSettings(
        RUNNER="thread",
        THROTTLE_HZ=10.0,
        PERSIST_PROGRESS=False,
        THREAD_WORKERS=4,
        LOG_TAIL=200,
        CHANNEL_LAYER="default",
        HEARTBEAT_SECONDS=10.0,
        STALE_SECONDS=30.0,
        CELERY_TASK_OPTIONS={},
        TASKS_OPTIONS={},
        GRANT_SECONDS=3600.0,
        WAIT_WARNING_SECONDS=120.0,
    )
    assert set(DEFAULTS) == set(LiveOpsSettings.__dataclass_fields__)
    assert get_settings().flush_interval == 0.1
    assert get_settings().runner_path == "liveops.runners.thread.ThreadRunner"
    assert check_settings() == []


def test_given_values_replace_the_defaults(settings: Any) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 4, "LOG_TAIL": 20}
    found = get_settings()
    assert (found.RUNNER, found.THROTTLE_HZ, found.LOG_TAIL) == ("eager", 4.0, 20)
    assert found.flush_interval == 0.25
    assert found.THREAD_WORKERS == 4
    assert check_settings() == []


@pytest.mark.parametrize(("value", "check_id", "shown", "hint"), BAD, ids=IDS)
def test_each_mistake_has_its_check(
    settings: Any, value: object, check_id: str, shown: str, hint: str
) -> None:
    settings.LIVEOPS = value
    errors = check_settings()
    assert [error.id for error in errors] == [check_id]
    (error,) = errors
    assert error.level == ERROR
    assert shown in error.msg
    assert hint in error.hint


def test_no_liveops_setting_at_all_is_valid(settings: Any) -> None:
    # (pytest-django sends no setting_changed for a deletion, so get_settings() is not used.)
    del settings.LIVEOPS
    assert check_settings() == []


def test_a_missing_channel_layers_setting_is_reported(settings: Any) -> None:
    del settings.CHANNEL_LAYERS
    (error,) = check_settings()
    assert error.id == "liveops.E009"
    assert "'default'" in error.msg


def test_several_mistakes_are_reported_together(settings: Any) -> None:
    settings.LIVEOPS = {"THROTTLE_HZ": 0, "LOG_TAIL": -3, "TAIL": 3}
    assert sorted(error.id for error in check_settings()) == [
        "liveops.E002",
        "liveops.E004",
        "liveops.E007",
    ]


@pytest.mark.django_db  # model checks ask SQLite whether it supports JSONField
def test_manage_py_check_fails_on_a_bad_setting(settings: Any) -> None:
    call_command("check", verbosity=0)  # the test settings pass
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 1000}
    with pytest.raises(SystemCheckError, match=r"liveops\.E004") as caught:
        call_command("check", verbosity=0)
    assert "1000" in str(caught.value)
    assert "HINT: Use the default 10" in str(caught.value)


@pytest.mark.parametrize(("value", "check_id", "shown", "hint"), BAD[:-1], ids=IDS[:-1])
def test_get_settings_raises_with_the_same_text(
    settings: Any, value: object, check_id: str, shown: str, hint: str
) -> None:
    settings.LIVEOPS = value
    (error,) = check_settings()
    with pytest.raises(ImproperlyConfigured) as caught:
        get_settings()
    assert f"({error.id}) {error.msg} HINT: {error.hint}" in str(caught.value)


def test_get_settings_is_cached_and_follows_setting_changes(settings: Any) -> None:
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 5}
    first = get_settings()
    assert get_settings() is first
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 50}
    assert get_settings().THROTTLE_HZ == 50.0
    settings.LIVEOPS = {"RUNNER": "eager", "THROTTLE_HZ": 0}
    with pytest.raises(ImproperlyConfigured):
        get_settings()
    settings.LIVEOPS = {"RUNNER": "eager"}
    assert get_settings().THROTTLE_HZ == 10.0


def test_the_runner_aliases(settings: Any) -> None:
    settings.LIVEOPS = {"RUNNER": "eager"}
    assert type(get_runner()) is EagerRunner
    assert get_runner() is get_runner()
    settings.LIVEOPS = {"RUNNER": "thread", "THREAD_WORKERS": 2}
    assert type(get_runner()) is ThreadRunner


@pytest.mark.parametrize("path", ["nowhere.at.all.Runner", "liveops.runners.NoSuchRunner"])
def test_an_unimportable_runner_is_named(settings: Any, path: str) -> None:
    settings.LIVEOPS = {"RUNNER": path}
    assert check_settings() == []  # a dotted path is only imported on use
    with pytest.raises(ImproperlyConfigured) as caught:
        get_runner()
    assert repr(path) in str(caught.value)
    assert "cannot be imported" in str(caught.value)
    assert isinstance(caught.value.__cause__, ImportError)


def test_a_runner_path_to_something_else_is_refused(settings: Any) -> None:
    settings.LIVEOPS = {"RUNNER": "liveops._conf.LiveOpsSettings"}
    with pytest.raises(ImproperlyConfigured, match=r"not a liveops\.runners\.Runner subclass"):
        get_runner()


def test_persist_progress_is_a_setting_like_the_others(settings: Any) -> None:
    settings.LIVEOPS = {"PERSIST_PROGRESS": True}
    assert check_settings() == []
    assert get_settings().PERSIST_PROGRESS is True
