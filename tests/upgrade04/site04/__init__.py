"""The project package; Celery's Django guide loads its app here."""

from .celery import app as celery_app

__all__ = ["celery_app"]
