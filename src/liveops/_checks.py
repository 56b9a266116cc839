"""System checks: invalid settings fail ``manage.py check``, ``migrate`` and ``runserver``."""

from __future__ import annotations

import re
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning

from liveops._conf import (
    deprecated_settings,
    get_settings,
    missing_layer_problem,
    raw_settings,
    validate,
)
from liveops._state import ALL_REGIONS

#: A custom region's name goes into element ids and class names.
_REGION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
#: Names the page uses already: the built-in regions and the client's own.
_RESERVED_REGIONS = frozenset(ALL_REGIONS) | {"connection", "row"}


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report each invalid ``LIVEOPS`` value, a missing channel layer, and 0.4 spellings."""
    errors: list[CheckMessage] = [
        Error(problem.msg, hint=problem.hint, id=problem.id) for problem in validate(raw_settings())
    ]
    errors += [
        CheckWarning(problem.msg, hint=problem.hint, id=problem.id)
        for problem in deprecated_settings(raw_settings())
    ]
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    raw = raw_settings()
    alias = raw.get("CHANNEL_LAYER", "default") if isinstance(raw, dict) else "default"
    if isinstance(alias, str) and alias not in layers:
        problem = missing_layer_problem(alias)
        errors.append(Error(problem.msg, hint=problem.hint, id=problem.id))
    return errors


def check_runner(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report a runner that cannot be loaded, then what the runner itself finds missing."""
    from liveops.runners import RunnerUnavailable, load_runner_class

    if validate(raw_settings()):
        return []  # check_settings reports those, and the runner is not known
    try:
        runner_class = load_runner_class()
    except RunnerUnavailable as exc:
        return [Error(exc.problem, hint=exc.fix, id="liveops.E016")]
    except Exception as exc:  # the runner's own module failed to import
        path = get_settings().runner_path
        return [
            Error(
                f"LIVEOPS['RUNNER'] is {path!r}, whose module failed to import: "
                f"{type(exc).__name__}: {exc}",
                hint=f"Fix that error; python -c 'import {path.rpartition('.')[0]}' "
                "shows its traceback.",
                id="liveops.E016",
            )
        ]
    return runner_class.check()


def check_operation_models(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report custom region names (``extra_regions``) the page could not tell apart, and a
    ``persist_progress`` that is not None, True or False."""
    from liveops.models import LiveOperation

    errors: list[CheckMessage] = []
    if app_configs is None:
        models = apps.get_models()
    else:
        models = [model for config in app_configs for model in config.get_models()]
    for model in models:
        if not issubclass(model, LiveOperation):
            continue
        names = list(model.extra_regions)
        for name in names:
            problem = _region_name_problem(name, names)
            if problem:
                errors.append(
                    Error(
                        f"{model.__name__}.extra_regions: {name!r} {problem}.",
                        hint=(
                            "Use distinct names of lower-case letters, digits, '-' and '_' "
                            f"(up to 40), other than {', '.join(sorted(_RESERVED_REGIONS))}."
                        ),
                        obj=model,
                        id="liveops.E015",
                    )
                )
        if not (model.persist_progress is None or isinstance(model.persist_progress, bool)):
            errors.append(
                Error(
                    f"{model.__name__}.persist_progress is {model.persist_progress!r}; it must "
                    "be None, True or False.",
                    hint="Use None (follow LIVEOPS['PERSIST_PROGRESS']), True (store this "
                    "type's live progress) or False (store only its end).",
                    obj=model,
                    id="liveops.E021",
                )
            )
    return errors


def _region_name_problem(name: object, names: list[Any]) -> str:
    if not isinstance(name, str) or not _REGION_NAME.match(name):
        return "is not a region name"
    if name in _RESERVED_REGIONS:
        return "is a built-in region"
    if names.count(name) > 1:
        return "is listed twice"
    return ""
