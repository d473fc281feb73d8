"""Actors of `orders`."""

from __future__ import annotations

import logging

import marketplace.broker  # noqa: F401 - the broker is set before any actor is declared
from marketplace.broker import task
from marketplace.outbox import every, monthly, periodic
from orders import handoffs, settlement  # noqa: F401 - register the warning hand-offs and level grants

log = logging.getLogger("cloudmarket.orders")

# -- routing ------------------------------------------------------------------------------------
# Stand-ins so that booking can send its message (level 1 on a queue of its own); the routing
# work replaces them.

URGENT = -10


@task(queue="routing")
async def route_order(order_id: int) -> None:
    """Find a provider for a newly booked order (stand-in: routing is not written yet)."""


@task(queue="routing_urgent", priority=URGENT)
async def route_order_urgent(order_id: int) -> None:
    """``route_order`` for a level 1 order (stand-in)."""


# -- credits ------------------------------------------------------------------------------------


@periodic(monthly)
@task(queue="credits", time_limit=60 * 60_000)
async def grant_monthly_credits(slot: str) -> None:
    """Grant every household its level's credits for the month ``slot`` (once per household)."""
    await settlement.grant_month(slot)


@periodic(every(3600))
@task(queue="credits")
async def expire_temporary_credits(slot: str) -> None:
    """Write off temporary credits whose last day has passed (hourly)."""
    await settlement.expire_temporary()


@periodic(every(3600))
@task(queue="credits")
async def refresh_settlements(slot: str) -> None:
    """Bring this month's open settlements up to date with the confirmed orders (hourly)."""
    from marketplace import clock

    await settlement.refresh(settlement.month_of(clock.now()))


@periodic(every(24 * 3600))
@task(queue="credits")
async def check_credits(slot: str) -> None:
    """Recompute every credit account from its entries and log the ones that differ (daily)."""
    from orders import credits

    differences = await credits.check()
    for difference in differences[:50]:
        log.error(
            "credit account differs from its entries",
            extra={
                "household_id": difference.household_id,
                "stored": f"{difference.stored.available}/{difference.stored.reserved}",
                "computed": f"{difference.computed.available}/{difference.computed.reserved}",
            },
        )


@periodic(every(3600))
@task(queue="credits")
async def forget_idempotency_keys(slot: str) -> None:
    """Delete Idempotency-Key records older than a day (hourly)."""
    from orders import idempotency

    await idempotency.forget_old()
