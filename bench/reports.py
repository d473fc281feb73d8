"""A district month report over 100,000 orders (or more) on PostgreSQL.

Creates a database of its own (``bench.common.fresh_database``), migrates it, loads a
district of 9 streets × 20 communities with one household per five orders, the orders of
one month (accepted, served, rated, cancelled, escalated), their credit entries, warnings
and visits, then times ``reports.figures.compute`` for the district, a street, a community
and a provider, and the whole background build (figures and cache row).  Run:
``python -m bench reports``; ``BENCH_REPORT_ORDERS=1000000 python -m bench reports`` for a
million orders.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bench.common import figure, fresh_database, household_rows

ORDERS = int(os.environ.get("BENCH_REPORT_ORDERS", "100000"))
STREETS = 9
COMMUNITIES_PER_STREET = 20
PROVIDERS = 300
BATCH = 50_000
MONTH = "2026-11"
ZONE = ZoneInfo("Asia/Shanghai")


def _configure(database_url: str) -> None:
    """Settings are read once: point them at the benchmark's own database before any import."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("CLOUDMARKET_SECRET_KEY", "bench-secret")
    os.environ.setdefault("CLOUDMARKET_DATA_KEY", "YmVuY2gtZGF0YS1rZXktbm90LWZvci1wcm9kdWN0aW9u")
    os.environ["CLOUDMARKET_VAR_DIR"] = tempfile.mkdtemp(prefix="cm-bench-")
    os.environ["CLOUDMARKET_LOG_LEVEL"] = "WARNING"


async def _insert(table: object, rows: list[dict[str, object]]) -> None:
    from marketplace import db

    for i in range(0, len(rows), BATCH):
        async with db.atomic():
            await db.bulk_insert(table, rows[i : i + BATCH])


def _order_row(
    rng: random.Random, n: int, household: tuple[int, int, int], categories: list[int], providers: list[int]
) -> dict[str, object]:
    hid, community, level = household
    start = datetime(2026, 11, 1, tzinfo=ZONE)
    submitted = start + timedelta(seconds=rng.randrange(29 * 86400))
    row: dict[str, object] = {
        "number": f"CS{n:010d}",
        "household": hid,
        "community": community,
        "level": level,
        "category": rng.choice(categories),
        "window_start": submitted + timedelta(days=1),
        "window_end": submitted + timedelta(days=1, hours=2),
        "submitted_at": submitted,
        "updated_at": submitted,
        "credits": 10,
    }
    fate = rng.random()
    if fate < 0.05:
        row["state"] = "cancelled"
    elif fate < 0.08:
        row["state"] = "escalated"
    else:
        accepted = submitted + timedelta(minutes=rng.expovariate(1 / (10 * level)))
        started = accepted + timedelta(minutes=rng.uniform(30, 60 * 6 * level))
        row.update(provider=rng.choice(providers), accepted_at=accepted, started_at=started)
        if fate < 0.15:
            row["state"] = "in_service"
        else:
            completed = started + timedelta(minutes=rng.uniform(30, 120))
            row.update(state="completed", completed_at=completed)
            if fate < 0.7:
                row.update(
                    state="confirmed", confirmed_at=completed + timedelta(hours=2), rating=rng.randint(2, 5)
                )
    return row


