"""Set-up mistakes say their fix: the runner, the ASGI application, the server, the layer.

System checks are run as a user runs them, ``manage.py check`` (``python -m django``)
or ``manage.py runserver`` in a subprocess, when what they report is a missing package
or something only a fresh process shows; in process otherwise.

A package that is installed in this venv cannot be uninstalled for one test, so
"Celery is not installed" is made real in the subprocess by a meta-path finder that
refuses to import it (``_RefuseInstalled``), as if it were absent. That finder is the
one stand-in of this module; everything else is the real component.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import channel_layers
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.testing import WebsocketCommunicator
from django.core.checks import ERROR, WARNING, CheckMessage
from django.core.handlers.asgi import ASGIHandler
from django.urls import path
from django.utils.module_loading import import_string

from liveops._checks import check_runner, check_settings
from liveops._checks_server import (
    check_asgi_application,
    check_runserver,
    check_uvicorn_websockets,
    reaches_consumer,
)
from liveops._publish import get_publisher
from liveops.asgi import UVICORN_WITHOUT_WEBSOCKETS
from liveops.consumers import CloseCode
from liveops.routing import websocket_urlpatterns
from liveops.runners import NOT_QUEUED_MESSAGE, NOT_SET_UP_MESSAGE, Runner
from tests import asgi as tests_asgi
from tests.testapp.models import Counted

REPO = Path(__file__).resolve().parent.parent
#: A ceiling for a subprocess to say what it has to say.
PROCESS_TIMEOUT = 60

# --- running manage.py as a user does --------------------------------------------------

_PRELUDE = '''
import importlib.abc, runpy, sys

BLOCKED = {blocked!r}


class _RefuseInstalled(importlib.abc.MetaPathFinder):
    """Make installed packages absent: importing them fails as if uninstalled."""

    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _RefuseInstalled())
sys.argv = {argv!r}
runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
'''


def _command(module: str, argv: list[str], blocked: tuple[str, ...] = ()) -> list[str]:
    """Return the command that runs ``python -m module *argv`` without the ``blocked`` packages."""
    code = _PRELUDE.format(blocked=blocked, argv=[module, *argv], module=module)
    return [sys.executable, "-c", code]


@pytest.fixture
def site(tmp_path: Path) -> Any:
    """Return a function that writes a settings module ``name`` (tests.settings + ``body``)."""

    def write(body: str = "", name: str = "checks_site") -> str:
        (tmp_path / f"{name}.py").write_text(
            "from tests.settings import *  # noqa: F403\n" + textwrap.dedent(body)
        )
        return name

    return write


def _env(tmp_path: Path, settings_module: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "DJANGO_SETTINGS_MODULE": settings_module,
        "LIVEOPS_TEST_DB": str(tmp_path / "db.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }


def manage_py_check(
    tmp_path: Path, settings_module: str, blocked: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py check`` with ``settings_module``; return its exit code and output."""
    return subprocess.run(
        _command("django", ["check"], blocked),
        cwd=REPO,
        env=_env(tmp_path, settings_module),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )


class Server:
    """A server process whose output is read in a thread until a line says it is up."""

    def __init__(self, command: list[str], env: dict[str, str], ready: str) -> None:
        self.lines: list[str] = []
        self._ready_text = ready
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if self._ready_text in line:
                self.ready.set()
        self.ready.set()  # the process ended: nothing more will come

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until_up(self) -> str:
        """Return the output up to the ready line; fail with the output when it never comes."""
        self.ready.wait(PROCESS_TIMEOUT)
        assert self._ready_text in self.output, self.output
        return self.output

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(PROCESS_TIMEOUT)
        self._reader.join(PROCESS_TIMEOUT)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Collect the servers a test starts; kill each one afterwards."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ids(messages: list[CheckMessage]) -> list[str]:
    return [message.id or "" for message in messages]


# --- liveops.E016: the runner cannot be loaded ---------------------------------------------


def test_celery_runner_without_celery_fails_check_with_the_install_command(
    tmp_path: Path, site: Any
) -> None:
    name = site('LIVEOPS = {**LIVEOPS, "RUNNER": "celery"}')
    done = manage_py_check(tmp_path, name, blocked=("celery",))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "liveops.E016" in done.stderr
    assert "LIVEOPS['RUNNER'] is 'celery', but Celery cannot be imported" in done.stderr
    assert "No module named 'celery'" in done.stderr
    assert 'HINT: Install it: pip install "django-liveops[celery]".' in done.stderr


