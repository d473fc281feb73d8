"""Live tracking: every committed move of an order is published to those watching it.

:func:`publish` is registered with :func:`orders.moves.on_move`, so it runs after the commit
of each move, in whichever process made it (a web request or an actor).  With ``REDIS_URL``
the news goes through Redis pub/sub on one channel per order, so a page served by any web
process hears a move made by any worker.  Embedded (no Redis) everything runs in one process:
the news is handed straight to the watchers' queues, across event loops (actors run on a loop
of their own).  The SSE endpoint in ``orders.controllers`` reads :func:`watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from marketplace import kv
from marketplace.settings import get_settings
from orders import moves

log = logging.getLogger("cloudmarket.orders.live")

# How long one watcher waits for news before a keep-alive comment goes out.
KEEPALIVE_SECONDS = 15.0

_watchers: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]]] = {}
_watchers_lock = threading.Lock()
_pending: set[asyncio.Task[None]] = set()


def channel(order_id: int) -> str:
    return f"{get_settings().redis_namespace}:order:{order_id}"


def news(order: dict[str, Any], kind: str) -> dict[str, Any]:
    """What watchers are told of a move: enough to redraw, nothing personal."""
    updated = order.get("updated_at")
    return {
        "order": order["id"],
        "state": order["state"],
        "kind": kind,
        "version": order.get("version", 0),
        "at": updated.isoformat() if isinstance(updated, datetime) else str(updated or ""),
    }


def publish(order: dict[str, Any], kind: str) -> None:
    """Tell the order's watchers of a committed move (a :func:`orders.moves.on_move` listener)."""
    message = news(order, kind)
    if kv.redis_client() is None:
        _fan_out(message)
        return
    task = asyncio.get_running_loop().create_task(_publish_redis(message))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _publish_redis(message: dict[str, Any]) -> None:
    client = kv.redis_client()
    if client is None:  # pragma: no cover - checked by the caller
        return
    try:
        await client.publish(channel(message["order"]), json.dumps(message))
    except Exception as exc:  # live news is a convenience: the move itself is committed
        log.warning("live publish failed", extra={"order": message["order"], "error": type(exc).__name__})


def _fan_out(message: dict[str, Any]) -> None:
    with _watchers_lock:
        targets = list(_watchers.get(message["order"], ()))
    for loop, queue in targets:
        with contextlib.suppress(RuntimeError):  # a loop closed while we looked
            loop.call_soon_threadsafe(queue.put_nowait, message)


@contextlib.asynccontextmanager
async def watch(order_id: int) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """A queue receiving the news of ``order_id`` while the block lasts."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100)
    client = kv.redis_client()
    if client is None:
        entry = (asyncio.get_running_loop(), queue)
        with _watchers_lock:
            _watchers.setdefault(order_id, set()).add(entry)
        try:
            yield queue
        finally:
            with _watchers_lock:
                watchers = _watchers.get(order_id, set())
                watchers.discard(entry)
                if not watchers:
                    _watchers.pop(order_id, None)
        return
    pubsub = client.pubsub()
    await pubsub.subscribe(channel(order_id))
    reader = asyncio.create_task(_read(pubsub, queue))
    try:
        yield queue
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[attr-defined]


async def _read(pubsub: Any, queue: asyncio.Queue[dict[str, Any]]) -> None:
    async for item in pubsub.listen():
        if item.get("type") != "message":
            continue
        try:
            queue.put_nowait(json.loads(item["data"]))
        except (ValueError, asyncio.QueueFull):
            continue


def watcher_count(order_id: int) -> int:
    """How many in-process watchers an order has (for tests and the jobs page)."""
    with _watchers_lock:
        return len(_watchers.get(order_id, ()))


def install() -> None:
    """Register :func:`publish` with the moves, once per process."""
    if publish not in moves._listeners:
        moves.on_move(publish)


install()
