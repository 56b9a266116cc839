"""The ``LIVEOPS`` settings dict: defaults, validation and a cached reader."""

from __future__ import annotations

import difflib
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

logger = logging.getLogger("liveops")

RUNNER_ALIASES = {
    "eager": "liveops.runners.eager.EagerRunner",
    "thread": "liveops.runners.thread.ThreadRunner",
    "celery": "liveops.runners.celery.CeleryRunner",
    "tasks": "liveops.runners.tasks.TasksRunner",
}


@dataclass(frozen=True)
class Problem:
    """One invalid setting: the check id, what is wrong, and how to fix it."""

    id: str
    msg: str
    hint: str

    def __str__(self) -> str:
        return f"({self.id}) {self.msg} HINT: {self.hint}"


@dataclass(frozen=True)
class _Rule:
    """One setting: its default, what a value must be, and how a bad value is reported."""

    default: Any
    valid: Callable[[Any], bool] = lambda value: True  # validate() may check more
    check_id: str = ""
    message: str = ""  # {name} and {value} are filled in
    fix: str = ""
    convert: Callable[[Any], Any] = lambda value: value  # how LiveOpsSettings stores it

    def problem(self, name: str, value: object) -> Problem:
        msg = self.message.format(name=f"LIVEOPS[{name!r}]", value=repr(value))
        return Problem(self.check_id, msg, self.fix)


