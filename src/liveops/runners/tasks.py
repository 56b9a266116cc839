"""The tasks runner: Django's task framework, so any task backend runs operations.

``django.tasks`` on Django 6.0 and later; the ``django-tasks`` backport on Django 5.2.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import ImproperlyConfigured

from liveops.runners import Runner, RunnerUnavailable

try:
    from django.tasks import task
    from django.tasks.exceptions import InvalidTask, TaskException
except ImportError:  # Django 5.2
    try:
        from django_tasks import task  # type: ignore[import-not-found,no-redef,unused-ignore]
        from django_tasks.exceptions import (  # type: ignore[import-not-found,no-redef,unused-ignore]
            InvalidTaskError as InvalidTask,  # the backport's name of the same error
        )
        from django_tasks.exceptions import (  # type: ignore[import-not-found,no-redef,unused-ignore]
            TaskException,
        )
    except ImportError as exc:
        raise RunnerUnavailable(
            "LIVEOPS['RUNNER'] is 'tasks', but Django's task framework is missing: it needs "
            f"Django 6.0 or later, or on Django 5.2 the django-tasks backport ({exc}).",
            'Install the backport: pip install "django-liveops[tasks]", or upgrade Django.',
        ) from exc

from liveops._conf import get_settings
from liveops._execution import execute

__all__ = ["TasksRunner", "run_operation"]

# Declared on the default backend and queue, like any @task; TASKS_OPTIONS retargets it
# per call with Task.using(). Workers import it by its path, liveops.runners.tasks.run_operation.
try:

    @task
    def run_operation(label: str, pk: str) -> None:
        """Claim and run operation ``pk`` of type ``label`` in this worker."""
        execute(label, pk)

except (TaskException, ImproperlyConfigured) as exc:  # InvalidTask; no TASKS['default']
    raise RunnerUnavailable(
        "LIVEOPS['RUNNER'] is 'tasks', but the task liveops.runners.tasks.run_operation "
        f"cannot be declared on TASKS['default'], queue 'default': {exc}",
        "Give TASKS a 'default' backend that takes the 'default' queue (e.g. QUEUES: "
        "['default', 'liveops'], or [] for any queue); LIVEOPS['TASKS_OPTIONS'] then picks "
        "the queue and backend each operation goes to.",
    ) from exc

#: Backends that run each task at once, inside the request that enqueues it.
_INLINE_BACKENDS = frozenset({"ImmediateBackend"})


class TasksRunner(Runner):
    """Enqueue each operation as a ``django.tasks`` task, with ``LIVEOPS['TASKS_OPTIONS']``."""

    configuration_errors = (InvalidTask,)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        """Report ``TASKS_OPTIONS`` the backend refuses, and a backend that runs inline."""
        options = get_settings().TASKS_OPTIONS
        try:
            configured: Any = run_operation.using(**options)
            backend = configured.get_backend()
        except (TypeError, TaskException, ImproperlyConfigured) as exc:
            return [
                Error(
                    f"LIVEOPS['TASKS_OPTIONS'] is {options!r}, so every operation would be "
                    f"refused by TASKS: {exc}",
                    hint="Use the keyword arguments of Task.using() (queue_name, backend, "
                    "priority) with a backend alias of TASKS and a queue in its QUEUES "
                    "(QUEUES: [] takes any queue).",
                    id="liveops.E017",
                )
            ]
        if type(backend).__name__ in _INLINE_BACKENDS:
            return [
                CheckWarning(
                    f"LIVEOPS['RUNNER'] is 'tasks' and TASKS[{configured.backend!r}] is "
                    f"{type(backend).__name__}, which runs each operation inside the request "
                    "that starts it: the live page only opens once the operation has ended.",
                    hint="Give TASKS a backend with a worker, e.g. {'default': {'BACKEND': "
                    "'django_tasks_db.DatabaseBackend'}} (pip install django-tasks-db; run "
                    "manage.py db_worker), or use LIVEOPS['RUNNER'] = 'thread'.",
                    id="liveops.W005",
                )
            ]
        return []

    def enqueue(self, label: str, pk: UUID | str) -> None:
        """Enqueue ``run_operation(label, pk)`` on the configured backend and queue."""
        run_operation.using(**get_settings().TASKS_OPTIONS).enqueue(label, str(pk))
