"""The README's guide, applied as written to a new project, works in a real browser.

Build the wheel and sdist and check them; make a fresh virtualenv with django-liveops
0.4.1 (the other package of that name) from PyPI; apply every block of the README in
order (tests/readme.py): its install upgrades 0.4.1 to our wheel, its shell blocks
create the project and the app, its file blocks write the settings, ``asgi.py``,
``urls.py``, the templates, the model and the view, and its "Run it" block migrates,
creates the user and starts uvicorn. Then Chromium logs in, starts the import, and
watches the percent, the status and the result change in place. The second test
applies the README's remaining blocks (daphne's runserver) and watches an import there.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.browser.support import (
    ARTIFACTS,
    LIVE_URL,
    RECORDER,
    LivePage,
    free_port,
    port_answers,
)
from tests.conftest import need
from tests.readme import README, ROOT, Guide, readme_blocks

# The module's fixture builds, installs from PyPI and migrates before the first test.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

USER, PASSWORD = "guide", "guide-pw-7"
VERSION = "1.0.0a1"
OTHER_PACKAGE = "django-liveops==0.4.1"
SERVER_START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 300.0
#: The page's screenshot, and on failure the server's log and the steps done.
ARTIFACTS_DIR = ARTIFACTS / "readme-guide"


class Timings:
    """Wall-clock time of each phase of the test, printed at the end."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []
        self.start = time.monotonic()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.phases.append((name, time.monotonic() - began))

    def report(self) -> str:
        lines = [f"  {name:<32} {seconds:6.1f} s" for name, seconds in self.phases]
        total = time.monotonic() - self.start
        return "\n".join(["README guide timings:", *lines, f"  {'total':<32} {total:6.1f} s"])


