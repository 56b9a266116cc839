"""The vendored htmx is one file whose name tells its real version."""

from __future__ import annotations

import re
from pathlib import Path

VENDOR = (
    Path(__file__).resolve().parent.parent / "src" / "liveops" / "static" / "liveops" / "vendor"
)
FILE_NAME = re.compile(r"^htmx-(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\.min\.js$")
# htmx 2 minified holds `version:"2.0.11"`; htmx 4 holds `this.version="4.0.1"`.
VERSION_IN_FILE = re.compile(r"""\bversion\s*[:=]\s*["'](?P<version>\d+\.\d+\.\d+[^"']*)["']""")


def vendored_htmx() -> Path:
    files = sorted(VENDOR.glob("htmx-*.min.js"))
    assert len(files) == 1, (
        f"expected exactly one htmx-*.min.js in {VENDOR}, found {[f.name for f in files]}; "
        "run scripts/refresh_htmx.py"
    )
    return files[0]


def test_exactly_one_vendored_htmx_named_with_its_version() -> None:
    path = vendored_htmx()
    assert FILE_NAME.match(path.name), f"{path.name!r} does not look like htmx-<x.y.z>.min.js"


def test_file_name_version_matches_version_inside_file() -> None:
    path = vendored_htmx()
    name_match = FILE_NAME.match(path.name)
    assert name_match is not None
    found = {m["version"] for m in VERSION_IN_FILE.finditer(path.read_text(encoding="utf-8"))}
    assert found == {name_match["version"]}, (
        f"{path.name} holds version string(s) {sorted(found)}; "
        "rename it or run scripts/refresh_htmx.py"
    )


def test_vendored_htmx_is_the_minified_global_build() -> None:
    text = vendored_htmx().read_text(encoding="utf-8")
    # The global build defines `var htmx`, which liveops.js and templates rely on;
    # the ESM/CJS builds would not.
    assert text.startswith("var htmx=")
    assert "\n" not in text.strip(), "expected the minified build (one line)"
