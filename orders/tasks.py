"""Actors of `orders`."""

from __future__ import annotations

import logging

import marketplace.broker  # noqa: F401 - the broker is set before any actor is declared
from marketplace.broker import task
from marketplace.outbox import every, monthly, periodic
from orders import erasure, handoffs, settlement  # noqa: F401 - register erasure, warning hand-offs, level grants

log = logging.getLogger("cloudmarket.orders")

# -- routing ---------------------------------------------------------------------------------------
# Level 1 orders go through the ``routing_urgent`` queue (orders.dispatch.request_routing): a queue
# of its own, read by its own consumer in every worker, and actors of a lower priority, which the
# outbox relay hands to the broker first, so a backlog of level 3 orders never holds them up.

URGENT = -10


@task(queue="routing")
async def route_order(order_id: int) -> None:
    """Offer the order to its next candidate(s), or escalate it (a rerun does nothing more)."""
    from orders import dispatch

    await dispatch.route(order_id)


@task(queue="routing_urgent", priority=URGENT)
async def route_order_urgent(order_id: int) -> None:
    """``route_order`` for a level 1 order."""
    from orders import dispatch

    await dispatch.route(order_id)


@task(queue="routing")
async def expire_offer(offer_id: int) -> None:
    """Time an unanswered offer out at its expiry and pass the order on."""
    from orders import dispatch

    await dispatch.expire(offer_id)


@task(queue="routing_urgent", priority=URGENT)
async def expire_offer_urgent(offer_id: int) -> None:
    """``expire_offer`` for a level 1 order."""
    from orders import dispatch

    await dispatch.expire(offer_id)


@periodic(every(60))
@task(queue="routing")
async def watch_sla(slot: str) -> None:
    """Tell stewards of orders past their time to accept or to service (every minute)."""
    from orders import dispatch

    await dispatch.watch_sla()


@periodic(every(3600))
@task(queue="routing")
async def auto_confirm(slot: str) -> None:
    """Confirm served orders nobody confirmed or disputed in time (every hour)."""
    from orders import fulfilment

    await fulfilment.auto_confirm_due()


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
