"""What a steward decided when handling a warning, carried out by the orders package.

``households.handoffs`` defines the two requests (temporary credits, services booked now) and
calls what is registered here from its ``hand_off`` actor, which may run twice: each effect is
keyed by the warning's id (the ledger entry ``temporary:warning:<id>``, the order's source key
``warning:<id>:<category>``), so a second call returns what the first one did.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from households import handoffs
from marketplace import clock
from marketplace.errors import DomainError
from orders import booking, credits
from orders.tables import CreditEntry

log = logging.getLogger("cloudmarket.orders")

# Services booked "now" for a day: from nine (or half an hour from now) for four hours.
DAY_STARTS = time(9, 0)
LEAD = timedelta(minutes=30)
WINDOW = timedelta(hours=4)


def window_for(wanted_on: date, now: datetime) -> tuple[datetime, datetime]:
    """The service window for a service wanted on a day: its morning, or soon if that has passed."""
    zone = clock.local_zone()
    start = datetime.combine(wanted_on, DAY_STARTS, tzinfo=zone)
    soonest = now + LEAD
    if start < soonest:
        # Round up to the next quarter hour: a time people can read out.
        local = soonest.astimezone(zone)
        extra = (15 - local.minute % 15) % 15
        start = (local + timedelta(minutes=extra)).replace(second=0, microsecond=0)
    return start, start + WINDOW


@handoffs.provides_credit_grants
async def grant(request: handoffs.CreditGrant) -> str:
    """Temporary credits for a warning, once; the reference is the ledger entry's key."""
    key = f"warning:{request.warning_id}"
    await credits.grant_temporary(
        request.household_id,
        request.credits,
        valid_until=request.valid_until,
        key=key,
        note=request.reason,
        by_user=request.granted_by,
    )
    entry = await CreditEntry.select(CreditEntry.id).where(CreditEntry.key == f"temporary:{key}").first()
    return f"credits:{entry['id'] if entry else key}"


@handoffs.provides_service_bookings
async def book(request: handoffs.ServiceBooking) -> str:
    """Book each service of the decision, once; the order numbers, and what could not be booked."""
    start, end = window_for(request.wanted_on, clock.now())
    parts: list[str] = []
    for code in request.categories:
        try:
            order = await booking.book_for_warning(
                request.household_id,
                code,
                start=start,
                end=end,
                note=request.note,
                key=f"warning:{request.warning_id}:{code}",
                by_user=request.booked_by,
            )
            parts.append(order["number"])
        except DomainError as exc:
            log.warning(
                "service decided on a warning could not be booked",
                extra={"warning_id": request.warning_id, "category": code, "error": exc.code},
            )
            parts.append(f"{code}:{exc.code}")
    return " ".join(parts)
