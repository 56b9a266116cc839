"""The peer package, django-liveops 0.4.1 from PyPI, in a venv of its own outside the repo.

    .venv/bin/python benchmarks/_peer.py        # create (or reuse) it and print its python

The venv lives at ``$LIVEOPS_PEER_VENV`` (default ``/tmp/liveops-peer-venv``) and holds
the peer with whatever Django, channels and channels-redis pip resolves for it. Nothing
of the peer is copied into this repository: the benchmarks drive it through its
documented API from a throwaway project generated at run time in a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PEER = "django-liveops[redis]==0.4.1"
VENV = Path(os.environ.get("LIVEOPS_PEER_VENV", "/tmp/liveops-peer-venv"))
#: Written last: a venv without it is incomplete (an interrupted install) and is rebuilt.
MARKER = VENV / ".liveops-peer-ready"


def base_python() -> str:
    """Return an interpreter to build the venv from: the one this venv was built from."""
    candidates = [
        Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}",
        Path(sys.base_prefix) / "bin" / "python3",
        Path(sys.executable),
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return sys.executable


def python() -> Path:
    """Return the peer venv's python, creating the venv and installing the peer if needed."""
    exe = VENV / "bin" / "python"
    if MARKER.exists() and MARKER.read_text().strip() == PEER and exe.exists():
        return exe
    print(f"# installing {PEER} into {VENV} (once, ~1 min)", file=sys.stderr, flush=True)
    subprocess.run([base_python(), "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(exe), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PEER],
        check=True,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    MARKER.write_text(PEER + "\n")
    return exe


def versions() -> str:
    """Return the versions of what the peer runs on, as one line."""
    code = (
        "import importlib.metadata as m\n"
        "names = ['django-liveops', 'Django', 'channels', 'channels-redis', 'redis']\n"
        "print(', '.join(f'{n} {m.version(n)}' for n in names))\n"
    )
    out = subprocess.run([str(python()), "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.strip()


if __name__ == "__main__":
    print(python())
    print(versions())
