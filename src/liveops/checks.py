"""System checks: invalid settings fail ``manage.py check``, ``migrate`` and ``runserver``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage, Error

from liveops.conf import _raw_settings, validate

__all__ = ["check_settings"]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report each invalid ``LIVEOPS`` value, and a missing channel layer."""
    errors: list[CheckMessage] = [
        Error(problem.msg, hint=problem.hint, id=problem.id)
        for problem in validate(_raw_settings())
    ]
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    raw = _raw_settings()
    alias = raw.get("CHANNEL_LAYER", "default") if isinstance(raw, dict) else "default"
    if isinstance(alias, str) and alias not in layers:
        errors.append(
            Error(
                f"CHANNEL_LAYERS has no layer {alias!r}, so live updates cannot be sent.",
                hint=(
                    "Add CHANNEL_LAYERS = {'default': {'BACKEND': "
                    "'channels.layers.InMemoryChannelLayer'}} for one process, or "
                    "channels_redis for several (see docs/settings.md)."
                ),
                id="liveops.E009",
            )
        )
    if isinstance(raw, dict) and raw.get("PERSIST_PROGRESS") is True:
        errors.append(
            checks.Warning(
                "LIVEOPS['PERSIST_PROGRESS'] is True, but this version does not store live "
                "progress yet: viewers who join mid-run see the stages, then the next update.",
                hint="Remove the key, or keep it to get the behaviour when it ships.",
                id="liveops.W001",
            )
        )
    return errors
