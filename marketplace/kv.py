"""Short-lived shared state: sessions and rate-limit counters.

Redis when ``REDIS_URL`` is set (shared by every process); otherwise files under ``var/``
for sessions (they survive a restart) and memory for counters (one process).  Redis clients
are kept per event loop, because the actors' loop and the web server's loop may share a
process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from litestar.stores.base import Store
from litestar.stores.file import FileStore
from litestar.stores.redis import RedisStore

from marketplace.settings import get_settings

_clients: dict[asyncio.AbstractEventLoop, aioredis.Redis[bytes]] = {}
_stores: dict[tuple[asyncio.AbstractEventLoop | None, str], Store] = {}
_lock = threading.Lock()


def redis_client() -> aioredis.Redis[bytes] | None:
    """The Redis client of the running event loop, or None in embedded mode."""
    url = get_settings().redis_url
    if not url:
        return None
    loop = asyncio.get_running_loop()
    with _lock:
        client = _clients.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            _clients[loop] = client
    return client


async def close() -> None:
    """Close the running loop's Redis client."""
    loop = asyncio.get_running_loop()
    with _lock:
        client = _clients.pop(loop, None)
        for key in [k for k in _stores if k[0] is loop]:
            del _stores[key]
    if client is not None:
        await client.aclose()  # type: ignore[attr-defined]


def store(name: str) -> Store:
    """A key-value store for one purpose (``sessions``, ...), namespaced by that name."""
    settings = get_settings()
    client = redis_client()
    loop = asyncio.get_running_loop() if client is not None else None
    key = (loop, name)
    with _lock:
        found = _stores.get(key)
        if found is None:
            if client is not None:
                found = RedisStore(redis=client, namespace=f"{settings.redis_namespace}:{name}")
            else:
                found = FileStore(settings.var_dir / name, create_directories=True)
            _stores[key] = found
    return found


class _Counters:
    """Fixed-window counters in memory, for embedded mode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}

    def incr(self, key: str, ttl: int) -> int:
        now = time.monotonic()
        with self._lock:
            expires, count = self._counts.get(key, (0.0, 0))
            if expires <= now:
                expires, count = now + ttl, 0
            count += 1
            self._counts[key] = (expires, count)
            if len(self._counts) > 50_000:
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            return count


_memory_counters = _Counters()


async def incr(key: str, ttl: int | timedelta) -> int:
    """Add one to a counter that disappears ``ttl`` after its first increment."""
    seconds = int(ttl.total_seconds()) if isinstance(ttl, timedelta) else ttl
    client = redis_client()
    if client is None:
        return _memory_counters.incr(key, seconds)
    full_key = f"{get_settings().redis_namespace}:count:{key}"
    pipe: Any = client.pipeline(transaction=True)
    pipe.incr(full_key)
    pipe.expire(full_key, seconds, nx=True)
    count, _ = await pipe.execute()
    return int(count)


async def ping() -> None:
    """Raise if Redis (when configured) does not answer."""
    client = redis_client()
    if client is not None:
        await client.ping()
