"""docs/api.md and the public ``__all__``s agree: what users may rely on is written down.

A public module is one whose dotted path has no part starting with an underscore; the
engine lives in the underscore modules. Every public module with an ``__all__`` has a
section in docs/api.md listing exactly its ``__all__``, and every name listed exists.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import liveops

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
#: Public modules that are Django's entry points, not an API to import from.
ENTRY_POINTS = ("liveops.apps", "liveops.urls", "liveops.management", "liveops.templatetags")


def documented() -> dict[str, list[str]]:
    """Return each module section of docs/api.md with the names its list gives."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in API_DOC.read_text().splitlines():
        if heading := re.fullmatch(r"## (liveops[\w.]*)", line):
            current = sections.setdefault(heading[1], [])
        elif current is not None and (item := re.match(r"- `(\w+)` — \S", line)):
            current.append(item[1])
    return sections


def public_modules() -> dict[str, list[str]]:
    """Return every public module of the package that has an ``__all__``, with it."""
    found = {}
    for info in pkgutil.walk_packages(liveops.__path__, "liveops."):
        name = info.name
        if any(part.startswith("_") for part in name.split(".")):
            continue
        if name.startswith(ENTRY_POINTS) or ".migrations" in name:
            continue
        module = importlib.import_module(name)
        if hasattr(module, "__all__"):
            found[name] = list(module.__all__)
    return found


def test_every_public_module_is_in_the_reference_and_no_other() -> None:
    assert sorted(documented()) == sorted(public_modules())


@pytest.mark.parametrize("module", sorted(public_modules()))
def test_the_reference_lists_exactly_the_public_names(module: str) -> None:
    listed = documented().get(module, [])
    assert len(listed) == len(set(listed)), f"{module}: a name is listed twice in docs/api.md"
    assert sorted(listed) == sorted(public_modules()[module])
    imported = importlib.import_module(module)
    for name in listed:
        assert hasattr(imported, name), f"{module}.{name} is in docs/api.md but does not exist"
