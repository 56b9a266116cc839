"""Django app configuration for django-liveops."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class LiveOpsConfig(AppConfig):
    """Register the system checks."""

    name = "liveops"
    verbose_name = "Live operations"

    def ready(self) -> None:
        from liveops.checks import check_settings

        checks.register(check_settings, "liveops")