def _run(*argv: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"{argv} failed with {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _build(dist: Path) -> tuple[Path, Path]:
    """Build the sdist, then the wheel from it (as PyPI users get it); check both."""
    _run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    assert wheel.name == f"django_liveops-{VERSION}-py3-none-any.whl"
    _run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    _run(sys.executable, "-m", "check_wheel_contents", wheel)
    return wheel, sdist


def _check_contents(wheel: Path, sdist: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "liveops/py.typed",
        "liveops/static/liveops/liveops.js",
        "liveops/static/liveops/liveops.css",
        "liveops/templates/liveops/container.html",
        "liveops/templates/liveops/operation_form.html",
        "liveops/templates/liveops/regions/result.html",
        f"django_liveops-{VERSION}.dist-info/licenses/LICENSE",
    ):
        assert name in names, f"{name} is not in {wheel.name}"
    languages = {n.split("/")[2] for n in names if n.endswith("/LC_MESSAGES/django.mo")}
    assert {"de", "fr", "ja", "zh_Hans"} <= languages, languages
    assert not [n for n in names if n.startswith(("tests/", "example/"))]

    with tarfile.open(sdist) as archive:
        top = f"django_liveops-{VERSION}/"
        members = {m.name.removeprefix(top) for m in archive.getmembers()}
    for name in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "docs/settings.md"):
        assert name in members, f"{name} is not in {sdist.name}"
    shipped_docs = {m for m in members if m.startswith("docs/")}
    assert shipped_docs == {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert not [m for m in members if m.startswith(("tests/", "example/", "benchmarks/"))]


def _venv_env(venv: Path, dist: Path) -> dict[str, str]:
    """The environment of a shell in the fresh virtualenv, as a reader's would be."""
    env = {
        k: v
        for k, v in os.environ.items()
        # pytest-django's settings, this checkout's venv and the tests' own switches.
        if k not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
        and not k.startswith(("DJANGO_", "LIVEOPS_", "PYTEST_"))
    }
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    # pip finds our wheel here and everything else on PyPI, where 1.0.0a1 is not yet.
    env["PIP_FIND_LINKS"] = " ".join(filter(None, [str(dist), env.get("PIP_FIND_LINKS")]))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["DJANGO_SUPERUSER_USERNAME"] = USER
    env["DJANGO_SUPERUSER_PASSWORD"] = PASSWORD
    env["DJANGO_SUPERUSER_EMAIL"] = "guide@example.com"
    return env


def _need_pypi(run: GuideRun) -> None:
    """Skip (or fail in CI) when pip cannot reach PyPI: the guide installs from it."""
    probe = subprocess.run(
        [run.python, "-m", "pip", "download", "-q", "--no-deps", "-d", run.logs, OTHER_PACKAGE],
        env=run.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    need(probe.returncode == 0, f"pip cannot download {OTHER_PACKAGE}:\n{probe.stderr[-1500:]}")


def _installed_version(venv: Path, env: dict[str, str]) -> str:
    out = _run(venv / "bin" / "python", "-m", "pip", "show", "django-liveops", env=env)
    return re.search(r"^Version: (\S+)$", out, re.MULTILINE)[1]  # type: ignore[index]


def _check_replaced(venv: Path, wheel: Path) -> None:
    """The installed ``liveops`` is our wheel's, file for file: nothing of 0.4.1 is left."""
    [package] = venv.glob("lib/python*/site-packages/liveops")
    installed = {
        f"liveops/{p.relative_to(package).as_posix()}"
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("liveops/")}
    assert installed == shipped, f"left over: {sorted(installed - shipped)}"


class GuideServer:
    """A server a README block starts, on a free port instead of 8000, logging to a file."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self.argv, self.cwd, self.env, self.log_path = argv, cwd, env, log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> GuideServer:
        if "runserver" in self.argv:
            address = [f"127.0.0.1:{self.port}"]
        else:
            address = ["--host", "127.0.0.1", "--port", str(self.port)]
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.argv, *address],
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: runserver's reloader has a child
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not port_answers(self.port):
            assert self.proc.poll() is None, f"{self.argv} exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"{self.argv} did not listen:\n{self.tail()}"
            time.sleep(0.05)  # polling the port, with the deadline above
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class GuideRun:
    """The README applied to a fresh virtualenv and project, and the servers it started."""

    def __init__(self, root: Path) -> None:
        self.timings = Timings()
        self.dist, self.venv = root / "dist", root / "venv"
        self.logs = root / "logs"
        self.logs.mkdir()
        (root / "site").mkdir()
        self.env = _venv_env(self.venv, self.dist)
        self.servers: list[GuideServer] = []
        self.guide = Guide(cwd=root / "site", env=self.env, serve=self._serve)
        self.guide.timeout = COMMAND_TIMEOUT
        self.blocks = [b for b in readme_blocks() if b.action != "make-targets"]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def _serve(self, argv: list[str], cwd: Path) -> None:
        log_path = self.logs / f"server-{len(self.servers)}-{argv[0]}.log"
        server = GuideServer(argv, cwd, self.env, log_path)
        self.servers.append(server)
        server.start()

    def apply_until_served(self) -> GuideServer:
        """Apply the README's blocks up to the one that starts the next server."""
        wanted = len(self.servers) + 1
        while self.blocks and len(self.servers) < wanted:
            self.guide.apply(self.blocks.pop(0))
        assert len(self.servers) == wanted, "the README's remaining blocks start no server"
        return self.servers[-1]

    def save_artifacts(self) -> None:
        """Keep the servers' logs and the steps done in test-artifacts/ (after a failure)."""
        for server in self.servers:
            server.stop()
            if server.log_path.exists():
                shutil.copy(server.log_path, ARTIFACTS_DIR / server.log_path.name)
            print(f"--- {server.argv} (also in {ARTIFACTS_DIR}) ---\n{server.tail()}")
        (ARTIFACTS_DIR / "steps.txt").write_text("\n".join(self.guide.done) + "\n")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _start_url(port: int) -> str:
    """The address the README says to open, on the port the test's server listens on."""
    [url] = set(re.findall(r"Open\s+(http://127\.0\.0\.1:8000/\S*?/)[,.\s]", README.read_text()))
    return url.replace(":8000/", f":{port}/")


def _watch_import(browser: Any, start_url: str, name: str) -> tuple[dict[str, Any], str]:
    """Log in, start the import, wait for its result; return what the page showed."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.add_init_script(RECORDER)
    errors: list[str] = []
    page = context.new_page()
    try:
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(start_url)
        assert "/accounts/login/" in page.url, f"{start_url} did not ask for a login"
        page.get_by_label("Username").fill(USER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(start_url)
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(LIVE_URL)
        # Gone if the page reloads: everything below must arrive over the socket.
        page.evaluate("window.__sameDocument = true")
        live = LivePage.of(page)
        expect(live.region("result")).to_contain_text("Imported", timeout=30_000)
        result = live.region("result").inner_text()
        assert page.evaluate("window.__sameDocument === true"), "the live page reloaded"
        seen = live.seen()
    finally:
        with contextlib.suppress(Exception):  # a photo to look at, not part of the proof
            page.screenshot(path=str(ARTIFACTS_DIR / f"{name}.png"), full_page=True)
        context.close()
    assert not errors, f"JavaScript errors: {errors}"
    return seen, result


def _percents(values: list[str]) -> list[int]:
    return [int(m[1]) for v in values if (m := re.search(r"(\d+)\s*%", v))]


@pytest.fixture(scope="module")
def guide_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuideRun]:
    """Build, check, install over 0.4.1, and apply the README up to its first server."""
    shutil.rmtree(ARTIFACTS_DIR, ignore_errors=True)  # no file of an earlier run
    ARTIFACTS_DIR.mkdir(parents=True)
    run = GuideRun(tmp_path_factory.mktemp("readme-guide"))
    timings = run.timings
    try:
        with timings("build sdist + wheel, check"):
            wheel, sdist = _build(run.dist)
            _check_contents(wheel, sdist)
        with timings("venv + django-liveops 0.4.1"):
            _run(sys.executable, "-m", "venv", run.venv)
            _need_pypi(run)
            _run(run.python, "-m", "pip", "install", "-q", OTHER_PACKAGE, env=run.env)
            assert _installed_version(run.venv, run.env) == "0.4.1"
        with timings("apply the README to uvicorn"):
            run.apply_until_served()
        with timings("upgrade and manage.py check"):
            assert _installed_version(run.venv, run.env) == VERSION
            _check_replaced(run.venv, wheel)
            setup = "import django; django.setup(); import liveops.asgi"
            settings = {**run.env, "DJANGO_SETTINGS_MODULE": "yourproject.settings"}
            _run(run.python, "-c", setup, cwd=run.guide.cwd, env=settings)
            check = ("manage.py", "check", "--fail-level", "WARNING")
            _run(run.python, *check, cwd=run.guide.cwd, env=run.env)
    except BaseException:
        run.save_artifacts()
        run.stop()
        raise
    yield run
    run.stop()


@pytest.fixture
def guide(guide_run: GuideRun, capsys: Any) -> Iterator[GuideRun]:
    """The guide's run; every test prints the timings so far."""
    yield guide_run
    with capsys.disabled():
        print("\n" + guide_run.timings.report())


def test_the_readme_guide_works_as_written(guide: GuideRun, browser: Any) -> None:
    server = guide.servers[0]
    assert server.argv[0] == "uvicorn", server.argv
    try:
        with guide.timings("Chromium: log in, start, watch"):
            seen, result = _watch_import(browser, _start_url(server.port), "uvicorn")
        # The model imports the 8 rows of SAMPLE, one every half second; Donald has 99.
        assert "Imported 8 rows" in result, result
        assert "Donald" in result, result
        percents = _percents(seen["percent"])
        assert len(set(percents)) >= 3, f"the percent did not rise live: {seen['percent']}"
        assert percents == sorted(percents), seen["percent"]
        assert percents[-1] == 100, seen["percent"]
        importing = [s for s in seen["status"] if s.startswith("Importing ")]
        assert len(importing) >= 2, f"the status did not change live: {seen['status']}"
        assert seen["status"][-1] == "Import complete", seen["status"]
        assert seen["logLines"] >= 9, seen
    except BaseException:
        guide.save_artifacts()
        raise


def test_the_readme_runserver_alternative_serves_the_live_page(
    guide: GuideRun, browser: Any
) -> None:
    try:
        with guide.timings("apply the runserver blocks"):
            server = guide.apply_until_served()
        assert server.argv[1:3] == ["manage.py", "runserver"], server.argv
        assert not guide.blocks, f"README blocks nobody applied: {guide.blocks}"
        check = ("manage.py", "check", "--fail-level", "WARNING")
        _run(guide.python, *check, cwd=guide.guide.cwd, env=guide.env)
        with guide.timings("Chromium under runserver"):
            seen, result = _watch_import(browser, _start_url(server.port), "runserver")
        assert "Imported 8 rows" in result, result
        assert len(set(_percents(seen["percent"]))) >= 2, seen["percent"]
        assert "ASGI/Daphne" in server.tail(200), server.tail()
    except BaseException:
        guide.save_artifacts()
        raise
