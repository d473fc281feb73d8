"""Actors of `reports`: building a report in the background."""

from __future__ import annotations

from marketplace.broker import task
from reports import services


@task(queue="reports")
async def build_report(key: str) -> None:
    """Build the report of ``key``; a second run finds it fresh and does nothing."""
    await services.build(key)
