"""The transactional outbox: work to do is written with the change that calls for it.

A service that changes state and must trigger an actor calls :func:`send` inside the same
``db.atomic()`` block.  The relay hands due rows to the broker and leases them; the row is
deleted when the actor finishes, marked failed when the actor gives up, and sent again if
its lease runs out (a worker or Redis lost it).  So a crash between commit and enqueue loses
nothing, and actors must be safe to run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq import Message

from marketplace import clock, db
from marketplace.broker import broker
from marketplace.settings import get_settings
from marketplace.tables import JobFailure, OutboxMessage, ScheduledRun

log = logging.getLogger("cloudmarket.outbox")

NOTIFY_CHANNEL = "cm_outbox"
BATCH = 200
IDLE_POLL_SECONDS = 1.0

_local_wakeup: asyncio.Event | None = None
_wake_loop: asyncio.AbstractEventLoop | None = None


def _wake_local_relay() -> None:
    if _local_wakeup is not None and _wake_loop is not None:
        _wake_loop.call_soon_threadsafe(_local_wakeup.set)


async def send(
    actor: dramatiq.Actor[Any, Any],
    *args: Any,
    deliver_at: datetime | None = None,
    delay: timedelta | None = None,
    **kwargs: Any,
) -> uuid.UUID:
    """Write a message to ``actor``; it goes out when the surrounding transaction commits."""
    due = deliver_at or clock.now()
    if delay is not None:
        due = clock.now() + delay
    row = OutboxMessage(
        id=uuid.uuid4(),
        actor=actor.actor_name,
        queue=actor.queue_name,
        args=json.dumps(list(args)),
        kwargs=json.dumps(kwargs),
        due_at=due,
    )
    await OutboxMessage.insert(row)
    if db.is_postgres():
        # Delivered to listening relays when (and only if) the transaction commits.
        await db.engine().run_ddl(f"NOTIFY {NOTIFY_CHANNEL}")
    db.on_commit(_wake_local_relay)
    return row.id  # type: ignore[no-any-return]


async def finish(message_id: str) -> None:
    """The actor finished: the message is done."""
    with contextlib.suppress(ValueError):
        await OutboxMessage.delete().where(OutboxMessage.id == uuid.UUID(message_id))


async def give_up(message: Any, exception: BaseException) -> None:
    """The actor failed after its last retry: keep a record an admin can see."""
    error = f"{type(exception).__name__}: {exception}"[:2000]
    async with db.atomic():
        await JobFailure.insert(
            JobFailure(
                actor=message.actor_name,
                queue=message.queue_name,
                message_id=message.message_id,
                args=json.dumps(list(message.args)),
                kwargs=json.dumps(message.kwargs),
                retries=message.options.get("retries", 0),
                error=error,
            )
        )
        with contextlib.suppress(ValueError):
            await OutboxMessage.update({OutboxMessage.state: "failed"}).where(
                OutboxMessage.id == uuid.UUID(message.message_id)
            )


def _urgent_actors() -> list[str]:
    """Names of the declared actors with a negative priority (codes, level 1 routing, ...)."""
    return sorted(name for name, actor in broker.actors.items() if actor.priority < 0)


def _to_message(row: dict[str, Any]) -> Message[Any]:
    created: datetime = row["created_at"]
    return Message(
        queue_name=row["queue"],
        actor_name=row["actor"],
        args=tuple(json.loads(row["args"])),
        kwargs=json.loads(row["kwargs"]),
        options={},
        message_id=str(row["id"]),
        message_timestamp=int(created.timestamp() * 1000),
    )


async def relay_once(batch: int = BATCH, *, after_send: Callable[[], None] | None = None) -> int:
    """Send the due messages, at most ``batch``; returns how many went out.

    On PostgreSQL the rows are locked with SKIP LOCKED, so several relays share the work.
    ``after_send`` runs between sending and marking (tests use it to crash there).
    """
    now = clock.now()
    lease = timedelta(seconds=get_settings().outbox_lease_seconds)
    async with db.atomic():
        due = OutboxMessage.state.is_in(["pending", "sent"]) & (OutboxMessage.due_at <= now)
        urgent = _urgent_actors()
        rows: list[dict[str, Any]] = []
        # Messages to urgent actors (a negative priority) go first: a level 1 order's routing
        # never waits for a backlog of other messages to be handed over before it.
        for where in (
            [due & OutboxMessage.actor.is_in(urgent), due & OutboxMessage.actor.not_in(urgent)]
            if urgent
            else [due]
        ):
            query = (
                OutboxMessage.select().where(where).order_by(OutboxMessage.due_at).limit(batch - len(rows))
            )
            if db.is_postgres():
                query = query.lock_rows("UPDATE", skip_locked=True)
            rows += await query
            if len(rows) >= batch:
                break
        if not rows:
            return 0
        for row in rows:
            if row["state"] == "sent":
                log.warning(
                    "message sent again after its lease ran out",
                    extra={"message_id": str(row["id"]), "actor": row["actor"]},
                )
            broker.enqueue(_to_message(row))
        if after_send is not None:
            after_send()
        await OutboxMessage.update(
            {
                OutboxMessage.state: "sent",
                OutboxMessage.sent_at: now,
                OutboxMessage.due_at: now + lease,
                OutboxMessage.sends: OutboxMessage.sends + 1,
            }
        ).where(OutboxMessage.id.is_in([row["id"] for row in rows]))
    return len(rows)


async def drain(max_rounds: int = 1000) -> int:
    """Send everything due now (tests and the CLI); returns how many went out."""
    total = 0
    for _ in range(max_rounds):
        sent = await relay_once()
        total += sent
        if sent == 0:
            break
    return total


async def pending_count() -> int:
    return int(await OutboxMessage.count().where(OutboxMessage.state.is_in(["pending", "sent"])))


# -- periodic jobs -------------------------------------------------------------------------


class Periodic:
    """A job that runs once per time slot (every N seconds, or per local month)."""

    def __init__(self, actor: dramatiq.Actor[Any, Any], slot: Callable[[datetime], str]):
        self.actor = actor
        self.slot = slot


PERIODIC: list[Periodic] = []


def every(seconds: int) -> Callable[[datetime], str]:
    """Slots of ``seconds`` seconds, counted from the epoch."""
    return lambda at: str(int(at.timestamp()) // seconds)


def monthly(at: datetime) -> str:
    """One slot per calendar month in the service's time zone."""
    return at.astimezone(clock.local_zone()).strftime("%Y-%m")


