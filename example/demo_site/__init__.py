try:
    from .celery import app as celery_app
except ModuleNotFoundError as exc:  # Celery is optional: only make demo-stack needs it
    if exc.name != "celery":
        raise
    celery_app = None