def _setting(*rule: Any, **options: Any) -> Any:
    """Declare a setting: a field with its _Rule as metadata and no default (RUF009 is moot)."""
    return field(metadata={"liveops": _Rule(*rule, **options)})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_seconds_to_a_week(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= 7 * 24 * 3600


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


_WHOLE_NUMBER = "{name} is {value}; it must be a whole number of at least 1."
_OPTIONS_MESSAGE = "{name} is {value}; it must be a dict of keyword arguments."
_OPTIONS_FIX = (
    "Use {} or, for example, {'queue': 'liveops'} (Celery) / {'queue_name': 'liveops'} (tasks)."
)


@dataclass(frozen=True)
class LiveOpsSettings:
    """Validated ``LIVEOPS`` settings with defaults filled in; each field is one setting.

    A field gives the setting's default, the rule a value must satisfy, and the check
    id, message and fix of a value that does not (``validate``).
    """

    #: Where run() executes: an alias from RUNNER_ALIASES or a dotted path to a Runner class.
    RUNNER: str = _setting(
        "thread",
        lambda value: isinstance(value, str) and (value in RUNNER_ALIASES or "." in value),
        "liveops.E003",
        "{name} is {value}, which is not a runner.",
        f"Use one of {', '.join(map(repr, RUNNER_ALIASES))}, "
        "or the dotted path of a liveops.runners.Runner subclass.",
    )
    #: At most this many live messages per second per operation; the latest state always follows.
    THROTTLE_HZ: float = _setting(
        10,
        lambda value: _is_number(value) and 0 < value <= 100,
        "liveops.E004",
        "{name} is {value}; it must be a number above 0 and at most 100.",
        "Use the default 10 (ten live messages per second per operation at most).",
        convert=float,
    )
    #: Also store the live picture (status, percent, stages, log tail…) while a run goes,
    #: so a page opened mid-run shows it whole; a model's ``persist_progress`` overrides it.
    PERSIST_PROGRESS: bool = _setting(
        False,
        lambda value: isinstance(value, bool),
        "liveops.E005",
        "{name} is {value}; it must be True or False.",
        "Use False (only terminal state is stored) or True (live progress is stored too).",
    )
    #: Size of the thread runner's pool.
    THREAD_WORKERS: int = _setting(
        4, _is_positive_int, "liveops.E006", _WHOLE_NUMBER, "Use a positive integer such as 4."
    )
    #: How many log lines a page keeps (and a snapshot shows).
    LOG_TAIL: int = _setting(
        200, _is_positive_int, "liveops.E007", _WHOLE_NUMBER, "Use a positive integer such as 200."
    )
    #: The channel layer alias used for live fragments.
    CHANNEL_LAYER: str = _setting(
        "default",
        lambda value: isinstance(value, str),
        "liveops.E008",
        "{name} is {value}; it must be the name of a layer.",
        "Use 'default', or another key of your CHANNEL_LAYERS setting.",
    )
    #: A running operation refreshes its heartbeat this often (seconds).
    HEARTBEAT_SECONDS: float = _setting(
        10,
        lambda value: _is_number(value) and 0 < value <= 3600,
        "liveops.E010",
        "{name} is {value}; it must be a number of seconds above 0 and at most 3600.",
        "Use the default 10.",
        convert=float,
    )
    #: A heartbeat older than this (seconds) means the operation was lost (see validate()).
    STALE_SECONDS: float = _setting(30, convert=float)
    #: Options for Celery's apply_async() with the celery runner, e.g. {"queue": "liveops"}.
    CELERY_TASK_OPTIONS: dict[str, Any] = _setting(  # noqa: RUF009
        {}, _is_dict, "liveops.E012", _OPTIONS_MESSAGE, _OPTIONS_FIX, convert=dict
    )
    #: Options for Task.using() with the tasks runner, e.g. {"queue_name": "liveops"}.
    TASKS_OPTIONS: dict[str, Any] = _setting(  # noqa: RUF009
        {}, _is_dict, "liveops.E013", _OPTIONS_MESSAGE, _OPTIONS_FIX, convert=dict
    )
    #: A page's view grant lets its socket in without a session lookup for this long
    #: (seconds); 0 turns grants off (liveops._grants).
    GRANT_SECONDS: float = _setting(
        3600,
        _is_seconds_to_a_week,
        "liveops.E014",
        "{name} is {value}; it must be a number of seconds from 0 (no grants) to 604800 (a week).",
        "Use the default 3600.",
        convert=float,
    )
    #: An operation no worker has started after this many seconds is flagged as waiting too
    #: long: on its page, in the lists, in the log and by liveops_sweep; 0 turns it off.
    WAIT_WARNING_SECONDS: float = _setting(
        120,
        _is_seconds_to_a_week,
        "liveops.E020",
        "{name} is {value}; it must be a number of seconds from 0 (never flag) to 604800 (a week).",
        "Use the default 120: longer than your workers usually take to start an operation.",
        convert=float,
    )

    @property
    def runner_path(self) -> str:
        """Return the dotted path of the configured runner class."""
        return RUNNER_ALIASES.get(self.RUNNER, self.RUNNER)

    @property
    def flush_interval(self) -> float:
        """Return the minimum number of seconds between two live messages of one operation."""
        return 1.0 / self.THROTTLE_HZ


_RULES: dict[str, _Rule] = {f.name: f.metadata["liveops"] for f in fields(LiveOpsSettings)}
DEFAULTS: dict[str, Any] = {name: rule.default for name, rule in _RULES.items()}

# --- settings of django-liveops 0.4.x (docs/upgrading.md) -----------------------------------

#: 0.4 keys that mean the same as one of ours: the value is used under the new name.
RENAMED_SETTINGS = {"TOKEN_TTL_SECONDS": "GRANT_SECONDS"}
#: 0.4 runner names that mean the same as one of ours.
RENAMED_RUNNERS = {"threading": "thread"}
#: 0.4 keys that mean nothing here, each with what to do instead.
RETIRED_SETTINGS = {
    "BASE_TEMPLATE": (
        "The package's pages extend liveops/base.html. To frame them with your base, "
        'create templates/liveops/base.html holding {% extends "base.html" %} (your base '
        "needs a content block and {% liveops_scripts %} in its <head>), then remove "
        "BASE_TEMPLATE. Host templates that extend {{ base_template }} still get it."
    ),
    "LIST_LIVE": (
        "Lists drawn by {% live_operation_list %} are always live, and a page without one "
        "subscribes to nothing. Remove LIST_LIVE."
    ),
    "REQUIRED_GROUP": (
        "Who may watch, cancel or retry is the model's: override can_view() and "
        "viewable_by() (and can_cancel(), can_retry()) to require the group, e.g. "
        "user.groups.filter(name=...).exists(), then remove REQUIRED_GROUP. Until then the "
        "default applies: the owner and staff."
    ),
}


def missing_layer_problem(alias: str) -> Problem:
    """Return the problem of a ``CHANNEL_LAYERS`` without the layer ``alias`` (liveops.E009)."""
    return Problem(
        "liveops.E009",
        f"CHANNEL_LAYERS has no layer {alias!r}, so live updates cannot be sent.",
        "Add CHANNEL_LAYERS = {'default': {'BACKEND': "
        "'channels.layers.InMemoryChannelLayer'}} for one process, or "
        "channels_redis for several (see docs/settings.md).",
    )


_reported_layers: set[str] = set()
_reported_lock = threading.Lock()


def report_missing_layer(alias: str) -> None:
    """Log ``missing_layer_problem(alias)`` at ERROR, once per process and configuration.

    For servers and workers, where no system check runs: the socket or the send that
    finds no layer says why, in the same words as ``manage.py check``.
    """
    with _reported_lock:
        if alias in _reported_layers:
            return
        _reported_layers.add(alias)
    logger.error("%s", missing_layer_problem(alias))


def validate(raw: object) -> list[Problem]:
    """Return the problems of a ``LIVEOPS`` value, in the order of their ids; [] when valid."""
    if not isinstance(raw, dict):
        return [
            Problem(
                "liveops.E001",
                f"LIVEOPS must be a dict, not {type(raw).__name__} ({raw!r}).",
                "Set LIVEOPS = {} in your settings, or remove it to use the defaults.",
            )
        ]
    problems = [_unknown_key(key) for key in raw if key not in DEFAULTS and not _is_04_key(key)]
    merged = _merged(raw)
    for name, rule in _RULES.items():
        if not rule.valid(merged[name]):
            problems.append(rule.problem(name, merged[name]))
    beat, stale = merged["HEARTBEAT_SECONDS"], merged["STALE_SECONDS"]
    beat_valid = _RULES["HEARTBEAT_SECONDS"].valid(beat)
    if beat_valid and (not _is_number(stale) or stale < 2 * beat):
        problems.append(
            Problem(
                "liveops.E011",
                f"LIVEOPS['STALE_SECONDS'] is {stale!r}; it must be a number of seconds "
                f"at least twice HEARTBEAT_SECONDS ({beat!r}), or a healthy run looks lost.",
                f"Use {3 * beat!r} (three missed heartbeats), or the defaults 10 and 30.",
            )
        )
    return sorted(problems, key=lambda problem: problem.id)  # a stable sort: E002s keep their order


def _is_04_key(key: object) -> bool:
    return key in RENAMED_SETTINGS or key in RETIRED_SETTINGS


def _merged(raw: dict[Any, Any]) -> dict[str, Any]:
    """Return the defaults overlaid with ``raw``, 0.4 spellings read under their new names."""
    merged = {**DEFAULTS, **{k: v for k, v in raw.items() if k in DEFAULTS}}
    for old, new in RENAMED_SETTINGS.items():
        if old in raw and new not in raw:
            merged[new] = raw[old]
    runner = merged["RUNNER"]
    if isinstance(runner, str) and runner in RENAMED_RUNNERS:
        merged["RUNNER"] = RENAMED_RUNNERS[runner]
    return merged


def deprecated_settings(raw: object) -> list[Problem]:
    """Return a problem for each 0.4 spelling in a ``LIVEOPS`` value: W009 mapped, W010 ignored."""
    if not isinstance(raw, dict):
        return []
    problems = []
    for old, new in RENAMED_SETTINGS.items():
        if old in raw:
            used = "ignored, as" if new in raw else "read as"
            problems.append(
                Problem(
                    "liveops.W009",
                    f"LIVEOPS[{old!r}] is the django-liveops 0.4 spelling; it is {used} "
                    f"LIVEOPS[{new!r}].",
                    f"Rename it to {new!r}.",
                )
            )
    runner = raw.get("RUNNER")
    if isinstance(runner, str) and runner in RENAMED_RUNNERS:
        problems.append(
            Problem(
                "liveops.W009",
                f"LIVEOPS['RUNNER'] is {runner!r}, the django-liveops 0.4 name of the runner "
                f"{RENAMED_RUNNERS[runner]!r}.",
                f"Use {RENAMED_RUNNERS[runner]!r}.",
            )
        )
    for old, fix in RETIRED_SETTINGS.items():
        if old in raw:
            problems.append(
                Problem(
                    "liveops.W010",
                    f"LIVEOPS[{old!r}] is a django-liveops 0.4 setting that does nothing here.",
                    fix,
                )
            )
    return problems


def _unknown_key(key: object) -> Problem:
    close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
    suggestion = f"Did you mean {close[0]!r}? " if close else ""
    return Problem(
        "liveops.E002",
        f"LIVEOPS has an unknown key {key!r}.",
        f"{suggestion}Valid keys: {', '.join(sorted(DEFAULTS))}.",
    )


def raw_settings() -> object:
    """Return the ``LIVEOPS`` setting as given, not validated; ``{}`` when there is none."""
    return getattr(settings, "LIVEOPS", {})


@functools.cache
def get_settings() -> LiveOpsSettings:
    """Return the validated settings; raise ImproperlyConfigured when they are invalid."""
    raw = raw_settings()
    problems = validate(raw)
    if problems:
        details = "\n".join(map(str, problems))
        raise ImproperlyConfigured(f"Invalid LIVEOPS setting:\n{details}")
    assert isinstance(raw, dict)
    merged = _merged(raw)
    return LiveOpsSettings(**{name: rule.convert(merged[name]) for name, rule in _RULES.items()})


def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in {"LIVEOPS", "CHANNEL_LAYERS"}:
        get_settings.cache_clear()
        with _reported_lock:
            _reported_layers.clear()


setting_changed.connect(_reset_on_change, dispatch_uid="liveops._conf.reset")
