"""The tasks runner: Django's task framework, so any task backend runs operations.

``django.tasks`` on Django 6.0 and later; the ``django-tasks`` backport on Django 5.2.
"""

from __future__ import annotations

from uuid import UUID

from django.core.exceptions import ImproperlyConfigured

try:
    from django.tasks import task
    from django.tasks.exceptions import TaskException
except ImportError:  # Django 5.2
    try:
        from django_tasks import task  # type: ignore[import-not-found,no-redef,unused-ignore]
        from django_tasks.exceptions import (  # type: ignore[import-not-found,no-redef,unused-ignore]
            TaskException,
        )
    except ImportError as exc:
        raise ImproperlyConfigured(
            "LIVEOPS['RUNNER'] is 'tasks', but Django's task framework is missing: it needs "
            "Django 6.0 or later, or on Django 5.2 the django-tasks backport: "
            f"pip install django-liveops[tasks] ({exc})."
        ) from exc

from liveops.conf import get_settings
from liveops.execution import execute
from liveops.runners import Runner

__all__ = ["TasksRunner", "run_operation"]

# Declared on the default backend and queue, like any @task; TASKS_OPTIONS retargets it
# per call with Task.using(). Workers import it by its path, liveops.runners.tasks.run_operation.
try:

    @task
    def run_operation(label: str, pk: str) -> None:
        """Claim and run operation ``pk`` of type ``label`` in this worker."""
        execute(label, pk)

except TaskException as exc:  # InvalidTask; a missing backend raises ImproperlyConfigured
    raise ImproperlyConfigured(
        "LIVEOPS['RUNNER'] is 'tasks', but the task liveops.runners.tasks.run_operation "
        f"cannot be declared on TASKS['default'], queue 'default': {exc} Let that backend "
        "take the 'default' queue (e.g. QUEUES: ['default', 'liveops'], or [] for any queue); "
        "LIVEOPS['TASKS_OPTIONS'] then picks the queue and backend each operation goes to."
    ) from exc


class TasksRunner(Runner):
    """Enqueue each operation as a ``django.tasks`` task, with ``LIVEOPS['TASKS_OPTIONS']``."""

    def enqueue(self, label: str, pk: UUID | str) -> None:
        """Enqueue ``run_operation(label, pk)`` on the configured backend and queue."""
        run_operation.using(**get_settings().TASKS_OPTIONS).enqueue(label, str(pk))
