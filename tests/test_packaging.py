"""The package's metadata and its README: what PyPI shows and what a reader copies.

The README's code blocks are run elsewhere (tests/readme.py says where); here: the
markers pair up with the blocks, the ``make`` commands name real targets, and the
README carries nothing that breaks once PyPI shows it outside the repository.
"""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest
from packaging.version import Version

from tests.readme import README, ROOT, ReadmeError, commands, parse, readme_blocks

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_readme_block_has_a_marker_and_every_marker_a_block() -> None:
    blocks = readme_blocks()
    assert {block.action for block in blocks} == {"make-targets", "sh", "append", "write"}
    # The guide writes each file once: a second block for the same path would hide one.
    written = [block.path for block in blocks if block.action == "write"]
    assert len(written) == len(set(written)), written


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Intro\n\n```sh\nls\n```\n", "code block without"),
        ("<!-- readme-test: sh -->\n\nText between.\n```sh\nls\n```\n", "marker without"),
        ("<!-- readme-test: sh -->\n", "marker without"),
        ("<!-- readme-test: sh -->\n<!-- readme-test: sh -->\n```sh\nls\n```\n", "marker without"),
        ("<!-- readme-test: run -->\n```sh\nls\n```\n", "unknown marker"),
        ("<!-- readme-test: write -->\n```sh\nls\n```\n", "takes one path"),
        ("<!-- readme-test: sh -->\n```sh\nls\n", "never closed"),
    ],
)
def test_parse_refuses_a_block_without_marker_and_a_marker_without_block(
    text: str, message: str
) -> None:
    with pytest.raises(ReadmeError, match=message):
        parse(text)


def test_parse_keeps_an_indented_block_without_its_indent() -> None:
    text = (
        "1. Step\n\n   <!-- readme-test: write a/b.py -->\n"
        "   ```python\n   x = 1\n\n   y = 2\n   ```\n"
    )
    [block] = parse(text)
    assert (block.action, block.path, block.lang, block.text) == (
        "write",
        "a/b.py",
        "python",
        "x = 1\n\ny = 2\n",
    )


def test_the_make_commands_of_the_readme_are_makefile_targets() -> None:
    # Running them would recurse (make test) or serve forever (make demo); the browser
    # suite serves the demo as make demo does (tests/browser/conftest.py, fixture site).
    [block] = [b for b in readme_blocks() if b.action == "make-targets"]
    makefile = (ROOT / "Makefile").read_text()
    targets = [line.split()[1] for line in commands(block)]
    assert targets == ["demo", "test"]
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_make_demo_serves_on_port_and_port_can_be_changed() -> None:
    def dry_run(*args: str) -> str:
        result = subprocess.run(
            ["make", "-n", "demo", *args], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return result.stdout

    assert "--port 8000" in dry_run()
    on_8001 = dry_run("PORT=8001")
    assert "uvicorn demo_site.asgi:application --host 127.0.0.1 --port 8001" in on_8001
    assert "demo_user --port 8001" in on_8001  # which prints the address to open
    assert "make demo PORT=8001" in README.read_text()


def _prose(text: str) -> str:
    """The README without its code: fenced blocks and inline code spans removed."""
    text = re.sub(r"^(\s*)(`{3,}).*?^\1\2\s*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]+`", "", text)


def test_readme_has_no_link_that_breaks_on_pypi() -> None:
    # PyPI shows the README without the repository around it: a relative link 404s.
    prose = _prose(README.read_text())
    targets = re.findall(r"\]\(([^)\s]+)", prose) + re.findall(r'\b(?:href|src)="([^"]*)"', prose)
    relative = [t for t in targets if not re.match(r"(https?|mailto):", t)]
    assert not relative, f"relative links in README.md: {relative}"


def test_the_files_the_readme_names_exist() -> None:
    named = set(re.findall(r"\b((?:docs/)?[\w-]+\.md)\b", _prose(README.read_text())))
    missing = sorted(name for name in named if not (ROOT / name).is_file())
    assert not missing, f"README.md names files that are not there: {missing}"


def test_the_version_replaces_the_other_django_liveops() -> None:
    # django-liveops 0.4.x on PyPI uses our distribution and import name: pip must see
    # ours as the upgrade.
    version = Version(PYPROJECT["project"]["version"])
    assert version > Version("0.4.1")
    assert version.is_prerelease
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(str(version))} \(unreleased\)$", changelog, re.MULTILINE)


def test_metadata_names_the_licence_and_brings_a_websocket_server() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert "Copyright (c) 2026 django-liveops contributors" in (ROOT / "LICENSE").read_text()
    # uvicorn alone has no WebSocket implementation; [standard] brings websockets.
    assert project["optional-dependencies"]["server"] == ["uvicorn[standard]>=0.32"]
    assert "django-liveops[server]>=1.0.0a1" in README.read_text()
