"""The system check of operation tables whose migrations lack the package's columns.

A project that moves from django-liveops 0.4, or from an older release of this package,
keeps migrations made for the old abstract model. ``migrate`` then finds nothing to
apply and the first query fails (``column … does not exist``). This check reads the
project's migration files (no database) and names the fix: ``liveops.E022``.
"""

from __future__ import annotations

import sys
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error
from django.db.migrations.loader import MigrationLoader


def check_operation_migrations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report each operation model whose migrations lack a field of ``LiveOperation``."""
    from liveops.models import LiveOperation

    if sys.argv[1:2] == ["makemigrations"]:
        return []  # the command that fixes it runs the checks too; it must not be stopped
    models = [
        model
        for model in (apps.get_models() if app_configs is None else _models_of(app_configs))
        if issubclass(model, LiveOperation) and model._meta.managed and not model._meta.proxy
    ]
    if not models:
        return []
    loader = MigrationLoader(None, ignore_no_migrations=True)
    state = loader.project_state()
    ours = [f.name for f in LiveOperation._meta.get_fields() if f.concrete]
    errors: list[CheckMessage] = []
    for model in models:
        meta = model._meta
        migrated = state.models.get((meta.app_label, meta.model_name))
        if meta.app_label not in loader.migrated_apps or migrated is None:
            continue  # no migrations yet: Django's own makemigrations reminder covers it
        missing = [name for name in ours if name not in migrated.fields]
        if missing:
            errors.append(
                Error(
                    f"The migrations of {meta.label} lack the columns {', '.join(missing)} "
                    "of liveops.models.LiveOperation, so its table cannot be read (made "
                    "for django-liveops 0.4 or an older release?).",
                    hint=f"Run: python manage.py makemigrations {meta.app_label}, then "
                    "python manage.py migrate (and, coming from 0.4, python manage.py "
                    "liveops_upgrade; see docs/upgrading.md).",
                    obj=model,
                    id="liveops.E022",
                )
            )
    return errors


def _models_of(app_configs: Any) -> list[Any]:
    return [model for config in app_configs for model in config.get_models()]
