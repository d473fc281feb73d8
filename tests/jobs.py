"""Actors and a table used only by the tests of the queue machinery."""

from __future__ import annotations

from collections import Counter

from piccolo.columns import Integer, Varchar
from piccolo.table import Table

from marketplace.broker import task

RUNS: Counter[str] = Counter()


class Tally(Table, tablename="test_tally"):
    """One row per key the tally actor has seen, however often it ran."""

    key = Varchar(length=50, unique=True)
    amount = Integer()


@task(queue="test")
async def tally(key: str, amount: int = 1) -> None:
    """Idempotent: the effect is keyed by ``key``, so a second run changes nothing."""
    RUNS[key] += 1
    await Tally.insert(Tally(key=key, amount=amount)).on_conflict(action="DO NOTHING")


@task(queue="test", max_retries=2, min_backoff=10, max_backoff=20)
async def always_fails(key: str) -> None:
    RUNS[key] += 1
    raise RuntimeError(f"gateway refused {key}")
