"""Actors of `households`: level changes, override expiry, rescoring, imports, activation, warnings."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from dramatiq.middleware import CurrentMessage

from households import events, services
from households.tables import HouseholdEvent
from marketplace.broker import task
from marketplace.outbox import every, periodic

log = logging.getLogger("cloudmarket.households")

ANNOUNCE_BATCH = 500
RESCORE_BATCH = 1000


def _level(value: object) -> int | None:
    return int(str(value)) if value not in (None, "") else None


@task(queue="households")
async def level_changed(event_ids: list[int]) -> None:
    """Call every level-change subscriber for these history rows (they key their effect by event id)."""
    if not event_ids:
        return
    rows = await HouseholdEvent.select(
        HouseholdEvent.id,
        HouseholdEvent.household,
        HouseholdEvent.household.community.as_alias("community"),
        HouseholdEvent.kind,
        HouseholdEvent.at,
        HouseholdEvent.detail,
    ).where(HouseholdEvent.id.is_in(list(event_ids)) & HouseholdEvent.kind.is_in(list(services.LEVEL_KINDS)))
    for row in sorted(rows, key=lambda r: r["id"]):
        detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
        at: datetime = row["at"]
        change = events.LevelChanged(
            event_id=row["id"],
            household_id=row["household"],
            community_id=row["community"],
            old_level=_level(detail.get("effective_from")),
            new_level=_level(detail.get("effective_to")),
            cause=row["kind"],
            at=at,
        )
        for subscriber in events.subscribers():
            await subscriber(change)


@periodic(every(300))
@task(queue="households")
async def expire_overrides(slot: str) -> None:
    """End level overrides whose last day has passed (every five minutes)."""
    await services.expire_overrides()


@task(queue="households")
async def rescore_all(version: int) -> None:
    """Score every household with the rules of ``version`` (or newer), a batch per transaction."""
    await services.rescore_all(version, batch=RESCORE_BATCH)


@task(queue="imports", time_limit=30 * 60_000, max_retries=2)
async def run_import(job_id: int) -> None:
    """Check (and, for a real run, write) one uploaded file; safe to run again."""
    from households import importer

    try:
        await importer.run(job_id)
    except Exception:
        message = CurrentMessage.get_current_message()
        if message is None or message.options.get("retries", 0) >= run_import.options["max_retries"]:
            await importer.give_up(job_id)  # the last try: drop the file now, not in a day
        raise


@periodic(every(3600))
@task(queue="imports")
async def forget_import_files(slot: str) -> None:
    """Drop uploaded files (personal data) of dry runs nobody carried out within a day."""
    from households import importer

    await importer.forget_stale_files()


@task(queue="households", priority=-10)
async def send_activation_code(challenge_id: int) -> None:
    """Send an activation code by SMS if the phone may activate an account (codes skip the line)."""
    from households import activation

    await activation.send_code(challenge_id)


@periodic(every(3600))
@task(queue="households")
async def forget_activation_challenges(slot: str) -> None:
    """Delete activation challenges a day old (they hold the phone numbers people typed)."""
    from households import activation

    await activation.forget_old_challenges()


@task(queue="warnings", priority=-5)
async def notify_assigned(warning_ids: list[int]) -> None:
    """Tell the stewards their new warnings at once (notify's dedupe key makes a rerun harmless)."""
    from households import monitoring

    await monitoring.notify_assigned(warning_ids)


@periodic(every(60))
@task(queue="warnings")
async def escalate_overdue(slot: str) -> None:
    """Escalate warnings not verified by their deadline to the street's supervisor (every minute)."""
    from households import monitoring

    while await monitoring.escalate_overdue() >= monitoring.ESCALATE_BATCH:
        pass


@task(queue="warnings")
async def hand_off(warning_id: int) -> None:
    """Pass a decision on temporary credits or services booked now to the orders package."""
    from households import monitoring

    await monitoring.hand_off(warning_id)