async def _load(rng: random.Random) -> tuple[int, int, int, int]:
    """Load the district; returns the district, a street, a community and a provider id."""
    from households.tables import Community, District, Household, HouseholdWarning, Street, Verification
    from marketplace.tables import Category
    from orders.tables import CreditEntry, Order
    from providers.tables import Provider

    categories = [r["id"] for r in await Category.select(Category.id)]
    district = District(code="999999", name="测试区")
    await district.save()
    communities: list[int] = []
    streets: list[int] = []
    for s in range(STREETS):
        street = Street(district=district.id, code=f"9999{s:05d}", name=f"街道{s}")
        await street.save()
        streets.append(street.id)
        await _insert(
            Community,
            [{"street": street.id, "code": f"9999{s:05d}{c:03d}", "name": f"社区{s}-{c}"} for c in range(20)],
        )
    communities = [r["id"] for r in await Community.select(Community.id)]
    await _insert(
        Provider,
        [
            {
                "public_id": uuid.uuid4(),
                "kind": "social_organization",
                "name": f"机构{i}",
                "status": "verified",
            }
            for i in range(PROVIDERS)
        ],
    )
    providers = [r["id"] for r in await Provider.select(Provider.id)]
    households = ORDERS // 5
    await _insert(Household, household_rows(rng, households, communities))
    homes = [
        (r["id"], r["community"], r["level"])
        for r in await Household.select(Household.id, Household.community, Household.level)
    ]
    started = time.perf_counter()
    orders = [_order_row(rng, n, rng.choice(homes), categories, providers) for n in range(ORDERS)]
    await _insert(Order, orders)
    ids = await Order.select(Order.id, Order.household, Order.completed_at).where(
        Order.completed_at.is_not_null()
    )
    entries: list[dict[str, object]] = [
        {
            "household": h[0],
            "kind": "grant",
            "amount": 100,
            "key": f"grant:{MONTH}:{h[0]}",
            "month": MONTH,
            "at": datetime(2026, 11, 1, 8, tzinfo=ZONE),
        }
        for h in homes
    ]
    entries += [
        {
            "household": r["household"],
            "kind": "consume",
            "amount": 0,
            "reserved_change": -10,
            "order": r["id"],
            "key": f"consume:{r['id']}",
            "at": r["completed_at"],
        }
        for r in ids
    ]
    await _insert(CreditEntry, entries)
    warnings = []
    for i in range(households // 10):
        home = rng.choice(homes)
        opened = datetime(2026, 11, 1, tzinfo=ZONE) + timedelta(seconds=rng.randrange(29 * 86400))
        verified = opened + timedelta(hours=rng.uniform(2, 96)) if rng.random() < 0.8 else None
        warnings.append(
            {
                "household": home[0],
                "community": home[1],
                "first_signal": f"bench:{i}",
                "severity": "high",
                "severity_rank": 1,
                "status": "verified" if verified else "open",
                "opened_at": opened,
                "last_signal_at": opened,
                "deadline_at": opened + timedelta(hours=48),
                "verified_at": verified,
            }
        )
    await _insert(HouseholdWarning, warnings)
    verified_rows = await HouseholdWarning.select(HouseholdWarning.id, HouseholdWarning.verified_at).where(
        HouseholdWarning.verified_at.is_not_null()
    )
    await _insert(
        Verification,
        [
            {
                "warning": r["id"],
                "visited_on": r["verified_at"].astimezone(ZONE).date(),
                "met": "户主",
                "findings": "-",
            }
            for r in verified_rows
        ],
    )
    from marketplace import db

    await db.engine().run_ddl("ANALYZE")
    print(
        f"loaded {len(orders):,} orders, {households:,} households, {len(entries):,} credit entries, "
        f"{len(warnings):,} warnings in {time.perf_counter() - started:.0f} s"
    )
    return district.id, streets[0], communities[0], providers[0]


async def _time(label: str, scope_text: str, runs: int = 3) -> None:
    from reports import figures

    scope, period = figures.Scope.parse(scope_text), figures.Period.parse(MONTH)
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        await figures.compute(scope, period)
        timings.append((time.perf_counter() - began) * 1000)
    figure(f"{label}: first / best of {runs}", f"{timings[0]:,.0f} / {min(timings):,.0f}", "ms")


async def _run() -> None:
    from marketplace import db
    from reports import figures, services

    await db.migrate()
    await db.open_pool()
    try:
        rng = random.Random(20261206)
        figure("load average (1 min) before loading: timings stretch with it", os.getloadavg()[0])
        district, street, community, provider = await _load(rng)
        await _time(f"district month report, {ORDERS:,} orders", f"district:{district}")
        await _time("street month report", f"street:{street}")
        await _time("community month report", f"community:{community}")
        await _time("provider month report", f"provider:{provider}")
        scope, period = figures.Scope(kind="district", id=district), figures.Period.parse(MONTH)
        await services.request_build(scope, period)
        began = time.perf_counter()
        await services.build(services.key_of(scope, period))
        figure(
            "district month: background build with cache write", (time.perf_counter() - began) * 1000, "ms"
        )
    finally:
        await db.close_pool()


def main() -> None:
    if "piccolo_conf" in sys.modules:
        raise RuntimeError(
            "bench.reports sets the database before importing the project: run it in its own process"
        )
    with fresh_database() as database_url:
        _configure(database_url)
        asyncio.run(_run())


if __name__ == "__main__":
    main()
