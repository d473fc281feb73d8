"""Actors of `reports`: building a report in the background, forgetting old ones."""

from __future__ import annotations

from marketplace.broker import task
from marketplace.outbox import every, periodic
from reports import services


@task(queue="reports")
async def build_report(key: str) -> None:
    """Build the report of ``key``; a second run finds it fresh and does nothing."""
    await services.build(key)


@periodic(every(24 * 3600))
@task(queue="reports")
async def forget_old_reports(slot: str) -> None:
    """Once a day, delete cached reports of an older version or not asked for in a while."""
    await services.forget_old()
