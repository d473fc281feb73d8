"""A scene for the orders pages and API tests: two households, two providers, orders in many states.

Orders are written as rows here (the booking and routing services have tests of their own);
moves go through ``orders.moves`` so that the timeline holds real events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from households.tables import Household
from marketplace import accounts, clock
from marketplace.auth import LinkKind
from orders import moves
from orders.tables import Offer, Order
from tests.catalog_data import seed_catalog
from tests.households.conftest import ADMIN, member_data
from tests.providers.factories import make_offering, make_provider

_numbers = iter(range(1, 1_000_000))


def window(days: int = 1, hour: int = 10) -> tuple[datetime, datetime]:
    day = clock.local_now().date() + timedelta(days=days)
    start = datetime(day.year, day.month, day.day, hour, tzinfo=clock.local_zone())
    return start, start + timedelta(hours=2)


async def household(community_id: int, *, level: int = 2, category: str = "tekun") -> int:
    from households import services

    n = next(_numbers)
    member = member_data(name=f"住户{n}", seq=(2 * n) % 1000, can_use_phone=True, phone=f"1370000{n:04d}")
    household_id = await services.create_household(
        ADMIN,
        {
            "code": f"WEB-{n:05d}",
            "community_id": community_id,
            "address": f"秘密路{n}号",
            "phone": f"1360000{n:04d}",
            "category": category,
            "groups": [],
        },
        [member],
    )
    await Household.update({Household.level: level}).where(Household.id == household_id)
    return household_id


async def order(
    household_id: int,
    category_id: int,
    *,
    provider: int | None = None,
    offering: int | None = None,
    days: int = 1,
    credits: int = 10,
) -> int:
    row = (
        await Household.select(Household.community, Household.level)
        .where(Household.id == household_id)
        .first()
    )
    start, end = window(days)
    n = next(_numbers)
    created = await Order.insert(
        Order(
            number=f"CS{clock.local_now():%Y%m%d}-{n:06d}",
            household=household_id,
            community=row["community"],
            level=row["level"] or 3,
            category=category_id,
            window_start=start,
            window_end=end,
            credits=credits,
            submitted_at=clock.now(),
        )
    ).returning(Order.id)
    order_id: int = created[0]["id"]
    await moves.record(order_id, "submit", to_state="submitted")
    return order_id


async def offer(order_id: int, provider_id: int, offering_id: int, *, state: str = "open") -> int:
    await moves.move(order_id, "route")
    await moves.move(order_id, "offer", values={"offered_at": clock.now()})
    created = await Offer.insert(
        Offer(
            order=order_id,
            provider=provider_id,
            offering=offering_id,
            key=f"{order_id}:{provider_id}",
            reasons='[{"factor": "load", "text": "空闲"}]',
            state=state,
            offered_at=clock.now(),
            expires_at=clock.now() + timedelta(minutes=30),
        )
    ).returning(Offer.id)
    return int(created[0]["id"])


async def accept(order_id: int, provider_id: int, offering_id: int) -> None:
    await offer(order_id, provider_id, offering_id, state="accepted")
    await moves.move(
        order_id,
        "accept",
        values={"provider": provider_id, "offering": offering_id, "accepted_at": clock.now()},
    )


@dataclass
class Scene:
    community: int
    other_community: int
    categories: dict[str, int]
    home: int  # a household in `community`
    away: int  # a household in `other_community`
    provider: int
    offering: int
    rival: int
    rival_offering: int
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, int] = field(default_factory=dict)


async def build(area: dict[str, Any], make_user: Any) -> Scene:
    """Households at home and away, a provider and its rival, users of each role, and orders:

    offered (home, offered to the provider), accepted (home, by the provider),
    rival (away, accepted by the rival), escalated (away), cancelled (home).
    """
    community = area["communities"]["尧化门社区"]
    other = area["communities"]["马群社区"]
    categories = await seed_catalog()
    home = await household(community)
    away = await household(other)
    provider = await make_provider(name="甲服务中心")
    rival = await make_provider(name="乙服务中心")
    offering = await make_offering(provider, categories["cleaning"], [community, other])
    rival_offering = await make_offering(rival, categories["cleaning"], [community, other])
    scene = Scene(community, other, categories, home, away, provider, offering, rival, rival_offering)
    links = {
        "resident": (LinkKind.HOUSEHOLD, home),
        "resident_away": (LinkKind.HOUSEHOLD, away),
        "staff": (LinkKind.PROVIDER, provider),
        "rival_staff": (LinkKind.PROVIDER, rival),
        "steward": (LinkKind.COMMUNITY, community),
        "steward_away": (LinkKind.COMMUNITY, other),
        "admin": None,
    }
    for name, link in links.items():
        role = {"resident_away": "resident", "rival_staff": "provider_staff", "staff": "provider_staff",
                "steward_away": "steward"}.get(name, name)  # fmt: skip
        user = await make_user(role, name=f"{name}-{uuid.uuid4().hex[:4]}")
        if link is not None:
            await accounts.link(user["id"], link[0], link[1])
        scene.users[name] = user
    cleaning = categories["cleaning"]
    scene.orders["offered"] = await order(home, cleaning)
    await offer(scene.orders["offered"], provider, offering)
    scene.orders["accepted"] = await order(home, cleaning, days=2)
    await accept(scene.orders["accepted"], provider, offering)
    scene.orders["rival"] = await order(away, cleaning, days=3)
    await accept(scene.orders["rival"], rival, rival_offering)
    scene.orders["escalated"] = await order(away, categories["errands"], days=4)
    await moves.move(scene.orders["escalated"], "escalate", values={"escalation_reason": "no_candidate"})
    scene.orders["cancelled"] = await order(home, categories["meals"], days=5)
    await moves.move(
        scene.orders["cancelled"], "cancel", note="不需要了", values={"cancel_reason": "不需要了"}
    )
    return scene
