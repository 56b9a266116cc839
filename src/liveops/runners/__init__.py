"""Runners decide where ``run()`` executes: inline, in a thread pool, or in a worker."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.core.checks import CheckMessage
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string
from django.utils.translation import gettext_noop

from liveops._conf import RUNNER_ALIASES, get_settings
from liveops._execution import execute

if TYPE_CHECKING:
    from liveops.models import LiveOperation

__all__ = ["Runner", "RunnerUnavailable", "execute"]

logger = logging.getLogger("liveops")

#: The end of an operation whose queue failed for a while (a broker down): retrying helps.
NOT_QUEUED_MESSAGE = gettext_noop("This operation could not be queued; please try again later.")
#: The end of an operation the server is not set up to run: retrying does not help.
NOT_SET_UP_MESSAGE = gettext_noop(
    "This operation could not be queued because the server is not set up to run it. "
    "The server log says why."
)


class RunnerUnavailable(ImproperlyConfigured):
    """The configured runner cannot be loaded: ``problem`` says what is missing, ``fix`` how."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} {fix}")
        self.problem = problem
        self.fix = fix


class Runner:
    """Base class of runners: ``enqueue()`` starts ``liveops.runners.execute(label, pk)``."""

    #: Exceptions of ``enqueue()`` that mean the set-up is wrong, not that the queue is
    #: down for a while: the operation then ends without "please try again later".
    configuration_errors: tuple[type[BaseException], ...] = ()

    @classmethod
    def check(cls) -> list[CheckMessage]:
        """Return what in the settings would make every ``enqueue()`` fail (system checks)."""
        return []

    def enqueue(self, label: str, pk: UUID | str) -> None:
        """Start running operation ``pk`` of type ``label`` (called after commit)."""
        raise NotImplementedError


def dispatch(label: str, pk: UUID | str) -> None:
    """Hand the operation to the runner; if that fails, end it as failed rather than queued.

    Called after the creating transaction committed, so raising would leave an
    operation that no worker will ever run, shown as "waiting to start" forever.
    """
    runner: Runner | None = None
    try:
        runner = get_runner()
        runner.enqueue(label, pk)
    except Exception as exc:
        from liveops.lifecycle import end_unqueued

        if _is_configuration_error(exc, runner):
            logger.error(
                "liveops: could not queue %s %s, because the server is not set up to run "
                "it: %s Run `python manage.py check` for the setting to change.",
                label,
                pk,
                exc,
                exc_info=exc,
            )
            message = NOT_SET_UP_MESSAGE
        else:
            logger.exception("liveops: could not queue %s %s", label, pk)
            message = NOT_QUEUED_MESSAGE
        end_unqueued(label, pk, message, detail=f" ({type(exc).__name__})")


def dispatch_enqueued(sender: type[LiveOperation], pk: UUID | str, **kwargs: Any) -> None:
    """Receive ``operation_enqueued``: hand the operation to the runner."""
    dispatch(sender.live_label(), pk)


def _is_configuration_error(exc: Exception, runner: Runner | None) -> bool:
    if isinstance(exc, ImproperlyConfigured | ImportError):
        return True
    return runner is not None and isinstance(exc, runner.configuration_errors)


def load_runner_class() -> type[Runner]:
    """Import the configured runner class; raise ``RunnerUnavailable`` saying why it cannot."""
    path = get_settings().runner_path
    try:
        runner_class = import_string(path)
    except ImportError as exc:
        raise RunnerUnavailable(
            f"LIVEOPS['RUNNER'] is {path!r}, which cannot be imported: {exc}.",
            f"Use one of {', '.join(map(repr, RUNNER_ALIASES))}, or the dotted path "
            "(module.ClassName) of a liveops.runners.Runner subclass, and install the "
            "package it comes from.",
        ) from exc
    if not (isinstance(runner_class, type) and issubclass(runner_class, Runner)):
        raise RunnerUnavailable(
            f"LIVEOPS['RUNNER'] is {path!r}, which is not a liveops.runners.Runner subclass.",
            "Point it at a class that subclasses liveops.runners.Runner, or use one of "
            f"{', '.join(map(repr, RUNNER_ALIASES))}.",
        )
    return runner_class


def preload_runner() -> None:
    """Import the configured runner's module, which declares its task (``LiveOpsConfig.ready``).

    So a worker knows the task with no setting of its own: one set up as Celery's Django
    guide says imports no module of ours (``autodiscover_tasks()`` finds ``<app>.tasks``).
    A runner that cannot be loaded is left to the system checks and to the first enqueue,
    which say why.
    """
    try:
        load_runner_class()
    except Exception as exc:  # invalid settings, a missing package: reported where it matters
        logger.debug("liveops: the runner was not loaded at start-up: %s", exc)


@functools.cache
def get_runner() -> Runner:
    """Return the configured runner (one instance per process)."""
    return load_runner_class()()


def _reset_on_change(*, setting: str, **kwargs: object) -> None:
    if setting == "LIVEOPS":
        get_runner.cache_clear()


setting_changed.connect(_reset_on_change, dispatch_uid="liveops.runners.reset")
