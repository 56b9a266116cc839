"""Django app configuration for django-liveops."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class LiveOpsConfig(AppConfig):
    """Register the system checks."""

    name = "liveops"
    verbose_name = "Live operations"

    def ready(self) -> None:
        from liveops.checks import check_operation_models, check_settings
        from liveops.checks_redis import check_redis_layers

        checks.register(check_settings, "liveops")
        checks.register(check_operation_models, "liveops", checks.Tags.models)
        checks.register(check_redis_layers, "liveops")
