"""``liveops._checks_redis``: warnings for channels_redis hosts that fail under redis-py 8."""

from __future__ import annotations

import ast
import importlib.metadata
import re
from typing import Any

import pytest
import redis
from channels_redis.core import RedisChannelLayer

from liveops import _checks_redis as checks_redis
from liveops._checks_redis import check_redis_layers

CORE = "channels_redis.core.RedisChannelLayer"
PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"
URL = "redis://127.0.0.1:6379/0"
GOOD = {"address": URL, "socket_timeout": None, "max_connections": 1000}


class SubclassedLayer(RedisChannelLayer):  # type: ignore[misc]
    """A project's own subclass: still a RedisChannelLayer."""


@pytest.fixture(autouse=True)
def _redis_8(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check as under redis-py 8 whatever is installed (tests below change it)."""
    monkeypatch.setattr(checks_redis, "_redis_version", lambda: (8, 1, 0))


def layers(settings: Any, *hosts: object, backend: str = CORE, alias: str = "default") -> None:
    settings.CHANNEL_LAYERS = {alias: {"BACKEND": backend, "CONFIG": {"hosts": list(hosts)}}}


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


def hinted_host(message: Any) -> dict[str, Any]:
    """Return the host dict a hint tells the user to write."""
    match = re.search(r"Give the host as (\{.*?\}) \(", message.hint)
    assert match, message.hint
    host = ast.literal_eval(match[1])
    assert isinstance(host, dict)
    return host


def test_a_plain_url_gets_both_warnings_with_the_exact_dict_to_write(settings):
    layers(settings, URL)
    messages = check_redis_layers()
    assert ids(messages) == ["liveops.W002", "liveops.W003"]
    timeout, pool = messages
    assert "CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]" in timeout.msg
    assert repr(URL) in timeout.msg
    assert "4503" in timeout.msg
    assert hinted_host(timeout) == GOOD
    assert "MaxConnectionsError" in pool.msg
    assert "default pool of 100" in pool.msg
    assert hinted_host(pool) == GOOD


def test_the_hinted_dict_silences_the_check(settings):
    layers(settings, URL)
    hinted = hinted_host(check_redis_layers()[0])
    layers(settings, hinted)
    assert check_redis_layers() == []


def test_a_host_and_port_tuple_is_rewritten_as_an_address(settings):
    layers(settings, ("redis.internal", 6380))
    messages = check_redis_layers()
    assert ids(messages) == ["liveops.W002", "liveops.W003"]
    assert hinted_host(messages[0]) == {**GOOD, "address": "redis://redis.internal:6380"}


@pytest.mark.parametrize(
    ("timeout", "warned"),
    [
        pytest.param("missing", True, id="missing"),
        pytest.param(5, True, id="5 s, the BZPOPMIN wait"),
        pytest.param(9.9, True, id="9.9 s"),
        pytest.param(True, True, id="a bool"),
        pytest.param("30", True, id="a string"),
        pytest.param(None, False, id="None"),
        pytest.param(10, False, id="10 s"),
        pytest.param(30.0, False, id="30 s"),
    ],
)
def test_socket_timeout_must_be_none_or_outlast_the_layers_wait(settings, timeout, warned):
    host: dict[str, Any] = {"address": URL, "max_connections": 1000}
    if timeout != "missing":
        host["socket_timeout"] = timeout
    layers(settings, host)
    messages = check_redis_layers()
    assert ids(messages) == (["liveops.W002"] if warned else [])
    if warned:
        hint = hinted_host(messages[0])
        assert hint == GOOD
        described = "default of 5 seconds" if timeout == "missing" else f"={timeout!r}"
        assert described in messages[0].msg


def test_a_long_enough_socket_timeout_is_kept_in_the_hint(settings):
    layers(settings, {"address": URL, "socket_timeout": 30})
    (message,) = check_redis_layers()
    assert message.id == "liveops.W003"
    assert hinted_host(message) == {**GOOD, "socket_timeout": 30}


@pytest.mark.parametrize(
    ("pool", "warned"),
    [
        pytest.param("missing", True, id="missing"),
        pytest.param(50, True, id="50"),
        pytest.param(100, True, id="100, the default"),
        pytest.param(None, True, id="None (redis-py then uses 100)"),
        pytest.param(101, False, id="101"),
        pytest.param(5000, False, id="5000"),
    ],
)
def test_max_connections_must_exceed_the_default_pool(settings, pool, warned):
    host: dict[str, Any] = {"address": URL, "socket_timeout": None}
    if pool != "missing":
        host["max_connections"] = pool
    layers(settings, host)
    messages = check_redis_layers()
    assert ids(messages) == (["liveops.W003"] if warned else [])
    if warned:
        assert hinted_host(messages[0]) == GOOD


def test_options_in_the_url_query_count(settings):
    layers(settings, f"{URL}?max_connections=500&socket_timeout=60")
    assert check_redis_layers() == []
    layers(settings, f"{URL}?max_connections=100&socket_timeout=5")
    assert ids(check_redis_layers()) == ["liveops.W002", "liveops.W003"]


def test_a_dict_keeps_its_other_options_in_the_hint(settings):
    sentinel = {
        "sentinels": [("10.0.0.1", 26379)],
        "master_name": "main",
        "db": 3,
    }
    layers(settings, sentinel)
    messages = check_redis_layers()
    assert ids(messages) == ["liveops.W002", "liveops.W003"]
    assert hinted_host(messages[0]) == {**sentinel, "socket_timeout": None, "max_connections": 1000}


def test_no_hosts_means_localhost_with_the_defaults(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": CORE}}
    messages = check_redis_layers()
    assert ids(messages) == ["liveops.W002", "liveops.W003"]
    assert hinted_host(messages[0])["address"] == "redis://localhost:6379"


def test_every_layer_and_host_is_named(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": CORE, "CONFIG": {"hosts": [GOOD, URL]}},
        "bulk": {"BACKEND": CORE, "CONFIG": {"hosts": [{**GOOD, "max_connections": 10}]}},
    }
    messages = check_redis_layers()
    assert ids(messages) == ["liveops.W002", "liveops.W003", "liveops.W003"]
    assert "['default']['CONFIG']['hosts'][1]" in messages[0].msg
    assert "['default']['CONFIG']['hosts'][1]" in messages[1].msg
    assert "['bulk']['CONFIG']['hosts'][0]" in messages[2].msg
    assert "max_connections=10" in messages[2].msg


def test_a_subclass_of_the_core_layer_is_checked(settings):
    layers(settings, URL, backend=f"{__name__}.SubclassedLayer")
    assert ids(check_redis_layers()) == ["liveops.W002", "liveops.W003"]


@pytest.mark.parametrize(
    "backend",
    [
        # One shared subscriber connection per process: neither problem occurs (measured).
        PUBSUB,
        "channels.layers.InMemoryChannelLayer",
        # A backend that does not import is for channels to report, not this check.
        "nowhere.Layer",
    ],
)
def test_other_layers_are_left_alone(settings, backend):
    layers(settings, URL, backend=backend)
    assert check_redis_layers() == []


def test_malformed_settings_are_left_to_channels(settings):
    settings.CHANNEL_LAYERS = {"a": "not a dict", "b": {"BACKEND": CORE, "CONFIG": {"hosts": URL}}}
    assert check_redis_layers() == []
    del settings.CHANNEL_LAYERS
    assert check_redis_layers() == []


def test_passwords_are_masked(settings):
    layers(settings, "redis://app:s3cret@10.0.0.5:6379/0", {"host": "h", "password": "s3cret"})
    messages = check_redis_layers()
    assert len(messages) == 4
    for message in messages:
        assert "s3cret" not in message.msg
        assert "s3cret" not in message.hint
    assert "redis://app:***@10.0.0.5:6379/0" in messages[0].msg


@pytest.mark.parametrize("version", [(7, 4, 0), (5, 2, 1), ()])
def test_nothing_to_say_before_redis_py_8(settings, monkeypatch, version):
    monkeypatch.setattr(checks_redis, "_redis_version", lambda: version)
    layers(settings, URL)
    assert check_redis_layers() == []


def test_the_installed_redis_py_version_is_read(monkeypatch):
    monkeypatch.undo()  # the real _redis_version, not the autouse stand-in
    assert checks_redis._redis_version() == tuple(
        int(part) for part in redis.__version__.split(".")[:3]
    )

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert checks_redis._redis_version() == ()


def test_registered_with_django(settings: Any) -> None:
    from django.core import checks

    layers(settings, URL)
    found = {message.id for message in checks.run_checks(tags=["liveops"])}
    assert {"liveops.W002", "liveops.W003"} <= found
