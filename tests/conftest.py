"""Shared fixtures and the services policy: skip locally, fail in CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.e2e_support import PrivateRedis

pytest_plugins = ["liveops.testing"]

REQUIRE_SERVICES = os.environ.get("LIVEOPS_REQUIRE_SERVICES") == "1"


def need(condition: bool, why: str) -> None:
    """Skip the test when ``condition`` is false, unless CI requires every service."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{why} (LIVEOPS_REQUIRE_SERVICES=1, so this is a failure, not a skip)")
    pytest.skip(why)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running redis-server of this test's own, for a test to stop and start at will."""
    from tests.e2e_support import PrivateRedis, free_port

    executable = shutil.which("redis-server")
    need(executable is not None, "redis-server is not installed (apt-get install redis-server)")
    assert executable is not None
    server = PrivateRedis(executable, free_port(), tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("mallory", password="pw")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("stella", password="pw", is_staff=True)


@pytest.fixture(autouse=True)
def _language_reset() -> Iterator[None]:
    """Leave no language active after a test (a view or override can leave one behind)."""
    yield
    from django.conf import settings

    if settings.configured:
        from django.utils import translation

        translation.deactivate()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for a module's stack tests; skip (or fail in CI) when there is none.

    The ORM runs beside Playwright's event loop in these tests, hence the async-unsafe flag.
    tests/browser/ has a session-wide one of its own.
    """
    from tests.chromium import launch_chromium

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with launch_chromium() as chromium:
            yield chromium
