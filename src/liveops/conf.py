"""The ``LIVEOPS`` settings dict: defaults, validation and a cached reader."""

from __future__ import annotations

import difflib
import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

__all__ = [
    "DEFAULTS",
    "RUNNER_ALIASES",
    "LiveOpsSettings",
    "get_settings",
    "missing_layer_problem",
    "report_missing_layer",
    "validate",
]

logger = logging.getLogger("liveops")

RUNNER_ALIASES = {
    "eager": "liveops.runners.eager.EagerRunner",
    "thread": "liveops.runners.thread.ThreadRunner",
    "celery": "liveops.runners.celery.CeleryRunner",
    "tasks": "liveops.runners.tasks.TasksRunner",
}

DEFAULTS: dict[str, Any] = {
    # Where run() executes: an alias from RUNNER_ALIASES or a dotted path to a Runner class.
    "RUNNER": "thread",
    # At most this many live messages per second per operation; the latest state always follows.
    "THROTTLE_HZ": 10,
    # Also store live progress (status, percent, log tail) so late joiners see it.
    "PERSIST_PROGRESS": False,
    # Size of the thread runner's pool.
    "THREAD_WORKERS": 4,
    # How many log lines a page keeps (and a snapshot shows).
    "LOG_TAIL": 200,
    # The channel layer alias used for live fragments.
    "CHANNEL_LAYER": "default",
    # A running operation refreshes its heartbeat this often (seconds).
    "HEARTBEAT_SECONDS": 10,
    # A heartbeat older than this (seconds) means the operation was lost.
    "STALE_SECONDS": 30,
    # Options for Celery's apply_async() with the celery runner, e.g. {"queue": "liveops"}.
    "CELERY_TASK_OPTIONS": {},
    # Options for Task.using() with the tasks runner, e.g. {"queue_name": "liveops"}.
    "TASKS_OPTIONS": {},
    # A page's view grant lets its socket in without a session lookup for this long
    # (seconds); 0 turns grants off (liveops.grants).
    "GRANT_SECONDS": 3600,
}


@dataclass(frozen=True)
class LiveOpsSettings:
    """Validated ``LIVEOPS`` settings with defaults filled in."""

    RUNNER: str
    THROTTLE_HZ: float
    PERSIST_PROGRESS: bool
    THREAD_WORKERS: int
    LOG_TAIL: int
    CHANNEL_LAYER: str
    HEARTBEAT_SECONDS: float
    STALE_SECONDS: float
    CELERY_TASK_OPTIONS: dict[str, Any]
    TASKS_OPTIONS: dict[str, Any]
    GRANT_SECONDS: float

    @property
    def runner_path(self) -> str:
        """Return the dotted path of the configured runner class."""
        return RUNNER_ALIASES.get(self.RUNNER, self.RUNNER)

    @property
    def flush_interval(self) -> float:
        """Return the minimum number of seconds between two live messages of one operation."""
        return 1.0 / self.THROTTLE_HZ


