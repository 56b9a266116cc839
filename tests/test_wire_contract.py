"""The wire names: one table on each side, and no other spelling of them in the package.

``liveops._protocol.ATTRIBUTES`` is the server's table of every ``data-liveop*``
attribute; ``ATTR`` in liveops.js is the client's. The client's table must equal the
server's without the names that only the server and the stylesheets use
(``SERVER_ONLY`` below, declared here so that a new server name the client ignores is
a decision, not an accident): a key or a spelling that differs, a name one side gains,
or a name the client starts to read without its table saying so fails the test.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from liveops._protocol import ATTRIBUTES

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "liveops"
LIVEOPS_JS = PACKAGE / "static" / "liveops" / "liveops.js"
#: The files a wire name can be written in (the stylesheet too: it selects by them).
SCANNED = (".py", ".html", ".js", ".css")

#: Rendered for the stylesheets and for people; liveops.js never reads or writes them.
SERVER_ONLY = frozenset({"dev_notice", "label", "phase"})

# Anything that starts like a wire name, so "data-liveop-" + name and typos count too.
_NAME = re.compile(r"data-liveop[a-z-]*")
_TABLE = re.compile(r"const ATTR = Object\.freeze\(\{\n(?P<body>.*?)\n\s*\}\);", re.DOTALL)
_ENTRY = re.compile(r'(?P<key>[a-z_]+): "(?P<name>[^"]*)",')


def js_source() -> str:
    return LIVEOPS_JS.read_text(encoding="utf-8")


def js_table(source: str) -> dict[str, str]:
    """Parse the ``ATTR`` table of liveops.js: one ``key: "name",`` a line, or a comment."""
    found = _TABLE.search(source)
    assert found, "liveops.js has no `const ATTR = Object.freeze({ ... });` table"
    table: dict[str, str] = {}
    for line in found["body"].splitlines():
        line = line.strip()
        if line.startswith("//"):
            continue
        entry = _ENTRY.fullmatch(line)
        assert entry, f"cannot read {line!r} in the ATTR table of liveops.js"
        assert entry["key"] not in table, f"ATTR.{entry['key']} is defined twice"
        table[entry["key"]] = entry["name"]
    return table


def test_the_python_table_is_well_formed() -> None:
    assert all(re.fullmatch(r"data-liveop(-[a-z]+)*", name) for name in ATTRIBUTES.values())
    assert len(set(ATTRIBUTES.values())) == len(ATTRIBUTES), "a name under two keys"
    assert SERVER_ONLY.issubset(ATTRIBUTES)
    with pytest.raises(TypeError):
        ATTRIBUTES["new"] = "data-liveop-new"  # type: ignore[index]


def test_the_client_table_is_the_server_table_less_the_server_only_names() -> None:
    client_names = {k: v for k, v in ATTRIBUTES.items() if k not in SERVER_ONLY}
    assert js_table(js_source()) == client_names


def wire_names_in_the_package() -> list[tuple[str, str]]:
    """Return every (file, name) spelled in the package's source, templates and assets."""
    found = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in SCANNED and path.is_file():
            text = path.read_text(encoding="utf-8")
            relative = str(path.relative_to(PACKAGE))
            found += [(relative, name) for name in _NAME.findall(text)]
    return found


def test_every_name_in_the_package_is_in_the_table() -> None:
    found = wire_names_in_the_package()
    assert any(path.endswith(".html") for path, _ in found)  # the scan does see templates
    unknown = sorted({(path, name) for path, name in found if name not in ATTRIBUTES.values()})
    assert unknown == [], "spell a wire name through liveops._protocol.ATTRIBUTES (or add it)"


def test_liveops_js_spells_each_name_once_in_its_table() -> None:
    source = js_source()
    table = js_table(source)
    assert Counter(_NAME.findall(source)) == Counter(table.values())
    outside = _TABLE.sub("", source)
    assert _NAME.findall(outside) == [], "use ATTR.<key> instead of the name"
