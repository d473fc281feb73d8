"""The routing candidate query over 10,000 providers on PostgreSQL.

Creates a database of its own (``bench.common.fresh_database``), migrates it, loads a district of 180 communities with 10,000 providers (about 20,000
offerings, their service areas and weekly hours), times ``providers.candidates.candidates``
for random categories, communities and service windows, prints the figures and the query
plan, and drops the database.  Run: ``python -m bench candidates``.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bench.common import figure, fresh_database, percentile

PROVIDERS = 10_000
COMMUNITIES_PER_STREET = 20
STREETS = 9
QUERIES = 500


def _configure(database_url: str) -> None:
    """Settings are read once: point them at the benchmark's own database before any import."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("CLOUDMARKET_SECRET_KEY", "bench-secret")
    os.environ.setdefault("CLOUDMARKET_DATA_KEY", "YmVuY2gtZGF0YS1rZXktbm90LWZvci1wcm9kdWN0aW9u")
    os.environ["CLOUDMARKET_VAR_DIR"] = tempfile.mkdtemp(prefix="cm-bench-")
    os.environ["CLOUDMARKET_LOG_LEVEL"] = "WARNING"


async def _load(rng: random.Random) -> tuple[list[int], list[int]]:
    """Bulk-load the district with COPY; returns the category and community ids."""
    import asyncpg

    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        categories = [r["id"] for r in await conn.fetch("SELECT id FROM mk_category")]
        district = await conn.fetchval(
            "INSERT INTO hh_district (code, name) VALUES ('999999', '测试区') RETURNING id"
        )
        communities: list[list[int]] = []
        for s in range(STREETS):
            street = await conn.fetchval(
                "INSERT INTO hh_street (district, code, name) VALUES ($1, $2, $3) RETURNING id",
                district,
                f"9999{s:05d}",
                f"街道{s}",
            )
            rows = [(street, f"9999{s:05d}{c:03d}", f"社区{s}-{c}") for c in range(COMMUNITIES_PER_STREET)]
            await conn.copy_records_to_table("hh_community", records=rows, columns=["street", "code", "name"])
            communities.append(
                [r["id"] for r in await conn.fetch("SELECT id FROM hh_community WHERE street = $1", street)]
            )
        now = datetime.now(ZoneInfo("UTC"))
        statuses = ["verified"] * 17 + ["pending", "suspended", "refused"]
        providers = [
            (
                uuid.uuid4(),
                "social_organization",
                f"机构{i}",
                rng.choice(statuses),
                rng.random() < 0.9,
                now,
                now,
            )
            for i in range(PROVIDERS)
        ]
        await conn.copy_records_to_table(
            "pv_provider",
            records=providers,
            columns=["public_id", "kind", "name", "status", "is_active", "created_at", "updated_at"],
        )
        provider_ids = [r["id"] for r in await conn.fetch("SELECT id FROM pv_provider ORDER BY id")]
        offerings = []
        for pid in provider_ids:
            for category in rng.sample(categories, rng.randint(1, 3)):
                capacity = rng.randint(1, 10)
                offerings.append(
                    (
                        uuid.uuid4(),
                        pid,
                        category,
                        f"{pid}:{category}",
                        "visit",
                        60,
                        10,
                        capacity,
                        rng.randint(0, capacity),
                        rng.random() < 0.95,
                        now,
                        now,
                    )
                )
        await conn.copy_records_to_table(
            "pv_offering",
            records=offerings,
            columns=[
                "public_id",
                "provider",
                "category",
                "key",
                "unit",
                "duration_minutes",
                "credit_cost",
                "capacity",
                "active_orders",
                "is_active",
                "created_at",
                "updated_at",
            ],
        )
        areas, hours = [], []
        for oid, category in await conn.fetch("SELECT id, category FROM pv_offering"):
            street = rng.choice(communities)
            for community in rng.sample(street, rng.randint(2, 8)):
                areas.append((oid, community, category, f"{oid}:{community}"))
            days = range(7) if rng.random() < 0.3 else range(5)
            opens, closes = rng.choice([(480, 1080), (420, 1200), (540, 1020), (0, 1440)])
            hours += [(oid, d, opens, closes) for d in days]
        await conn.copy_records_to_table(
            "pv_service_area", records=areas, columns=["offering", "community", "category", "key"]
        )
        await conn.copy_records_to_table(
            "pv_opening_hours", records=hours, columns=["offering", "weekday", "opens_at", "closes_at"]
        )
        await conn.execute("ANALYZE")
        print(
            f"loaded {len(provider_ids)} providers, {len(offerings)} offerings, {len(areas)} service areas, {len(hours)} opening hours"
        )
        return categories, [c for street in communities for c in street]
    finally:
        await conn.close()


async def _run() -> None:
    from marketplace import db
    from providers.candidates import _OPEN, _SELECT, candidates
    from providers.tables import Offering

    await db.migrate()
    await db.open_pool()
    try:
        rng = random.Random(20261130)
        categories, communities = await _load(rng)
        monday = datetime(2026, 11, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
        timings, counts = [], []
        for _ in range(QUERIES):
            start = monday + timedelta(days=rng.randint(0, 6), minutes=rng.randrange(7 * 60, 19 * 60, 15))
            began = time.perf_counter()
            found = await candidates(
                rng.choice(categories), rng.choice(communities), start, start + timedelta(hours=2)
            )
            timings.append((time.perf_counter() - began) * 1000)
            counts.append(len(found))
        figure(
            f"candidates(), {QUERIES} random queries: p50 / p95 / max",
            (f"{percentile(timings, 50):.2f} / {percentile(timings, 95):.2f} / {max(timings):.2f}"),
            "ms",
        )
        figure("candidates returned per query, on average", f"{statistics.mean(counts):.1f}")
        plan = await Offering.raw(
            "EXPLAIN (ANALYZE, COSTS OFF) " + _SELECT + _OPEN + " ORDER BY o.id",
            communities[0],
            categories[0],
            True,
            True,
            "verified",
            0,
            540,
            660,
        )
        print("plan:")
        for row in plan:
            print("   ", row["QUERY PLAN"])
    finally:
        await db.close_pool()


def main() -> None:
    if "piccolo_conf" in sys.modules:
        raise RuntimeError(
            "bench.candidates sets the database before importing the project: run it in its own process"
        )
    with fresh_database() as database_url:
        _configure(database_url)
        asyncio.run(_run())


if __name__ == "__main__":
    main()
