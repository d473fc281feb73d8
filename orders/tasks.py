"""Actors of `orders`."""

import marketplace.broker  # noqa: F401 - the broker is set before any actor is declared
from marketplace.broker import task
from marketplace.outbox import every, periodic

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
