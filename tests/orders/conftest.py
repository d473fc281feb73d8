"""Fixtures of the orders tests: a household with credits, a provider serving it, stewards, residents.

``orders_world`` builds the usual scene in one call: the demo district, a household of level 2
in 尧化门社区 with 100 credits, a verified provider whose cleaning offering (and any other
category asked for) serves that community around the clock, a steward scoped to the community
and a resident linked to the household, as principals and as user rows.  Other helpers add
their fixtures at the end of this file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from households.tables import Household, Member
from marketplace import accounts, clock, i18n
from marketplace.auth import LinkKind, Principal, Role
from orders import credits
from tests.catalog_data import seed_catalog
from tests.households.conftest import (  # noqa: F401 - fixtures shared with the households tests
    ADMIN,
    area,
    community,
    make_household,
    member_data,
    other_community,
    resident_of,
    steward,
)
from tests.providers.factories import make_offering, make_provider

AROUND_THE_CLOCK = [(d, 0, 24 * 60) for d in range(7)]


def principal(user_id: int, role: Role, **links: list[int]) -> Principal:
    """A principal as the auth middleware would build it (links by kind name)."""
    return Principal(
        user_id=user_id,
        role=role,
        display_name="测试",
        links={kind: frozenset(str(ref) for ref in refs) for kind, refs in links.items()},
    )


def tomorrow_window(hour: int = 10, hours: int = 2) -> tuple[datetime, datetime]:
    """A service window tomorrow from ``hour`` local time, ``hours`` long."""
    day = clock.local_now().date() + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, hour, tzinfo=clock.local_zone())
    return start, start + timedelta(hours=hours)


@dataclass
class World:
    """The usual scene of an orders test; ids and principals."""

    area: dict[str, Any]
    community: int
    categories: dict[str, int]
    household: int
    resident: Principal
    resident_user: dict[str, Any]
    steward: Principal
    steward_user: dict[str, Any]
    admin: Principal
    provider: int
    offerings: dict[str, int] = field(default_factory=dict)
    make_user: Any = None

    async def another_household(self, *, level: int = 2, credits_: int = 100, phone_user: bool = True) -> int:
        """One more household in the same community, with its level and credits."""
        return await new_household(self.community, level=level, credits_=credits_, phone_user=phone_user)

    async def resident_for(self, household_id: int) -> Principal:
        """A new resident account linked to ``household_id``."""
        user = await self.make_user("resident")
        await accounts.link(user["id"], LinkKind.HOUSEHOLD, household_id)
        return principal(user["id"], Role.RESIDENT, household=[household_id])


_codes = iter(range(1, 1_000_000))


async def new_household(
    community_id: int,
    *,
    level: int = 2,
    credits_: int = 100,
    phone_user: bool = True,
    phone: str | None = None,
) -> int:
    """A household of ``level`` with ``credits_`` granted; one member, who uses a phone or not."""
    from households import services

    n = next(_codes)
    member = member_data(born=datetime(1950, 1, 1).date(), seq=(2 * n) % 1000, can_use_phone=phone_user)
    if phone_user:
        member["phone"] = f"1370000{n:04d}"
    household_id = await services.create_household(
        ADMIN,
        {
            "code": f"OD-{n:05d}",
            "community_id": community_id,
            "address": f"订单路{n}号",
            "phone": phone if phone is not None else f"1360000{n:04d}",
            "category": "dibao",
            "groups": [],
        },
        [member],
    )
    await Household.update({Household.level: level}).where(Household.id == household_id)
    if credits_:
        await credits.grant(household_id, credits_, key=f"grant:test:{household_id}", note="test")
    return household_id


@pytest.fixture
async def orders_world(area, make_user) -> World:  # noqa: F811 - the imported fixture
    """The usual scene: see the module docstring."""
    community_id = area["communities"]["尧化门社区"]
    categories = await seed_catalog()
    household_id = await new_household(community_id, level=2, credits_=100)
    resident_user = await make_user("resident")
    await accounts.link(resident_user["id"], LinkKind.HOUSEHOLD, household_id)
    steward_user = await make_user("steward")
    await accounts.link(steward_user["id"], LinkKind.COMMUNITY, community_id)
    admin_user = await make_user("admin")
    provider_id = await make_provider(name="订单测试服务中心")
    offerings = {
        code: await make_offering(
            provider_id, categories[code], [community_id], hours=AROUND_THE_CLOCK, capacity=3, credit_cost=0
        )
        for code in ("cleaning", "errands", "medicine")
    }
    return World(
        area=area,
        community=community_id,
        categories=categories,
        household=household_id,
        resident=principal(resident_user["id"], Role.RESIDENT, household=[household_id]),
        resident_user=resident_user,
        steward=principal(steward_user["id"], Role.STEWARD, community=[community_id]),
        steward_user=steward_user,
        admin=principal(admin_user["id"], Role.ADMIN),
        provider=provider_id,
        offerings=offerings,
        make_user=make_user,
    )


async def members_of(household_id: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await Member.select().where(Member.household == household_id)
    return rows


@contextlib.contextmanager
def in_locale(locale: str) -> Iterator[None]:
    """Render messages in ``locale`` inside the block, as for a reader of that language."""
    token = i18n.current_locale.set(locale)
    try:
        yield
    finally:
        i18n.current_locale.reset(token)


# -- routing and service (orders-routing) ------------------------------------------------------------
from tests.orders.routing_world import world  # noqa: E402, F401 - fixture of the routing and service tests
