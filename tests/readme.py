"""The README's code blocks, each with the marker that says how a test runs it.

Every fenced block of README.md is preceded by an invisible comment on the line
just before its fence::

    <!-- readme-test: ACTION [PATH] -->

``ACTION`` is one of ACTIONS. ``make-targets`` blocks name Makefile targets
(tests/test_packaging.py checks that they exist); every other block is applied by
``Guide`` to a fresh ``django-admin startproject`` site, in README order
(tests/browser/test_readme_guide.py). ``parse`` refuses a block without a marker and
a marker without a block, so neither can slip past the tests.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Action → whether it takes a path (relative to the current directory of the guide).
ACTIONS = {"make-targets": False, "sh": False, "append": True, "write": True}

_MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")


class ReadmeError(ValueError):
    """The README's blocks and markers do not pair up."""


@dataclass(frozen=True)
class Block:
    """One fenced block: what to do with it, and its text without the fence's indent."""

    action: str
    path: str | None
    lang: str
    text: str
    line: int  # of the opening fence, 1-based

    def __str__(self) -> str:
        target = f" {self.path}" if self.path else ""
        return f"README.md:{self.line} ({self.action}{target})"


def _marker(line: str, number: int) -> tuple[str, str | None]:
    words = _MARKER.match(line)["body"].split()  # type: ignore[index]
    if not words or words[0] not in ACTIONS:
        raise ReadmeError(
            f"line {number}: unknown marker {line.strip()!r}; the actions are "
            f"{', '.join(sorted(ACTIONS))}"
        )
    takes_path = ACTIONS[words[0]]
    if len(words) != (2 if takes_path else 1):
        wanted = "one path" if takes_path else "no argument"
        raise ReadmeError(f"line {number}: {words[0]!r} takes {wanted}: {line.strip()!r}")
    return words[0], (words[1] if takes_path else None)


def parse(text: str) -> list[Block]:
    """Return the blocks of a README; raise ReadmeError for an unmarked block or a lone marker."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: tuple[str, str | None, int] | None = None
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        fence = _FENCE.match(line)
        if _MARKER.match(line):
            if pending is not None:
                raise ReadmeError(f"line {pending[2]}: marker without a code block after it")
            pending = (*_marker(line, number), number)
        elif fence:
            if pending is None or pending[2] != number - 1:
                raise ReadmeError(
                    f"line {number}: code block without a '<!-- readme-test: … -->' marker "
                    "on the line before it"
                )
            indent, closing = fence["indent"], fence["fence"]
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != closing:
                body.append(lines[i].removeprefix(indent))
                i += 1
            if i == len(lines):
                raise ReadmeError(f"line {number}: code block is never closed")
            action, path, _ = pending
            blocks.append(Block(action, path, fence["lang"], "\n".join(body) + "\n", number))
            pending = None
        elif pending is not None and line.strip():
            raise ReadmeError(f"line {pending[2]}: marker without a code block after it")
        i += 1
    if pending is not None:
        raise ReadmeError(f"line {pending[2]}: marker without a code block after it")
    return blocks


def readme_blocks() -> list[Block]:
    """Return the blocks of this repository's README.md."""
    return parse(README.read_text())


def commands(block: Block) -> list[str]:
    """Return the command lines of a shell block (blank lines and comments dropped)."""
    lines = (line.strip() for line in block.text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@dataclass
class Guide:
    """Apply the README's blocks to a directory as a reader would, one at a time.

    Shell lines run with bash in the current directory (``cd`` changes it); a line
    that starts a server (``uvicorn …``, ``manage.py runserver``) goes to ``serve``
    instead, since it never returns; ``createsuperuser`` gets ``--noinput`` (it reads
    DJANGO_SUPERUSER_* from ``env``). ``write`` and ``append`` change files relative to
    the current directory.
    """

    cwd: Path
    env: dict[str, str]
    serve: Callable[[list[str], Path], None]
    timeout: float = 300.0
    #: What was done, one line per step, for a failure's message.
    done: list[str] = field(default_factory=list)

    def apply(self, block: Block) -> None:
        """Do what ``block`` says; raise with the command's output when a command fails."""
        if block.action == "sh":
            for line in commands(block):
                self._run(line)
        elif block.action in {"write", "append"}:
            assert block.path is not None
            target = self.cwd / block.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if block.action == "write":
                target.write_text(block.text)
            else:
                with target.open("a") as out:
                    out.write("\n" + block.text)
            self.done.append(f"{block.action} {target}")
        else:
            raise ReadmeError(f"{block}: Guide does not apply {block.action!r} blocks")

    def _run(self, line: str) -> None:
        argv = shlex.split(line)
        if argv[0] == "cd" and len(argv) == 2:
            self.cwd = (self.cwd / argv[1]).resolve()
            self.done.append(f"cd {self.cwd}")
            return
        if argv[0] in {"uvicorn", "daphne"} or argv[1:3] == ["manage.py", "runserver"]:
            self.done.append(f"serve {line}")
            self.serve(argv, self.cwd)
            return
        if "createsuperuser" in argv:
            line += " --noinput"
        result = subprocess.run(
            ["bash", "-c", line],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        self.done.append(f"$ {line}  (exit {result.returncode})")
        if result.returncode:
            raise AssertionError(
                f"{line!r} failed in {self.cwd} with {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
