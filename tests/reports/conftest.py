"""A small hand-built district whose report figures are known (see test_figures.py for the answers).

Rows are inserted directly: the orders services are not needed to read what orders look like.
Times are in the service's zone (Asia/Shanghai); the report month is November 2026 and the
clock stands at 6 December 2026, so the month is closed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from households.areas import seed_demo_areas
from households.tables import Household, HouseholdWarning, Verification
from marketplace import accounts, clock
from marketplace.auth import LinkKind
from orders.tables import CreditEntry, Order
from providers.tables import Provider
from tests.catalog_data import seed_catalog

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=ZONE)


def at(month: int, day: int, hour: int = 10, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZONE)


@dataclass
class World:
    district: int
    street: int  # 尧化街道: communities a and b
    other_street: int  # 马群街道: community c
    a: int
    b: int
    c: int
    p1: int
    p2: int
    households: dict[str, int] = field(default_factory=dict)
    orders: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)


async def _provider(name: str) -> int:
    row = Provider(public_id=uuid.uuid4(), kind="social_organization", name=name, status="verified")
    await row.save()
    return row.id


async def _household(world: World, name: str, community: int, level: int, **extra) -> int:
    row = Household(code=f"R-{name}", community=community, category="dibao", level=level, **extra)
    await row.save()
    world.households[name] = row.id
    return row.id


async def _order(
    world: World,
    name: str,
    household: str,
    category: str,
    submitted: datetime,
    *,
    state: str,
    provider: int | None = None,
    accept: int | None = None,
    start: int | None = None,
    complete: int | None = None,
    rating: int | None = None,
) -> int:
    """An order; ``accept``, ``start`` and ``complete`` are minutes after submission."""
    row_household = (
        await Household.select(Household.community, Household.level)
        .where(Household.id == world.households[household])
        .first()
    )

    def later(minutes: int | None) -> datetime | None:
        return submitted + timedelta(minutes=minutes) if minutes is not None else None

    row = Order(
        number=f"CS-{name}",
        household=world.households[household],
        community=row_household["community"],
        level=row_household["level"],
        category=world.categories[category],
        state=state,
        window_start=submitted + timedelta(days=1),
        window_end=submitted + timedelta(days=1, hours=2),
        provider=provider,
        submitted_at=submitted,
        accepted_at=later(accept),
        started_at=later(start),
        completed_at=later(complete),
        confirmed_at=later(complete) if rating is not None else None,
        rating=rating,
        updated_at=submitted,
    )
    await row.save()
    world.orders[name] = row.id
    return row.id


async def _credit(
    world: World, key: str, household: str, kind: str, amount: int, when: datetime, **extra
) -> None:
    await CreditEntry(
        household=world.households[household], kind=kind, amount=amount, key=key, at=when, **extra
    ).save()


async def _warning(
    world: World,
    name: str,
    household: str,
    opened: datetime,
    *,
    hours: int = 24,
    verified: datetime | None = None,
) -> int:
    community = (
        await Household.select(Household.community).where(Household.id == world.households[household]).first()
    )["community"]
    row = HouseholdWarning(
        household=world.households[household],
        community=community,
        first_signal=f"test:{name}",
        severity="high",
        severity_rank=1,
        status="verified" if verified else "open",
        opened_at=opened,
        last_signal_at=opened,
        deadline_at=opened + timedelta(hours=hours),
        verified_at=verified,
    )
    await row.save()
    world.warnings[name] = row.id
    if verified is not None:
        await Verification(
            warning=row.id, visited_on=verified.date(), met="户主", findings="已核实", needs="[]"
        ).save()
    return row.id


@pytest.fixture
async def world() -> World:
    clock.freeze(NOW)
    areas = await seed_demo_areas()
    communities = areas["communities"]
    w = World(
        district=areas["district"],
        street=areas["streets"]["尧化街道"],
        other_street=areas["streets"]["马群街道"],
        a=communities["尧化门社区"],
        b=communities["新尧社区"],
        c=communities["马群社区"],
        p1=await _provider("助老服务社"),
        p2=await _provider("家政服务中心"),
        categories=await seed_catalog(),
    )
    # Community a: four level 1, two level 2, one level 3 households.
    await _household(w, "h1", w.a, 1)
    await _household(w, "h2", w.a, 1)
    await _household(w, "h3", w.a, 2)
    await _household(w, "h4", w.a, 3)
    await _household(w, "h6", w.a, 2)  # nothing in 60 days: not reached
    await _household(w, "h7", w.a, 1)  # visited on 2 November: reached
    await _household(w, "h8", w.a, 1)  # last order in September: not reached
    await _household(w, "h9", w.a, 1, status="inactive")  # not on the active registry: counted nowhere
    await _household(w, "h10", w.b, 2)
    await _household(w, "h5", w.c, 1)

    # November, community a.
    await _order(w, "o1", "h1", "errands", at(11, 3), state="confirmed", provider=w.p1, accept=10, start=60, complete=120, rating=5)  # fmt: skip
    await _order(w, "o2", "h1", "errands", at(11, 5), state="completed", provider=w.p1, accept=20, start=90, complete=150)  # fmt: skip
    await _order(w, "o3", "h2", "cleaning", at(11, 7), state="in_service", provider=w.p1, accept=30, start=240)  # fmt: skip
    await _order(w, "o4", "h3", "cleaning", at(11, 10), state="confirmed", provider=w.p2, accept=40, start=300, complete=360, rating=3)  # fmt: skip
    await _order(w, "o5", "h3", "errands", at(11, 12), state="cancelled")
    await _order(w, "o6", "h4", "errands", at(11, 15), state="escalated")
    # October (outside the month, inside the quarter), September (outside both).
    await _order(w, "o7", "h1", "errands", at(10, 20), state="completed", provider=w.p1, accept=15, start=30, complete=45)  # fmt: skip
    await _order(w, "o0", "h8", "errands", at(9, 1), state="completed", provider=w.p1, accept=15, start=30, complete=45)  # fmt: skip
    # Community b and c.
    await _order(w, "o9", "h10", "cleaning", at(11, 8), state="accepted", provider=w.p2, accept=15)
    await _order(w, "o8", "h5", "errands", at(11, 4), state="confirmed", provider=w.p1, accept=5, start=50, complete=100, rating=4)  # fmt: skip

    # Credits: grants in November (and one in October), spending on completion, one refund.
    await _credit(w, "g-h1-10", "h1", "grant", 100, at(10, 1, 8), month="2026-10")
    await _credit(w, "g-h1", "h1", "grant", 100, at(11, 1, 8), month="2026-11")
    await _credit(w, "g-h2", "h2", "grant", 100, at(11, 1, 8), month="2026-11")
    await _credit(w, "t-h3", "h3", "temporary", 30, at(11, 10, 8))
    await _credit(w, "g-h5", "h5", "grant", 100, at(11, 1, 8), month="2026-11")
    await _credit(w, "r-o1", "h1", "reserve", -10, at(11, 3), reserved_change=10, order=w.orders["o1"])
    await _credit(w, "c-o1", "h1", "consume", 0, at(11, 3, 12), reserved_change=-10, order=w.orders["o1"])
    await _credit(w, "c-o2", "h1", "consume", 0, at(11, 5, 13), reserved_change=-10, order=w.orders["o2"])
    await _credit(w, "c-o4", "h3", "consume", 0, at(11, 10, 16), reserved_change=-20, order=w.orders["o4"])
    await _credit(w, "f-o4", "h3", "refund", 5, at(11, 25), order=w.orders["o4"])
    await _credit(w, "c-o8", "h5", "consume", 0, at(11, 4, 12), reserved_change=-10, order=w.orders["o8"])

    # Warnings in community a: verified on time, verified late, still open; and one from October.
    await _warning(w, "w1", "h7", at(11, 2, 9), verified=at(11, 2, 15))
    await _warning(w, "w2", "h3", at(11, 5, 9), verified=at(11, 8, 9))
    await _warning(w, "w3", "h1", at(11, 20, 9))
    await _warning(w, "w4", "h2", at(10, 15, 9))
    return w


@pytest.fixture
def steward_of(logged_in):
    """A logged-in steward linked to some communities: ``client, user = await steward_of(cid, ...)``."""

    async def make(*community_ids: int):
        client, user = await logged_in("steward")
        for cid in community_ids:
            await accounts.link(user["id"], LinkKind.COMMUNITY, cid)
        return client, user

    return make


def day(month: int, d: int) -> date:
    return date(2026, month, d)
