"""Idempotency-Key: the same request answered once, another body refused, keys kept a day."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace import clock
from marketplace.auth import Principal, Role
from marketplace.errors import ValidationFailed
from orders import idempotency
from orders.idempotency import KeyReused, Replay, StillInProgress
from orders.tables import IdempotentRequest


def test_json_bodies_compare_by_content():
    assert idempotency.body_hash('{"a": 1, "b": [1, 2]}') == idempotency.body_hash(b'{"b":[1,2],"a":1}')
    assert idempotency.body_hash({"a": 1}) == idempotency.body_hash('{"a":1}')
    assert idempotency.body_hash('{"a": 1}') != idempotency.body_hash('{"a": 2}')
    assert idempotency.body_hash(b"not json") != idempotency.body_hash(b"not json ")


def test_callers_are_users_or_api_clients():
    assert idempotency.caller_of(Principal(user_id=7, role=Role.RESIDENT)) == "user:7"
    assert idempotency.caller_of(Principal(user_id=7, role=Role.ADMIN, client_id=3)) == "client:3"


async def test_the_same_key_and_body_get_the_first_answer_without_running_again():
    runs = []

    async def handler():
        runs.append(1)
        return 201, '{"number": "CS20261206-000001"}'

    first = await idempotency.run("user:1", "k-1", {"category": "cleaning"}, handler)
    again = await idempotency.run("user:1", "k-1", '{"category":"cleaning"}', handler)
    assert first == again == Replay(201, '{"number": "CS20261206-000001"}')
    assert len(runs) == 1
    # Another caller's key of the same name is another request.
    await idempotency.run("user:2", "k-1", {"category": "cleaning"}, handler)
    assert len(runs) == 2


async def test_the_same_key_with_another_body_is_refused_with_422():
    await idempotency.run("user:1", "k-2", {"category": "cleaning"}, lambda: _answer(201))
    with pytest.raises(KeyReused) as refused:
        await idempotency.start("user:1", "k-2", {"category": "meals"})
    assert refused.value.status == 422


async def test_a_key_in_progress_gets_409():
    assert await idempotency.start("user:1", "k-3", b"{}") is None
    with pytest.raises(StillInProgress) as busy:
        await idempotency.start("user:1", "k-3", b"{}")
    assert busy.value.status == 409
    await idempotency.finish("user:1", "k-3", 200, "{}")
    assert await idempotency.start("user:1", "k-3", b"{}") == Replay(200, "{}")


async def test_a_failed_request_frees_its_key():
    async def broken():
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        await idempotency.run("user:1", "k-4", b"{}", broken)
    assert await idempotency.run("user:1", "k-4", b"{}", lambda: _answer(201)) == Replay(201, "{}")


async def test_a_key_must_be_short_and_not_blank():
    with pytest.raises(ValidationFailed):
        await idempotency.start("user:1", " ", b"{}")
    with pytest.raises(ValidationFailed):
        await idempotency.start("user:1", "x" * 101, b"{}")


async def test_keys_are_kept_a_day():
    await idempotency.run("user:1", "k-5", b"{}", lambda: _answer(201))
    clock.freeze(clock.now() + timedelta(hours=23))
    assert await idempotency.forget_old() == 0
    with pytest.raises(KeyReused):
        await idempotency.start("user:1", "k-5", b'{"other": 1}')
    clock.freeze(clock.now() + timedelta(hours=2))
    # A day later the key is new again, even before the cleanup ran.
    assert await idempotency.start("user:1", "k-5", b'{"other": 2}') is None
    clock.freeze(clock.now() + timedelta(hours=25))
    assert await idempotency.forget_old() == 1
    assert await IdempotentRequest.count() == 0


async def _answer(status: int) -> tuple[int, str]:
    return status, "{}"
