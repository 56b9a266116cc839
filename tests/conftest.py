"""Shared fixtures and the services policy: skip locally, fail in CI."""

from __future__ import annotations

import os

import pytest

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
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("mallory", password="pw")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("stella", password="pw", is_staff=True)
