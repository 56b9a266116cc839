#!/usr/bin/env python3
"""Replace the vendored htmx with the newest release of one major version from npm.

Usage: scripts/refresh_htmx.py [MAJOR]

MAJOR defaults to the major version of the file vendored now (2 if there is none).
Needs `npm` on PATH; uses only the standard library. The file lands in
src/liveops/static/liveops/vendor/htmx-<version>.min.js and any other
htmx-*.min.js there is removed, so tests/test_vendored_htmx.py keeps passing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "src" / "liveops" / "static" / "liveops" / "vendor"
FILE_NAME = re.compile(r"^htmx-(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\.min\.js$")
# htmx 2 minified holds `version:"2.0.11"`, htmx 4 holds `this.version="4.0.1"`.
VERSION_IN_FILE = re.compile(r"""\bversion\s*[:=]\s*["'](?P<version>\d+\.\d+\.\d+[^"']*)["']""")


def vendored() -> list[Path]:
    """Return the vendored htmx files (normally exactly one)."""
    return sorted(p for p in VENDOR.glob("htmx-*.min.js") if FILE_NAME.match(p.name))


def default_major() -> int:
    """Return the major version vendored now, or 2 when nothing is vendored."""
    for path in vendored():
        match = FILE_NAME.match(path.name)
        assert match is not None
        return int(match["version"].split(".")[0])
    return 2


def npm_pack(major: int, workdir: Path) -> Path:
    """Download htmx.org@<major> from npm into workdir and return the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("refresh_htmx: `npm` is not on PATH; install Node.js (which ships npm) and retry.")
    spec = f"htmx.org@{major}"
    result = subprocess.run(
        [npm, "pack", spec, "--json", "--silent"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"refresh_htmx: `npm pack {spec}` failed:\n{result.stderr.strip()}")
    filename = str(json.loads(result.stdout)[0]["filename"])
    return workdir / filename


def read_release(tarball: Path) -> tuple[str, bytes]:
    """Return (version, htmx.min.js bytes) from an htmx.org npm tarball."""
    with tarfile.open(tarball) as tar:
        manifest = tar.extractfile("package/package.json")
        minified = tar.extractfile("package/dist/htmx.min.js")
        if manifest is None or minified is None:
            sys.exit(f"refresh_htmx: {tarball.name} has no package.json or dist/htmx.min.js.")
        version = str(json.load(manifest)["version"])
        content = minified.read()
    match = VERSION_IN_FILE.search(content.decode("utf-8", errors="replace"))
    if match is None or match["version"] != version:
        found = match["version"] if match else "no version string"
        sys.exit(f"refresh_htmx: package.json says {version!r} but htmx.min.js holds {found!r}.")
    return version, content


def main() -> None:
    """Refresh the vendored htmx and print what changed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("major", nargs="?", type=int, default=None, help="htmx major version")
    args = parser.parse_args()
    major = args.major if args.major is not None else default_major()

    with tempfile.TemporaryDirectory(prefix="refresh-htmx-") as tmp:
        version, content = read_release(npm_pack(major, Path(tmp)))

    VENDOR.mkdir(parents=True, exist_ok=True)
    target = VENDOR / f"htmx-{version}.min.js"
    old_files = vendored()
    if old_files == [target] and target.read_bytes() == content:
        print(f"htmx {version} is already vendored: {target.relative_to(ROOT)}")
        return
    target.write_bytes(content)
    for path in old_files:
        if path != target:
            path.unlink()
            print(f"removed {path.relative_to(ROOT)}")
    print(f"wrote   {target.relative_to(ROOT)} ({len(content):,} bytes)")
    print("Update the <script> tags and docs that name the old file, and the CHANGELOG.")


if __name__ == "__main__":
    main()
