"""Rows for provider tests: areas, providers with offerings, hours and service areas."""

from __future__ import annotations

import uuid
from typing import Any

from providers.rules import credit_code_check_char
from providers.tables import Offering, OpeningHours, Provider, ServiceArea

WEEKDAYS = range(7)
_codes = iter(range(1, 10_000_000))


def credit_code() -> str:
    """A valid, unique unified social credit code."""
    first17 = f"52320113MJ{next(_codes):07d}"
    return first17 + credit_code_check_char(first17)


async def make_areas() -> dict[str, Any]:
    """The demo district's streets and communities (ids by name)."""
    from households.areas import seed_demo_areas

    return await seed_demo_areas()


async def make_provider(
    *,
    name: str = "测试服务中心",
    kind: str = "social_organization",
    status: str = "verified",
    is_active: bool = True,
    team: int | None = None,
    address: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
) -> int:
    provider = Provider(
        public_id=uuid.uuid4(),
        kind=kind,
        name=name,
        credit_code=credit_code() if kind != "individual_volunteer" else "",
        contact_name="联系人",
        contact_phone="13900001111",
        status=status,
        is_active=is_active,
        team=team,
        address=address,
        latitude=latitude,
        longitude=longitude,
    )
    await provider.save()
    return provider.id


async def make_offering(
    provider_id: int,
    category_id: int,
    communities: list[int],
    *,
    hours: list[tuple[int, int, int]] | None = None,
    capacity: int = 3,
    active_orders: int = 0,
    credit_cost: int = 10,
    is_active: bool = True,
) -> int:
    """An offering; ``hours`` are (weekday, opens, closes) in minutes, default 08:00–18:00 daily."""
    offering = Offering(
        public_id=uuid.uuid4(),
        provider=provider_id,
        category=category_id,
        key=f"{provider_id}:{category_id}",
        unit="visit",
        duration_minutes=60,
        credit_cost=credit_cost,
        capacity=capacity,
        active_orders=active_orders,
        is_active=is_active,
    )
    await offering.save()
    await ServiceArea.insert(
        *[
            ServiceArea(offering=offering.id, community=c, category=category_id, key=f"{offering.id}:{c}")
            for c in communities
        ]
    )
    intervals = hours if hours is not None else [(d, 8 * 60, 18 * 60) for d in WEEKDAYS]
    if intervals:
        await OpeningHours.insert(
            *[OpeningHours(offering=offering.id, weekday=d, opens_at=o, closes_at=c) for d, o, c in intervals]
        )
    return offering.id
