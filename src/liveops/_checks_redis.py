"""System checks for ``channels_redis`` layers under redis-py 8.

redis-py 8 changed two defaults that break ``channels_redis.core.RedisChannelLayer``
(4.3) in ways that only show under real use:

- ``socket_timeout`` is 5 s, the same as the layer's ``BZPOPMIN`` wait, so every
  idle consumer's read times out and its WebSocket closes with 4503 (``liveops.W002``);
- a connection pool holds at most 100 connections, and the layer takes one per
  waiting consumer, so a burst of more than 100 connects fails in ``group_add``
  with ``MaxConnectionsError`` (``liveops.W003``).

``channels_redis.pubsub.RedisPubSubChannelLayer`` shares one subscriber connection
per process and serializes its commands on it, so neither applies to it (measured:
no error after 8 s idle, none for 300 simultaneous ``group_add`` calls).
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage
from django.core.checks import Warning as CheckWarning
from django.utils.module_loading import import_string

#: redis-py 8's default pool size: at or below it, a burst of connects fails.
DEFAULT_POOL_SIZE = 100
#: The ``max_connections`` the hints suggest.
MIN_MAX_CONNECTIONS = 1000
#: ``channels_redis.core.RedisChannelLayer.brpop_timeout`` when it cannot be read.
_BRPOP_TIMEOUT = 5.0

_CORE = "channels_redis.core.RedisChannelLayer"
_PASSWORD = re.compile(r"(\w+://[^:@/\s'\"]*):[^@/\s'\"]+@")


def check_redis_layers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn about ``channels_redis`` host settings that fail under redis-py 8."""
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if not isinstance(layers, Mapping) or _redis_version() < (8,):
        return []
    messages: list[CheckMessage] = []
    for alias, layer in layers.items():
        if not isinstance(layer, Mapping):
            continue
        brpop_timeout = _core_brpop_timeout(layer.get("BACKEND"))
        if brpop_timeout is None:
            continue
        config = layer.get("CONFIG") or {}
        hosts = config.get("hosts") if isinstance(config, Mapping) else None
        if hosts is None:
            # channels_redis then connects to redis://localhost:6379 with the defaults.
            hosts = ["redis://localhost:6379"]
        if not isinstance(hosts, list | tuple):
            continue  # channels_redis itself refuses this when the layer is built
        for index, host in enumerate(hosts):
            messages.extend(_check_host(str(alias), index, host, brpop_timeout))
    return messages


def _check_host(alias: str, index: int, host: object, brpop_timeout: float) -> list[CheckMessage]:
    where = f"CHANNEL_LAYERS[{alias!r}]['CONFIG']['hosts'][{index}]"
    url_options = _url_options(host)
    fixed = _recommended(host, brpop_timeout)
    messages: list[CheckMessage] = []
    timeout = host.get("socket_timeout") if isinstance(host, Mapping) else None
    has_timeout = isinstance(host, Mapping) and "socket_timeout" in host
    if not has_timeout and "socket_timeout" in url_options:
        timeout, has_timeout = url_options["socket_timeout"], True
    if not has_timeout or not _long_enough(timeout, brpop_timeout):
        what = (
            f"sets socket_timeout={timeout!r}"
            if has_timeout
            else "leaves socket_timeout at redis-py 8's default of 5 seconds"
        )
        messages.append(
            CheckWarning(
                f"{where} is {_shown(host)}, which {what}: every WebSocket idle for "
                f"{brpop_timeout:g} seconds is then closed with code 4503 (TimeoutError "
                "reading from Redis).",
                hint=f"Give the host as {_shown(fixed)} (socket_timeout None, or at least "
                f"{2 * brpop_timeout:g} seconds), or install redis<8.",
                id="liveops.W002",
            )
        )
    pool = host.get("max_connections") if isinstance(host, Mapping) else None
    if pool is None:
        pool = url_options.get("max_connections")
    if not _big_pool(pool):
        what = (
            f"max_connections={pool!r}"
            if pool is not None
            else f"redis-py 8's default pool of {DEFAULT_POOL_SIZE} connections"
        )
        messages.append(
            CheckWarning(
                f"{where} is {_shown(host)}, which allows {what}: the layer takes one connection "
                f"per waiting consumer, so a burst of more than {DEFAULT_POOL_SIZE} "
                "WebSocket connects fails in group_add with MaxConnectionsError.",
                hint=f"Give the host as {_shown(fixed)} (max_connections above the number of "
                "WebSockets one server process holds).",
                id="liveops.W003",
            )
        )
    return messages


def _recommended(host: object, brpop_timeout: float) -> dict[str, Any]:
    """Return ``host`` as the dict the hints suggest, keeping everything it sets."""
    if isinstance(host, Mapping):
        fixed = dict(host)
    elif isinstance(host, list | tuple) and len(host) >= 2:
        fixed = {"address": f"redis://{host[0]}:{host[1]}"}
    else:
        fixed = {"address": str(host)}
    if not _long_enough(fixed.get("socket_timeout"), brpop_timeout):
        fixed["socket_timeout"] = None
    fixed.setdefault("socket_timeout", None)
    if not _big_pool(fixed.get("max_connections")):
        fixed["max_connections"] = MIN_MAX_CONNECTIONS
    return fixed


def _shown(host: object) -> str:
    """Return ``repr(host)`` with its passwords masked (check output lands in logs)."""
    if isinstance(host, Mapping) and "password" in host:
        host = {**host, "password": "***"}
    return _PASSWORD.sub(r"\1:***@", repr(host))


def _url_options(host: object) -> dict[str, Any]:
    """Return the pool options a host's ``redis://`` URL sets in its query string."""
    address = host.get("address") if isinstance(host, Mapping) else host
    if not isinstance(address, str):
        return {}
    query = parse_qs(urlsplit(address).query)
    options: dict[str, Any] = {}
    for name, convert in (("socket_timeout", float), ("max_connections", int)):
        if query.get(name):
            try:
                options[name] = convert(query[name][0])
            except ValueError:
                options[name] = query[name][0]
    return options


def _long_enough(timeout: object, brpop_timeout: float) -> bool:
    # A read must outlast the layer's BZPOPMIN wait, with room for the reply.
    if timeout is None:
        return True
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        return False
    return timeout >= 2 * brpop_timeout


def _big_pool(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > DEFAULT_POOL_SIZE


def _core_brpop_timeout(backend: object) -> float | None:
    """Return the ``BZPOPMIN`` wait of a ``RedisChannelLayer`` backend, None for any other."""
    if not isinstance(backend, str):
        return None
    try:
        core = import_string(_CORE)
        # A subclass of RedisChannelLayer (under any dotted path) counts as one.
        cls = import_string(backend)
    except ImportError:
        return None  # no channels_redis, or a backend channels will report itself
    if not isinstance(cls, type) or not issubclass(cls, core):
        return None
    value = getattr(cls, "brpop_timeout", _BRPOP_TIMEOUT)
    return float(value) if isinstance(value, int | float) else _BRPOP_TIMEOUT


def _redis_version() -> tuple[int, ...]:
    """Return the installed redis-py version, ``()`` when it is not installed."""
    try:
        text = importlib.metadata.version("redis")
    except importlib.metadata.PackageNotFoundError:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])
