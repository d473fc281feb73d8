"""Actors of `orders`."""

from __future__ import annotations

import marketplace.broker  # noqa: F401 - the broker is set before any actor is declared
from marketplace.broker import task

# -- routing ------------------------------------------------------------------------------------
# A stand-in so that booking can send its message; the routing work replaces it.


@task(queue="routing")
async def route_order(order_id: int) -> None:
    """Find a provider for a newly booked order (stand-in: routing is not written yet)."""