def test_tasks_runner_without_the_task_framework_fails_check_with_the_install_command(
    tmp_path: Path, site: Any
) -> None:
    name = site('LIVEOPS = {**LIVEOPS, "RUNNER": "tasks"}')
    done = manage_py_check(tmp_path, name, blocked=("django.tasks", "django_tasks"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "liveops.E016" in done.stderr
    assert "Django's task framework is missing" in done.stderr
    assert 'pip install "django-liveops[tasks]"' in done.stderr


def test_the_same_settings_with_the_packages_installed_pass(tmp_path: Path, site: Any) -> None:
    name = site(
        """
        from tests.celery_app import app as celery_app  # as Celery's Django guide says
        LIVEOPS = {**LIVEOPS, "RUNNER": "celery"}
        """
    )
    done = manage_py_check(tmp_path, name)
    assert done.returncode == 0, done.stderr
    assert "liveops." not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("runner", "shown"),
    [
        ("nowhere.at.all.Runner", "cannot be imported: No module named 'nowhere'"),
        ("liveops.runners.NoSuchRunner", "cannot be imported"),
        ("liveops._conf.LiveOpsSettings", "is not a liveops.runners.Runner subclass"),
    ],
)
def test_a_runner_path_that_cannot_be_used_is_an_error(
    settings: Any, runner: str, shown: str
) -> None:
    settings.LIVEOPS = {"RUNNER": runner}
    (error,) = check_runner()
    assert (error.id, error.level) == ("liveops.E016", ERROR)
    assert repr(runner) in error.msg
    assert shown in error.msg
    assert "liveops.runners.Runner" in error.hint


def test_a_runner_module_that_fails_to_import_is_an_error(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_runner.py").write_text("raise RuntimeError('the runner is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.LIVEOPS = {"RUNNER": "broken_runner.Runner"}
    (error,) = check_runner()
    assert error.id == "liveops.E016"
    assert "RuntimeError: the runner is broken" in error.msg
    assert "import broken_runner" in error.hint


@pytest.mark.parametrize("runner", ["eager", "thread", "tests.test_checks_setup.QuietRunner"])
def test_a_runner_that_loads_is_silent(settings: Any, runner: str) -> None:
    settings.LIVEOPS = {"RUNNER": runner}
    assert check_runner() == []


def test_invalid_settings_leave_the_runner_to_check_settings(settings: Any) -> None:
    settings.LIVEOPS = {"RUNNER": "nowhere.Runner", "THROTTLE_HZ": 0}
    assert check_runner() == []
    assert ids(check_settings()) == ["liveops.E004"]


class QuietRunner(Runner):
    """A dotted-path runner that needs nothing."""

    def enqueue(self, label: str, pk: Any) -> None:
        """Run nothing."""


# --- liveops.W004: the celery runner in a process without a Celery app ---------------------


def test_celery_runner_without_a_celery_app_warns(tmp_path: Path, site: Any) -> None:
    name = site('LIVEOPS = {**LIVEOPS, "RUNNER": "celery"}')  # imports no Celery app
    done = manage_py_check(tmp_path, name)
    assert done.returncode == 0, done.stderr
    assert "liveops.W004" in done.stderr
    assert "this process has no Celery app" in done.stderr
    assert "from .celery import app as celery_app" in done.stderr


# --- liveops.E017, W005: the tasks runner's backend ----------------------------------------

# Django 6 has django.tasks; on Django 5.2 the django-tasks backport provides it.
_TASKS = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"
_IMMEDIATE = f"{_TASKS}.backends.immediate.ImmediateBackend"
_DATABASE = "django_tasks_db.DatabaseBackend"


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ({"queue_name": "liveops"}, "Queue 'liveops' is not valid for backend"),
        ({"backend": "workers"}, "workers"),
        ({"queue": "liveops"}, "unexpected keyword argument 'queue'"),  # Celery's name
    ],
)
def test_tasks_options_every_enqueue_would_fail_on_are_an_error(
    settings: Any, options: dict[str, Any], shown: str
) -> None:
    settings.TASKS = {"default": {"BACKEND": _DATABASE, "QUEUES": ["default"]}}
    settings.LIVEOPS = {"RUNNER": "tasks", "TASKS_OPTIONS": options}
    (error,) = check_runner()
    assert (error.id, error.level) == ("liveops.E017", ERROR)
    assert repr(options) in error.msg
    assert shown in error.msg
    assert "Task.using()" in error.hint


def test_tasks_runner_on_the_immediate_backend_warns(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": _IMMEDIATE}}  # Django's default TASKS
    settings.LIVEOPS = {"RUNNER": "tasks"}
    (warning,) = check_runner()
    assert (warning.id, warning.level) == ("liveops.W005", WARNING)
    assert "runs each operation inside the request" in warning.msg
    assert "django_tasks_db.DatabaseBackend" in warning.hint


def test_tasks_runner_on_a_worker_backend_and_a_queue_it_takes_is_silent(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": _DATABASE, "QUEUES": ["default", "liveops"]}}
    settings.LIVEOPS = {"RUNNER": "tasks", "TASKS_OPTIONS": {"queue_name": "liveops"}}
    assert check_runner() == []


# --- dispatch: a configuration error is not "please try again later" ---------------------


@pytest.mark.django_db
def test_an_operation_the_server_cannot_run_does_not_ask_to_try_again(
    settings: Any, user: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks
) -> None:
    settings.LIVEOPS = {"RUNNER": "nowhere.at.all.Runner"}
    with django_capture_on_commit_callbacks(execute=True):
        op = Counted.objects.create(owner=user)
        op.enqueue()
    op.refresh_from_db()
    assert op.get_state().value == "FINISHED_ERROR"
    assert op.error_message == f"{NOT_SET_UP_MESSAGE} (RunnerUnavailable)"
    assert "try again" not in op.error_message
    (record,) = [r for r in caplog.records if r.name == "liveops"]
    assert record.levelname == "ERROR"
    assert "not set up to run it" in record.getMessage()
    assert "'nowhere.at.all.Runner', which cannot be imported" in record.getMessage()
    assert "manage.py check" in record.getMessage()


_INVALID_TASK = ("InvalidTask", "InvalidTaskError")


@pytest.mark.django_db
def test_a_queue_the_task_backend_refuses_does_not_ask_to_try_again(
    settings: Any, user: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks
) -> None:
    settings.TASKS = {"default": {"BACKEND": _IMMEDIATE, "QUEUES": ["default"]}}
    settings.LIVEOPS = {"RUNNER": "tasks", "TASKS_OPTIONS": {"queue_name": "nope"}}
    with django_capture_on_commit_callbacks(execute=True):
        op = Counted.objects.create(owner=user)
        op.enqueue()
    op.refresh_from_db()
    # The error's class name: InvalidTask, InvalidTaskError in the Django 5.2 backport.
    assert op.error_message in {f"{NOT_SET_UP_MESSAGE} ({name})" for name in _INVALID_TASK}
    assert any(r.levelname == "ERROR" and "Queue 'nope'" in r.getMessage() for r in caplog.records)


def test_the_two_messages_differ_in_what_they_ask() -> None:
    assert "try again later" in NOT_QUEUED_MESSAGE  # a broker down: it will come back
    assert "try again" not in NOT_SET_UP_MESSAGE
    assert "server log" in NOT_SET_UP_MESSAGE


# --- liveops.E018, E019, W006: ASGI_APPLICATION --------------------------------------------


class OtherConsumer(AsyncWebsocketConsumer):
    """A project's own consumer: not the live pages'."""


async def plain_app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI application the walk cannot see into."""


class CustomRouter:
    """A project's own router: the walk cannot tell where it sends WebSockets."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.routes[scope["type"]](scope, receive, send)


# Applications that route no WebSocket to the liveops consumer...
HTTP_ONLY = ProtocolTypeRouter({"http": ASGIHandler()})
DJANGO_ONLY = ASGIHandler()
OTHER_CONSUMER = ProtocolTypeRouter(
    {"http": ASGIHandler(), "websocket": URLRouter([path("ws/chat/", OtherConsumer.as_asgi())])}
)
# ... one that does, nested, and ones the walk cannot see into (so it says nothing).
NESTED = ProtocolTypeRouter(
    {"websocket": URLRouter([path("app/", URLRouter(websocket_urlpatterns))])}
)
PLAIN_FUNCTION = ProtocolTypeRouter({"http": ASGIHandler(), "websocket": plain_app})
CUSTOM = CustomRouter({"http": ASGIHandler(), "websocket": plain_app})
MIXED = ProtocolTypeRouter(
    {"websocket": URLRouter([path("a/", OtherConsumer.as_asgi()), path("b/", plain_app)])}
)


def test_asgi_application_unset_is_an_error_with_the_line_to_add(settings: Any) -> None:
    del settings.ASGI_APPLICATION
    (error,) = check_asgi_application()
    assert (error.id, error.level) == ("liveops.E018", ERROR)
    assert "ASGI_APPLICATION is not set" in error.msg
    assert 'ASGI_APPLICATION = "yourproject.asgi.application"' in error.hint
    assert "Adding it to an existing project" in error.hint


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        (None, "ModuleNotFoundError: No module named 'nowhere'"),
        ("application = None\nraise RuntimeError('asgi.py is broken')\n", "asgi.py is broken"),
        ("app = None\n", 'does not define a "application" attribute'),
    ],
)
def test_asgi_application_that_cannot_be_imported_says_why(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | None, shown: str
) -> None:
    if source is None:
        settings.ASGI_APPLICATION = "nowhere.asgi.application"
    else:
        (tmp_path / "broken_asgi.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "broken_asgi", raising=False)
        settings.ASGI_APPLICATION = "broken_asgi.application"
    (error,) = check_asgi_application()
    assert (error.id, error.level) == ("liveops.E019", ERROR)
    assert repr(settings.ASGI_APPLICATION) in error.msg
    assert shown in error.msg


@pytest.mark.parametrize("name", ["HTTP_ONLY", "DJANGO_ONLY", "OTHER_CONSUMER"])
def test_an_application_that_routes_no_live_socket_warns_with_the_route(
    settings: Any, name: str
) -> None:
    settings.ASGI_APPLICATION = f"tests.test_checks_setup.{name}"
    (warning,) = check_asgi_application()
    assert (warning.id, warning.level) == ("liveops.W006", WARNING)
    assert "sends no WebSocket to liveops.consumers.LiveOperationConsumer" in warning.msg
    assert (
        '"websocket": AllowedHostsOriginValidator(SessionMiddlewareStack('
        "URLRouter(websocket_urlpatterns)))" in warning.hint
    )
    assert "liveops.routing" in warning.hint


@pytest.mark.parametrize(
    ("path_", "found"),
    [
        ("tests.asgi.application", True),
        ("tests.asgi_stack.application", True),
        ("demo_site.asgi.application", True),
        ("tests.test_checks_setup.NESTED", True),
        ("tests.test_checks_setup.PLAIN_FUNCTION", None),
        ("tests.test_checks_setup.CUSTOM", None),
        ("tests.test_checks_setup.MIXED", None),
    ],
)
def test_the_projects_applications_and_unknown_ones_are_silent(
    settings: Any, path_: str, found: bool | None
) -> None:
    settings.ASGI_APPLICATION = path_
    assert reaches_consumer(import_string(path_)) is found
    assert check_asgi_application() == []


def test_the_readme_asgi_py_reaches_the_consumer(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    (source,) = [b for b in blocks if "ProtocolTypeRouter(" in b and "application =" in b]
    (tmp_path / "readme_asgi.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "readme_asgi", raising=False)
    settings.ASGI_APPLICATION = "readme_asgi.application"
    assert reaches_consumer(import_string("readme_asgi.application")) is True
    assert check_asgi_application() == []


# --- liveops.W007: Django's own runserver ----------------------------------------------------


def test_djangos_runserver_warns_that_live_pages_cannot_connect(
    tmp_path: Path, site: Any, servers: list[Server]
) -> None:
    name = site('INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "daphne"]')
    argv = ["runserver", "--noreload", f"127.0.0.1:{free_port()}"]
    server = Server(_command("django", argv), _env(tmp_path, name), "Quit the server with")
    servers.append(server)
    output = server.wait_until_up()
    assert "liveops.W007" in output
    assert "serves WSGI only: live pages cannot connect" in output
    assert 'pip install daphne and put "daphne" first in INSTALLED_APPS' in output
    assert "uvicorn yourproject.asgi:application" in output


def test_daphnes_runserver_is_silent(tmp_path: Path, site: Any, servers: list[Server]) -> None:
    name = site()  # tests.settings: "daphne" first in INSTALLED_APPS
    argv = ["runserver", "--noreload", f"127.0.0.1:{free_port()}"]
    server = Server(_command("django", argv), _env(tmp_path, name), "Quit the server with")
    servers.append(server)
    output = server.wait_until_up()
    assert "Daphne" in output
    assert "liveops." not in output


def test_other_commands_are_silent() -> None:
    assert sys.argv[1:2] != ["runserver"]
    assert check_runserver() == []


# --- liveops.W008 and the lifespan error: uvicorn without a WebSocket library ---------------

_NO_WEBSOCKETS = ("websockets", "wsproto")


def test_uvicorn_without_a_websocket_library_warns(tmp_path: Path, site: Any) -> None:
    done = manage_py_check(tmp_path, site(), blocked=_NO_WEBSOCKETS)
    assert done.returncode == 0, done.stderr
    assert "liveops.W008" in done.stderr
    assert "uvicorn is installed, but neither websockets nor wsproto is" in done.stderr
    assert "pip install 'uvicorn[standard]'" in done.stderr
    assert 'SILENCED_SYSTEM_CHECKS = ["liveops.W008"]' in done.stderr


def test_uvicorn_with_a_websocket_library_is_silent() -> None:
    assert check_uvicorn_websockets() == []


def _uvicorn(tmp_path: Path, blocked: tuple[str, ...]) -> Server:
    argv = ["tests.asgi:application", "--port", str(free_port()), "--lifespan", "on"]
    env = _env(tmp_path, "tests.settings")
    return Server(_command("uvicorn", argv, blocked), env, "Application startup complete")


def test_lifespan_startup_under_uvicorn_without_websockets_logs_the_fix(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = _uvicorn(tmp_path, _NO_WEBSOCKETS)
    servers.append(server)
    output = server.wait_until_up()
    assert UVICORN_WITHOUT_WEBSOCKETS in output


def test_lifespan_startup_under_uvicorn_with_websockets_logs_nothing(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = _uvicorn(tmp_path, ())
    servers.append(server)
    output = server.wait_until_up()
    assert "WebSocket library" not in output


# --- liveops.E009 at run time: the socket and the publisher say the check's text --------------


@pytest.fixture
def no_layer(settings: Any) -> Iterator[str]:
    """Configure no channel layer; return the text of the check's E009."""
    channel_layers.backends.clear()
    settings.CHANNEL_LAYERS = {}
    (error,) = [e for e in check_settings() if e.id == "liveops.E009"]
    yield f"({error.id}) {error.msg} HINT: {error.hint}"
    channel_layers.backends.clear()


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.levelname for r in caplog.records if r.name == "liveops" and r.getMessage() == text]


async def _connect() -> WebsocketCommunicator:
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    query = "op=testapp.counted:00000000-0000-0000-0000-000000000001"
    communicator = WebsocketCommunicator(
        tests_asgi.application, f"/ws/liveops/?{query}", headers=headers
    )
    connected, _ = await communicator.connect(timeout=10)
    assert connected  # accepted, then closed: a refused handshake would be retried
    return communicator


async def test_a_socket_without_a_layer_closes_with_4500_and_logs_the_check_text(
    no_layer: str, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(2):
        communicator = await _connect()
        message = await communicator.receive_output(timeout=5)
        assert message == {"type": "websocket.close", "code": CloseCode.NOT_CONFIGURED}
        assert CloseCode.NOT_CONFIGURED == 4500
        await communicator.wait()
    assert _logged(caplog, no_layer) == ["ERROR"]  # once per process, not per socket


async def test_a_send_without_a_layer_logs_the_check_text_once(
    no_layer: str, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(2):
        await get_publisher().send("liveop.testapp.counted.x", {"type": "liveop.update"})
    assert _logged(caplog, no_layer) == ["ERROR"]


@pytest.mark.django_db(transaction=True)
async def test_a_socket_with_a_layer_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    channel_layers.backends.clear()
    communicator = await _connect()
    await communicator.disconnect()
    assert not [r for r in caplog.records if "liveops.E009" in r.getMessage()]
    channel_layers.backends.clear()
