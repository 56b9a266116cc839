from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo's operation types and pages."""

    name = "demo"
    verbose_name = "django-liveops demo"
