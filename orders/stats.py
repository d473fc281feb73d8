"""Providers' response figures (``pv_provider_stats``), kept by the orders package as orders move.

Each function adds to the counts in one UPDATE, called inside the transaction of the move that
causes it, so a figure changes exactly as often as the move happens (a rerun of an actor does
not move the order again, so it does not count twice).  The median time to accept is
recomputed from the provider's latest accepted offers.
"""

from __future__ import annotations

import statistics
from typing import Any

from marketplace import clock
from orders.tables import Offer
from providers.tables import ProviderStats

MEDIAN_OF = 200  # latest accepted offers the median is taken over


async def _add(provider_id: int, changes: dict[Any, Any]) -> None:
    await ProviderStats.insert(ProviderStats(provider=provider_id)).on_conflict(action="DO NOTHING")
    changes[ProviderStats.updated_at] = clock.now()
    await ProviderStats.update(changes).where(ProviderStats.provider == provider_id)


async def offered(provider_id: int) -> None:
    """One more offer made to the provider."""
    await _add(provider_id, {ProviderStats.offers_total: ProviderStats.offers_total + 1})


async def accepted(provider_id: int) -> None:
    """The provider accepted an offer: count it and recompute its median time to accept."""
    rows = (
        await Offer.select(Offer.offered_at, Offer.answered_at)
        .where(
            (Offer.provider == provider_id)
            & (Offer.state == "accepted")
            & (Offer.mode != "steward")
            & Offer.answered_at.is_not_null()
        )
        .order_by(Offer.id, ascending=False)
        .limit(MEDIAN_OF)
    )
    seconds = [max(0.0, (r["answered_at"] - r["offered_at"]).total_seconds()) for r in rows]
    median = int(statistics.median(seconds)) if seconds else None
    await _add(
        provider_id,
        {
            ProviderStats.offers_accepted: ProviderStats.offers_accepted + 1,
            ProviderStats.median_accept_seconds: median,
        },
    )


async def closed(provider_id: int, *, served: bool) -> None:
    """An order of the provider ended: served (completed) or not (a no-show)."""
    changes: dict[Any, Any] = {ProviderStats.orders_total: ProviderStats.orders_total + 1}
    if served:
        changes[ProviderStats.orders_completed] = ProviderStats.orders_completed + 1
    else:
        changes[ProviderStats.no_shows] = ProviderStats.no_shows + 1
    await _add(provider_id, changes)


async def rated(provider_id: int, rating: int) -> None:
    """A resident rated an order of the provider (1–5)."""
    await _add(
        provider_id,
        {
            ProviderStats.rating_count: ProviderStats.rating_count + 1,
            ProviderStats.rating_sum: ProviderStats.rating_sum + rating,
        },
    )