def periodic(
    slot: Callable[[datetime], str],
) -> Callable[[dramatiq.Actor[Any, Any]], dramatiq.Actor[Any, Any]]:
    """Register an actor (taking a ``slot`` keyword) to run once per slot, across all processes."""

    def register(actor: dramatiq.Actor[Any, Any]) -> dramatiq.Actor[Any, Any]:
        PERIODIC.append(Periodic(actor, slot))
        return actor

    return register


async def schedule_due() -> int:
    """Start each periodic job whose current slot has not run yet; returns how many started."""
    now = clock.now()
    started = 0
    for job in PERIODIC:
        slot = job.slot(now)
        key = f"{job.actor.actor_name}:{slot}"[:120]
        async with db.atomic():
            inserted = await ScheduledRun.insert(
                ScheduledRun(key=key, job=job.actor.actor_name, slot=slot)
            ).on_conflict(action="DO NOTHING")
            if inserted:
                await send(job.actor, slot=slot)
                started += 1
    return started


# -- the relay loop ------------------------------------------------------------------------


class _SingleRelayLock:
    """On SQLite only one relay may run: the first process to take the file lock relays."""

    def __init__(self, path: Path):
        self.path = path
        self._fh: Any = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            self._fh = None
            return False
        return True

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


async def _listen(wakeup: asyncio.Event) -> Any:
    """Wake the relay on PostgreSQL NOTIFY; returns the listening connection."""
    engine = db.engine()
    conn = await engine.get_new_connection()  # type: ignore[attr-defined]
    await conn.add_listener(NOTIFY_CHANNEL, lambda *_: wakeup.set())
    return conn


async def run_relay(stop: asyncio.Event, schedule_every: float = 5.0) -> None:
    """Relay messages and start periodic jobs until ``stop`` is set."""
    global _local_wakeup, _wake_loop
    wakeup = asyncio.Event()
    _local_wakeup, _wake_loop = wakeup, asyncio.get_running_loop()
    lock: _SingleRelayLock | None = None
    listener = None
    if db.is_postgres():
        listener = await _listen(wakeup)
    else:
        lock = _SingleRelayLock(get_settings().var_dir / "relay.lock")
        if not lock.acquire():
            log.info("another process relays the outbox of this SQLite database; this one won't")
            _local_wakeup = _wake_loop = None
            return
    log.info("outbox relay started")
    loop = asyncio.get_running_loop()
    next_schedule = 0.0
    try:
        while not stop.is_set():
            wakeup.clear()
            try:
                if listener is not None and listener.is_closed():
                    # PostgreSQL restarted: its connection is gone, and with it the wake-ups.
                    listener = await _listen(wakeup)
                    log.info("outbox relay listening again")
                if loop.time() >= next_schedule:
                    await schedule_due()
                    next_schedule = loop.time() + schedule_every
                sent = await relay_once()
            except Exception:
                log.exception("outbox relay round failed; trying again shortly")
                sent = 0
                await asyncio.sleep(IDLE_POLL_SECONDS)
            if sent >= BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(wakeup, stop), timeout=IDLE_POLL_SECONDS)
    finally:
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()
        if lock is not None:
            lock.release()
        _local_wakeup = _wake_loop = None
        log.info("outbox relay stopped")


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    tasks = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
