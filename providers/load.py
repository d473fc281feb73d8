"""The current load of offerings: how many orders each carries now (kept by the orders package).

``take`` is the acceptance step's capacity check and increment in one statement, so two
acceptances racing for an offering's last slot cannot both get it.  ``release`` gives a slot
back when an order ends (completed, cancelled after acceptance, no-show).  ``recount`` sets
the figure from the orders themselves, for a periodic reconciliation.
"""

from __future__ import annotations

from marketplace import clock
from providers.tables import Offering


async def take(offering_id: int) -> bool:
    """One more order on the offering, if it has a slot left; False when full (or unknown)."""
    taken = (
        await Offering.update({Offering.active_orders: Offering.active_orders + 1})
        .where((Offering.id == offering_id) & (Offering.active_orders < Offering.capacity))
        .returning(Offering.id)
    )
    return bool(taken)


async def release(offering_id: int) -> None:
    """One order fewer on the offering (never below zero).

    Not idempotent by itself: a second release for the same order would free a slot another
    order holds. Call it in the same transaction as the order's own conditional move out of a
    slot-holding state, which happens once whatever the number of deliveries.
    """
    await Offering.update({Offering.active_orders: Offering.active_orders - 1}).where(
        (Offering.id == offering_id) & (Offering.active_orders > 0)
    )


async def recount(offering_id: int, active_orders: int) -> None:
    """Set the load from a count of the offering's open orders."""
    await Offering.update(
        {Offering.active_orders: max(0, active_orders), Offering.updated_at: clock.now()}
    ).where(Offering.id == offering_id)
