"""Django app configuration for django-liveops."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class LiveOpsConfig(AppConfig):
    """Register the system checks and the receivers of the operations' signals."""

    name = "liveops"
    verbose_name = "Live operations"

    def ready(self) -> None:
        from liveops import _receivers as receivers
        from liveops._checks import check_operation_models, check_runner, check_settings
        from liveops._checks_migrations import check_operation_migrations
        from liveops._checks_redis import check_redis_layers
        from liveops._checks_server import (
            check_asgi_application,
            check_runserver,
            check_uvicorn_websockets,
        )
        from liveops.runners import dispatch_enqueued, preload_runner
        from liveops.signals import operation_changed, operation_enqueued, operation_waiting

        # In this order: a list shows the operation before an eager runner ends it.
        operation_enqueued.connect(receivers.publish_enqueued_row, dispatch_uid="liveops.lists")
        operation_enqueued.connect(dispatch_enqueued, dispatch_uid="liveops.runners")
        # The page first, then the lists (as each run publishes its own end).
        operation_changed.connect(receivers.publish_changed_regions, dispatch_uid="liveops.pages")
        operation_changed.connect(receivers.publish_changed_row, dispatch_uid="liveops.lists")
        operation_waiting.connect(receivers.publish_waiting, dispatch_uid="liveops.waiting")

        preload_runner()  # a worker then knows the runner's task, whatever started it

        checks.register(check_settings, "liveops")
        checks.register(check_runner, "liveops")
        checks.register(check_operation_models, "liveops", checks.Tags.models)
        checks.register(check_operation_migrations, "liveops", checks.Tags.models)
        checks.register(check_redis_layers, "liveops")
        checks.register(check_asgi_application, "liveops", checks.Tags.async_support)
        checks.register(check_uvicorn_websockets, "liveops", checks.Tags.async_support)
        # Only at runserver's start, which is no deployment: nothing to add to --deploy.
        checks.register(check_runserver, "liveops")
