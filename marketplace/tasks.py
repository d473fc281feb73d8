"""Actors of the app shell: housekeeping."""

from __future__ import annotations

from datetime import timedelta

from litestar.stores.file import FileStore

from marketplace import clock, kv
from marketplace.accounts import SESSION_STORE
from marketplace.broker import task
from marketplace.outbox import every, periodic
from marketplace.tables import ScheduledRun

KEEP_SCHEDULE_RECORDS = timedelta(days=400)


@periodic(every(24 * 3600))
@task(queue="housekeeping")
async def housekeeping(slot: str) -> None:
    """Drop old periodic-run records and, in embedded mode, expired session files."""
    await ScheduledRun.delete().where(ScheduledRun.at < clock.now() - KEEP_SCHEDULE_RECORDS)
    store = kv.store(SESSION_STORE)
    if isinstance(store, FileStore) and await store.path.is_dir():
        await store.delete_expired()
