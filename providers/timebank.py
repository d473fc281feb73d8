"""The volunteer time bank: minutes served, logged once per order and person.

The orders package calls :func:`log_hours` when a volunteer's order is completed; the key
makes a second call for the same order and person a no-op, so an actor may run it twice.
"""

from __future__ import annotations

from datetime import datetime

from marketplace import clock
from marketplace.errors import ValidationFailed
from marketplace.i18n import N_
from providers.tables import VolunteerHours

MAX_MINUTES = 24 * 60


async def log_hours(
    *,
    provider_id: int,
    minutes: int,
    key: str,
    user_id: int | None = None,
    order_id: int | None = None,
    category_id: int | None = None,
    served_at: datetime | None = None,
    note: str = "",
) -> bool:
    """Add a time-bank entry; False when one with this key exists already."""
    if not 0 < minutes <= MAX_MINUTES:
        raise ValidationFailed.field(
            "minutes", N_("Enter a number from %(low)s to %(high)s."), low=1, high=MAX_MINUTES
        )
    inserted = (
        await VolunteerHours.insert(
            VolunteerHours(
                provider=provider_id,
                user=user_id,
                order_id=order_id,
                category=category_id,
                minutes=minutes,
                served_at=served_at or clock.now(),
                key=key[:80],
                note=note[:500],
            )
        )
        .on_conflict(target=VolunteerHours.key, action="DO NOTHING")
        .returning(VolunteerHours.id)
    )
    return bool(inserted)


def order_key(order_id: int, user_id: int | None) -> str:
    """The key of an order's entry for one person."""
    return f"order:{order_id}:{user_id or 0}"
