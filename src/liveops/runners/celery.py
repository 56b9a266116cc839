"""The celery runner: a Celery task that carries only the operation's type label and pk.

Workers know the task ``liveops.run_operation`` with no setting of their own: with
``"RUNNER": "celery"``, the liveops app imports this module when Django starts, which
Celery's Django fix-up does in every worker (``liveops.runners.preload_runner``).
The task name of django-liveops 0.4 is registered too, so that its messages still in a
queue at the upgrade run.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from django.core.checks import CheckMessage
from django.core.checks import Warning as CheckWarning
from django.db import InterfaceError, OperationalError

from liveops.runners import Runner, RunnerUnavailable

try:
    from celery import current_app, shared_task  # type: ignore[import-untyped]
    from celery.exceptions import NotRegistered  # type: ignore[import-untyped]
except ImportError as exc:
    raise RunnerUnavailable(
        f"LIVEOPS['RUNNER'] is 'celery', but Celery cannot be imported ({exc}).",
        'Install it: pip install "django-liveops[celery]".',
    ) from exc

from liveops._conf import get_settings
from liveops._execution import execute
from liveops.models import get_operation_model

__all__ = ["TASK_NAME", "CeleryRunner", "run_operation"]

logger = logging.getLogger("liveops")

#: The task's registered name; stable, so queued messages survive an upgrade.
TASK_NAME = "liveops.run_operation"
#: The name django-liveops 0.4 sent its task under, with (app_label, ModelName, pk).
LEGACY_TASK_NAME = "liveops.runner._celery_task"
#: The longest wait between two deliveries of a task that met an unreachable database.
RETRY_PAUSE_MAX = 30


# acks_late + reject_on_worker_lost: delivery is at least once. A message is acknowledged
# only after execute() returns, so a worker that dies before claiming the operation does
# not lose it; a redelivery after the claim (a crash mid-run, a visibility timeout, a
# duplicate) runs nothing, because execute() claims with a conditional UPDATE. The result
# lives on the operation's row, so Celery stores none. A database that cannot be reached
# (a restart, a fail-over) sends the task again, with a growing pause and no limit: left
# as failed, a task whose claim failed would leave its operation waiting forever, and one
# delivered again after its claim runs nothing.
DELIVERY: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "max_retries": None,
}


@shared_task(name=TASK_NAME, **DELIVERY)  # type: ignore[untyped-decorator]
def run_operation(task: Any, label: str, pk: str) -> None:
    """Claim and run operation ``pk`` of type ``label`` in this worker."""
    _execute(task, label, pk)


@shared_task(name=LEGACY_TASK_NAME, **DELIVERY)  # type: ignore[untyped-decorator]
def run_legacy_operation(task: Any, app_label: str, model_name: str, pk: str) -> None:
    """Run a message that django-liveops 0.4 queued: ``(app_label, ModelName, pk)``."""
    try:
        label = get_operation_model(f"{app_label}.{model_name}").live_label()
    except LookupError as exc:
        # Sending it again would meet the same models: log it and let the message go.
        logger.error(
            "liveops: dropped a task of django-liveops 0.4 (%s) for operation %s of %s.%s: %s "
            "Nothing ran, and the message is not retried.",
            LEGACY_TASK_NAME,
            pk,
            app_label,
            model_name,
            exc,
        )
        return
    _execute(task, label, pk)


def _execute(task: Any, label: str, pk: str) -> None:
    try:
        execute(label, pk)
    except (OperationalError, InterfaceError) as exc:
        raise task.retry(exc=exc, countdown=min(2**task.request.retries, RETRY_PAUSE_MAX)) from exc


class CeleryRunner(Runner):
    """Send each operation to a Celery worker, with ``LIVEOPS['CELERY_TASK_OPTIONS']``."""

    configuration_errors = (NotRegistered,)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        """Warn when this process has no Celery app of its own (see ``_check_app``)."""
        try:
            _check_app()
        except RunnerUnavailable as exc:
            return [CheckWarning(exc.problem, hint=exc.fix, id="liveops.W004")]
        return []

    def enqueue(self, label: str, pk: UUID | str) -> None:
        """Send the task ``liveops.run_operation(label, pk)`` to the broker."""
        _check_app()
        run_operation.apply_async(args=(label, str(pk)), **get_settings().CELERY_TASK_OPTIONS)


def _check_app() -> None:
    # Without a configured app Celery falls back to its "default" app and a local AMQP
    # broker: the message would go where no worker of this project listens.
    app: Any = current_app._get_current_object()
    if app.main == "default" and not app.fixups:
        raise RunnerUnavailable(
            "LIVEOPS['RUNNER'] is 'celery', but this process has no Celery app: Celery "
            "would send the operation to its fallback broker (amqp://localhost).",
            "Import your app in your project package's __init__.py "
            "('from .celery import app as celery_app'), as Celery's Django guide shows.",
        )
