"""Credits: the month's first grant to 50,000 households (households per second), and its rerun.

    .venv/bin/python -m bench credits
    BENCH_CREDITS_HOUSEHOLDS=200000 .venv/bin/python -m bench credits

A fresh PostgreSQL database is migrated and loaded (COPY) with ``BENCH_CREDITS_HOUSEHOLDS``
households (50,000) of levels 1–3 in 9 streets × 20 communities; ``BENCH_CREDITS_RESIDENTS``
per cent of them (10) have a resident account, who is told of the grant.  Then it times
``orders.settlement.grant_month`` (entries, balances and notices), runs it again (nothing to
grant: the rerun after a crash), checks every account against its ledger, and drops the database.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

from bench.candidates import _configure
from bench.common import env_int, figure, fresh_database, household_rows

HOUSEHOLDS = env_int("BENCH_CREDITS_HOUSEHOLDS", 50_000)
RESIDENTS_PERCENT = env_int("BENCH_CREDITS_RESIDENTS", 10)
STREETS = 9
COMMUNITIES_PER_STREET = 20
MONTH = "2026-12"


async def _load(rng: random.Random) -> None:
    from households.tables import Community, District, Household, Street
    from marketplace import db
    from marketplace.auth import LinkKind, Role
    from marketplace.tables import User, UserLink

    async with db.atomic():
        district = District(code="999999", name="测试区")
        await district.save()
        for s in range(STREETS):
            street = Street(district=district.id, code=f"9999{s:05d}", name=f"街道{s}")
            await street.save()
            await db.bulk_insert(
                Community,
                [
                    {"street": street.id, "code": f"9999{s:05d}{c:03d}", "name": f"社区{s}-{c}"}
                    for c in range(COMMUNITIES_PER_STREET)
                ],
            )
        communities = [r["id"] for r in await Community.select(Community.id)]
        await db.bulk_insert(Household, household_rows(rng, HOUSEHOLDS, communities))
        chosen = [
            r["id"] for r in await Household.select(Household.id) if rng.randrange(100) < RESIDENTS_PERCENT
        ]
        await db.bulk_insert(
            User,
            [
                {"phone": f"139{n:08d}", "display_name": f"居民{n}", "role": Role.RESIDENT.value}
                for n in range(len(chosen))
            ],
        )
        users = {r["phone"]: r["id"] for r in await User.select(User.id, User.phone)}
        await db.bulk_insert(
            UserLink,
            [
                {
                    "user": users[f"139{n:08d}"],
                    "kind": LinkKind.HOUSEHOLD.value,
                    "target": str(household_id),
                    "key": f"{users[f'139{n:08d}']}:household:{household_id}",
                }
                for n, household_id in enumerate(chosen)
            ],
        )
    await db.engine().run_ddl("ANALYZE")
    print(f"   loaded {HOUSEHOLDS:,} households, {len(chosen):,} with a resident account")


async def _run() -> None:
    from marketplace import db
    from notifications.tables import Notification
    from orders import credits, settlement

    await db.migrate()
    await db.open_pool()
    try:
        await _load(random.Random(1))
        began = time.perf_counter()
        granted = await settlement.grant_month(MONTH)
        seconds = time.perf_counter() - began
        figure(f"grant_month {MONTH}: households granted", granted)
        figure("  in", f"{seconds:.1f}", "s")
        figure("  households per second", f"{granted / seconds:,.0f}")
        figure("  residents told", await Notification.count().where(Notification.event == "credits_granted"))
        began = time.perf_counter()
        again = await settlement.grant_month(MONTH)
        figure("the same month again: households granted", again)
        figure("  in", f"{time.perf_counter() - began:.1f}", "s")
        differences = await credits.check()
        figure("credit accounts that differ from their entries", len(differences))
    finally:
        await db.close_pool()


def main() -> None:
    with fresh_database() as url:
        _configure(url)
        asyncio.run(_run())


if __name__ == "__main__":
    main()
    sys.exit(0)
