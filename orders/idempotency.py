"""Idempotency-Key on API writes: a request sent again gets the answer the first one got.

The caller (a user or an API client) and its key name one request.  The first request with a
key is carried out and its answer kept; the same key with the same body answers with the kept
answer, without doing anything again; the same key with another body is refused (422); while
the first is still being carried out, a second gets 409.  Keys are kept 24 hours
(:func:`forget_old`, run every hour by ``orders.tasks.forget_idempotency_keys``).

A controller wraps its write::

    replay = await idempotency.start(caller, key, body)
    if replay is not None:
        return replay            # status and JSON text as first answered
    try:
        answer = ...             # carry the write out
    except BaseException:
        await idempotency.abandon(caller, key)   # a failed attempt may be tried again
        raise
    await idempotency.finish(caller, key, status, answer_text)

or simply ``await idempotency.run(caller, key, body, handler)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from marketplace import clock, db
from marketplace.auth import Principal
from marketplace.errors import Conflict, ValidationFailed
from marketplace.i18n import N_
from orders.tables import IdempotentRequest

KEEP = timedelta(hours=24)
MAX_KEY = 100


class KeyReused(ValidationFailed):
    """The key was used before with another body (answered as 422)."""

    code = "idempotency_key_reused"
    default_message = N_("This Idempotency-Key was already used for a different request. Use a new key.")


class StillInProgress(Conflict):
    """The first request with this key is still being carried out (answered as 409)."""

    code = "idempotency_in_progress"
    default_message = N_("A request with this Idempotency-Key is still being processed. Try again shortly.")


@dataclass(frozen=True)
class Replay:
    """The answer the first request got."""

    status_code: int
    body: str


def body_hash(body: bytes | str | Mapping[str, Any] | None) -> str:
    """A hash of the request body; JSON bodies are compared by content, not by spacing or key order."""
    if body is None:
        body = b""
    if isinstance(body, Mapping):
        raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    else:
        raw = body.encode() if isinstance(body, str) else body
        with contextlib.suppress(ValueError):  # not JSON: compared byte for byte
            raw = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()


def caller_of(p: Principal) -> str:
    """Whose keys these are: an API client's, or a user's."""
    if p.client_id is not None:
        return f"client:{p.client_id}"
    return f"user:{p.user_id}"


def _key(caller: str, key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY:
        raise ValidationFailed.field(
            "Idempotency-Key", N_("An Idempotency-Key has 1 to %(n)s characters."), n=MAX_KEY
        )
    return f"{caller}:{key}"


async def start(caller: str, key: str, body: bytes | str | Mapping[str, Any] | None) -> Replay | None:
    """Claim the key for this request (None: go ahead), or the kept answer to replay.

    KeyReused for another body; StillInProgress while the first request runs.
    """
    full = _key(caller, key)
    digest = body_hash(body)
    now = clock.now()
    for _ in range(2):
        claimed = (
            await IdempotentRequest.insert(IdempotentRequest(key=full, body_hash=digest, created_at=now))
            .on_conflict(action="DO NOTHING")
            .returning(IdempotentRequest.id)
        )
        if claimed:
            return None
        kept = await IdempotentRequest.select().where(IdempotentRequest.key == full).first()
        if kept is None:
            continue  # forgotten in between: claim it again
        if kept["created_at"] <= now - KEEP:
            # Older than a day: as good as forgotten.
            await IdempotentRequest.delete().where(
                (IdempotentRequest.id == kept["id"]) & (IdempotentRequest.created_at <= now - KEEP)
            )
            continue
        if kept["body_hash"] != digest:
            raise KeyReused()
        if kept["state"] != "done":
            raise StillInProgress()
        return Replay(int(kept["status_code"]), str(kept["response"]))
    raise StillInProgress()


async def finish(caller: str, key: str, status_code: int, body: str) -> None:
    """Keep the answer of the request that claimed the key."""
    await IdempotentRequest.update(
        {
            IdempotentRequest.state: "done",
            IdempotentRequest.status_code: status_code,
            IdempotentRequest.response: body,
        }
    ).where(IdempotentRequest.key == _key(caller, key))


async def abandon(caller: str, key: str) -> None:
    """Free the key of a request that failed, so that the caller may try again."""
    await IdempotentRequest.delete().where(
        (IdempotentRequest.key == _key(caller, key)) & (IdempotentRequest.state == "in_progress")
    )


async def run(
    caller: str,
    key: str,
    body: bytes | str | Mapping[str, Any] | None,
    handler: Callable[[], Awaitable[tuple[int, str]]],
) -> Replay:
    """Carry out ``handler`` once per key and body; its (status, JSON text), first or kept."""
    replay = await start(caller, key, body)
    if replay is not None:
        return replay
    try:
        status_code, text = await handler()
    except BaseException:
        await abandon(caller, key)
        raise
    await finish(caller, key, status_code, text)
    return Replay(status_code, text)


async def forget_old() -> int:
    """Delete keys older than a day; how many went."""
    async with db.atomic():
        gone = (
            await IdempotentRequest.delete()
            .where(IdempotentRequest.created_at <= clock.now() - KEEP)
            .returning(IdempotentRequest.id)
        )
    return len(gone)