@dataclass(frozen=True)
class Problem:
    """One invalid setting: the check id, what is wrong, and how to fix it."""

    id: str
    msg: str
    hint: str

    def __str__(self) -> str:
        return f"({self.id}) {self.msg} HINT: {self.hint}"


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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def validate(raw: object) -> list[Problem]:
    """Return the problems of a ``LIVEOPS`` value; an empty list means it is valid."""
    if not isinstance(raw, dict):
        return [
            Problem(
                "liveops.E001",
                f"LIVEOPS must be a dict, not {type(raw).__name__} ({raw!r}).",
                "Set LIVEOPS = {} in your settings, or remove it to use the defaults.",
            )
        ]
    problems: list[Problem] = []
    for key in raw:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            suggestion = f"Did you mean {close[0]!r}? " if close else ""
            problems.append(
                Problem(
                    "liveops.E002",
                    f"LIVEOPS has an unknown key {key!r}.",
                    f"{suggestion}Valid keys: {', '.join(sorted(DEFAULTS))}.",
                )
            )
    merged = {**DEFAULTS, **raw}
    runner = merged["RUNNER"]
    if not isinstance(runner, str) or (runner not in RUNNER_ALIASES and "." not in runner):
        problems.append(
            Problem(
                "liveops.E003",
                f"LIVEOPS['RUNNER'] is {runner!r}, which is not a runner.",
                f"Use one of {', '.join(map(repr, RUNNER_ALIASES))}, "
                "or the dotted path of a liveops.runners.Runner subclass.",
            )
        )
    hz = merged["THROTTLE_HZ"]
    if not _is_number(hz) or not 0 < hz <= 100:
        problems.append(
            Problem(
                "liveops.E004",
                f"LIVEOPS['THROTTLE_HZ'] is {hz!r}; it must be a number above 0 and at most 100.",
                "Use the default 10 (ten live messages per second per operation at most).",
            )
        )
    if not isinstance(merged["PERSIST_PROGRESS"], bool):
        problems.append(
            Problem(
                "liveops.E005",
                f"LIVEOPS['PERSIST_PROGRESS'] is {merged['PERSIST_PROGRESS']!r}; "
                "it must be True or False.",
                "Use False (only terminal state is stored) or True (live progress is stored too).",
            )
        )
    for key, id_, example in (
        ("THREAD_WORKERS", "liveops.E006", 4),
        ("LOG_TAIL", "liveops.E007", 200),
    ):
        if not _is_positive_int(merged[key]):
            problems.append(
                Problem(
                    id_,
                    f"LIVEOPS[{key!r}] is {merged[key]!r}; "
                    "it must be a whole number of at least 1.",
                    f"Use a positive integer such as {example}.",
                )
            )
    if not isinstance(merged["CHANNEL_LAYER"], str):
        problems.append(
            Problem(
                "liveops.E008",
                f"LIVEOPS['CHANNEL_LAYER'] is {merged['CHANNEL_LAYER']!r}; "
                "it must be the name of a layer.",
                "Use 'default', or another key of your CHANNEL_LAYERS setting.",
            )
        )
    beat, stale = merged["HEARTBEAT_SECONDS"], merged["STALE_SECONDS"]
    if not _is_number(beat) or not 0 < beat <= 3600:
        problems.append(
            Problem(
                "liveops.E010",
                f"LIVEOPS['HEARTBEAT_SECONDS'] is {beat!r}; "
                "it must be a number of seconds above 0 and at most 3600.",
                "Use the default 10.",
            )
        )
    elif not _is_number(stale) or stale < 2 * beat:
        problems.append(
            Problem(
                "liveops.E011",
                f"LIVEOPS['STALE_SECONDS'] is {stale!r}; it must be a number of seconds "
                f"at least twice HEARTBEAT_SECONDS ({beat!r}), or a healthy run looks lost.",
                f"Use {3 * beat!r} (three missed heartbeats), or the defaults 10 and 30.",
            )
        )
    for key, id_ in (("CELERY_TASK_OPTIONS", "liveops.E012"), ("TASKS_OPTIONS", "liveops.E013")):
        if not isinstance(merged[key], dict):
            problems.append(
                Problem(
                    id_,
                    f"LIVEOPS[{key!r}] is {merged[key]!r}; it must be a dict of keyword arguments.",
                    "Use {} or, for example, {'queue': 'liveops'} (Celery) / "
                    "{'queue_name': 'liveops'} (tasks).",
                )
            )
    grant = merged["GRANT_SECONDS"]
    if not _is_number(grant) or not 0 <= grant <= 7 * 24 * 3600:
        problems.append(
            Problem(
                "liveops.E014",
                f"LIVEOPS['GRANT_SECONDS'] is {grant!r}; it must be a number of seconds "
                "from 0 (no grants) to 604800 (a week).",
                "Use the default 3600.",
            )
        )
    return problems


def _raw_settings() -> object:
    return getattr(settings, "LIVEOPS", {})


@functools.cache
def get_settings() -> LiveOpsSettings:
    """Return the validated settings; raise ImproperlyConfigured when they are invalid."""
    raw = _raw_settings()
    problems = validate(raw)
    if problems:
        details = "\n".join(map(str, problems))
        raise ImproperlyConfigured(f"Invalid LIVEOPS setting:\n{details}")
    assert isinstance(raw, dict)
    merged = {**DEFAULTS, **raw}
    return LiveOpsSettings(
        RUNNER=merged["RUNNER"],
        THROTTLE_HZ=float(merged["THROTTLE_HZ"]),
        PERSIST_PROGRESS=merged["PERSIST_PROGRESS"],
        THREAD_WORKERS=merged["THREAD_WORKERS"],
        LOG_TAIL=merged["LOG_TAIL"],
        CHANNEL_LAYER=merged["CHANNEL_LAYER"],
        HEARTBEAT_SECONDS=float(merged["HEARTBEAT_SECONDS"]),
        STALE_SECONDS=float(merged["STALE_SECONDS"]),
        CELERY_TASK_OPTIONS=dict(merged["CELERY_TASK_OPTIONS"]),
        TASKS_OPTIONS=dict(merged["TASKS_OPTIONS"]),
        GRANT_SECONDS=float(merged["GRANT_SECONDS"]),
    )


def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in {"LIVEOPS", "CHANNEL_LAYERS"}:
        get_settings.cache_clear()
        with _reported_lock:
            _reported_layers.clear()


setting_changed.connect(_reset_on_change, dispatch_uid="liveops.conf.reset")
