"""Runners decide where ``run()`` executes: inline, in a thread pool, or in a worker."""

from __future__ import annotations

import functools
import logging
from uuid import UUID

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from liveops.conf import get_settings

__all__ = ["NOT_QUEUED_MESSAGE", "Runner", "dispatch", "get_runner"]

logger = logging.getLogger("liveops")

NOT_QUEUED_MESSAGE = "This operation could not be queued; please try again later."


class Runner:
    """Base class of runners: ``enqueue()`` starts ``liveops.execution.execute(label, pk)``."""

    def enqueue(self, label: str, pk: UUID | str) -> None:
        """Start running operation ``pk`` of type ``label`` (called after commit)."""
        raise NotImplementedError


def dispatch(label: str, pk: UUID | str) -> None:
    """Hand the operation to the runner; if that fails, end it as failed rather than queued.

    Called after the creating transaction committed, so raising would leave an
    operation that no worker will ever run, shown as "waiting to start" forever.
    """
    try:
        get_runner().enqueue(label, pk)
    except Exception as exc:
        logger.exception("liveops: could not queue %s %s", label, pk)
        from liveops.liveness import end_unqueued

        end_unqueued(label, pk, f"{NOT_QUEUED_MESSAGE} ({type(exc).__name__})")


@functools.cache
def get_runner() -> Runner:
    """Return the configured runner (one instance per process)."""
    path = get_settings().runner_path
    try:
        runner_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"LIVEOPS['RUNNER'] is {path!r}, which cannot be imported: {exc}. "
            "Use 'eager', 'thread', or the dotted path of a Runner subclass."
        ) from exc
    if not (isinstance(runner_class, type) and issubclass(runner_class, Runner)):
        raise ImproperlyConfigured(
            f"LIVEOPS['RUNNER'] is {path!r}, which is not a liveops.runners.Runner subclass."
        )
    return runner_class()


def _reset_on_change(*, setting: str, **kwargs: object) -> None:
    if setting == "LIVEOPS":
        get_runner.cache_clear()


setting_changed.connect(_reset_on_change, dispatch_uid="liveops.runners.reset")
