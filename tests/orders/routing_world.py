"""Rows for the routing and service tests: a household at a known place, providers around it, orders.

Until the booking service is on main, orders are written directly (:func:`make_order`), as
``booking.book`` would leave them: submitted, with the level policy's targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from households.tables import Household
from marketplace import accounts, clock
from marketplace.auth import LinkKind, Principal, Role
from orders.tables import Order
from tests.catalog_data import seed_catalog
from tests.households.conftest import ADMIN, member_data
from tests.providers.factories import make_offering, make_provider

AROUND_THE_CLOCK = [(d, 0, 24 * 60) for d in range(7)]
# 尧化门 and places 1, 3 and 6 km east of it.
HOME = (32.1100, 118.8600)
KM_EAST = 0.0106  # degrees of longitude per km at this latitude


def principal(user_id: int, role: Role, **links: list[int]) -> Principal:
    return Principal(
        user_id=user_id,
        role=role,
        display_name="测试",
        links={kind: frozenset(str(ref) for ref in refs) for kind, refs in links.items()},
    )


def tomorrow(hour: int = 10, hours: int = 2) -> tuple[datetime, datetime]:
    day = clock.local_now().date() + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, hour, tzinfo=clock.local_zone())
    return start, start + timedelta(hours=hours)


@dataclass
class RoutingWorld:
    community: int
    categories: dict[str, int]
    household: int
    steward: Principal
    resident: Principal
    providers: list[int] = field(default_factory=list)
    offerings: list[int] = field(default_factory=list)
    staff: list[Principal] = field(default_factory=list)
    make_user: Any = None

    async def add_provider(
        self,
        km: float | None,
        *,
        capacity: int = 3,
        category: str = "cleaning",
        kind: str = "social_organization",
        hours: list[tuple[int, int, int]] | None = None,
    ) -> tuple[int, int, Principal]:
        """A verified provider ``km`` east of the home (None: no coordinates), its offering and staff."""
        place = {} if km is None else {"latitude": HOME[0], "longitude": HOME[1] + km * KM_EAST}
        provider_id = await make_provider(name=f"服务中心{len(self.providers) + 1}", kind=kind, **place)
        offering_id = await make_offering(
            provider_id,
            self.categories[category],
            [self.community],
            hours=AROUND_THE_CLOCK if hours is None else hours,
            capacity=capacity,
            credit_cost=0,
        )
        role = Role.VOLUNTEER if kind == "individual_volunteer" else Role.PROVIDER_STAFF
        user = await self.make_user(role.value)
        await accounts.link(user["id"], LinkKind.PROVIDER, provider_id)
        staff = principal(user["id"], role, provider=[provider_id])
        self.providers.append(provider_id)
        self.offerings.append(offering_id)
        self.staff.append(staff)
        return provider_id, offering_id, staff


_numbers = iter(range(1, 10_000_000))


async def make_order(
    world: RoutingWorld,
    *,
    level: int = 2,
    category: str = "cleaning",
    routing: str = "direct",
    household: int | None = None,
    accept_in: timedelta = timedelta(hours=2),
    serve_in: timedelta = timedelta(hours=24),
    credits: int = 0,
) -> int:
    """A submitted order, as booking leaves it."""
    start, end = tomorrow()
    now = clock.now()
    order = Order(
        number=f"CS-T{next(_numbers):08d}",
        household=household or world.household,
        community=world.community,
        level=level,
        category=world.categories[category],
        routing=routing,
        state="submitted",
        window_start=start,
        window_end=end,
        credits=credits,
        accept_by=now + accept_in,
        serve_by=now + serve_in,
        submitted_at=now,
    )
    await order.save()
    return int(order.id)


async def new_household(
    community_id: int, *, steward_id: int | None = None, phone: str = "13612340000"
) -> int:
    from households import services

    household_id = await services.create_household(
        ADMIN,
        {
            "code": f"RT-{next(_numbers):06d}",
            "community_id": community_id,
            "address": "尧化门测试路1号",
            "phone": phone,
            "category": "dibao",
            "groups": [],
        },
        [member_data(seq=next(_numbers) % 900 + 2, can_use_phone=True, phone=phone)],
    )
    await Household.update(
        {
            Household.level: 2,
            Household.latitude: HOME[0],
            Household.longitude: HOME[1],
            Household.steward: steward_id,
        }
    ).where(Household.id == household_id)
    return household_id


@pytest.fixture
async def world(area, make_user) -> RoutingWorld:
    """A household in 尧化门社区 with a steward and a resident account; no providers yet."""
    community_id = area["communities"]["尧化门社区"]
    categories = await seed_catalog()
    steward_user = await make_user("steward")
    await accounts.link(steward_user["id"], LinkKind.COMMUNITY, community_id)
    household_id = await new_household(community_id, steward_id=steward_user["id"])
    resident_user = await make_user("resident")
    await accounts.link(resident_user["id"], LinkKind.HOUSEHOLD, household_id)
    return RoutingWorld(
        community=community_id,
        categories=categories,
        household=household_id,
        steward=principal(steward_user["id"], Role.STEWARD, community=[community_id]),
        resident=principal(resident_user["id"], Role.RESIDENT, household=[household_id]),
        make_user=make_user,
    )
