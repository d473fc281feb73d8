"""Scale: candidate search and the steward's household list over a district of 1,000,000 households.

    .venv/bin/python -m bench scale
    BENCH_SCALE_HOUSEHOLDS=200000 .venv/bin/python -m bench scale      (a quicker run)

A fresh PostgreSQL database is migrated and filled by the simulator (``cloudmarket simulate
--generate-only``: 9 streets, 120 communities, ``BENCH_SCALE_HOUSEHOLDS`` households (default
1,000,000), ``BENCH_SCALE_PROVIDERS`` organizations (10,000) and ``BENCH_SCALE_VOLUNTEERS``
volunteers (2,000)).  Then it times, ``BENCH_SCALE_QUERIES`` times each (default 200):

- ``providers.candidates.candidates`` for the community of a random household, a random
  category and a random two-hour window in the day;
- ``households.services.list_households``, the service behind the household list page and
  API, as a steward of one community and as an administrator over the whole district: the
  first page, filtered by level and need group, and searched by a name fragment (one, two and
  three characters), a household code, a phone number and the last four characters of an ID
  number, with the patterns taken from random rows.

It prints p50 / p99 for each and the plan of the slowest search, then drops the database.

``BENCH_SCALE_KEEP=NAME`` keeps the database instead (``cm_bench_keep_NAME``) and reuses it on the
next run with the same name: the first run generates the district, later runs only migrate it
(so new indexes and columns are measured on the same rows) and time the queries.  Drop it by hand
when done: ``DROP DATABASE cm_bench_keep_NAME``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse, urlunparse
from zoneinfo import ZoneInfo

from bench.candidates import _configure
from bench.common import DATABASE_SERVER, figure, fresh_database, percentile

HOUSEHOLDS = int(os.environ.get("BENCH_SCALE_HOUSEHOLDS", "1000000"))
PROVIDERS = int(os.environ.get("BENCH_SCALE_PROVIDERS", "10000"))
VOLUNTEERS = int(os.environ.get("BENCH_SCALE_VOLUNTEERS", "2000"))
QUERIES = int(os.environ.get("BENCH_SCALE_QUERIES", "200"))
KEEP = os.environ.get("BENCH_SCALE_KEEP", "")


async def _timed(label: str, queries: int, run: Callable[[int], Awaitable[Any]]) -> list[float]:
    timings = []
    for i in range(queries):
        began = time.perf_counter()
        await run(i)
        timings.append((time.perf_counter() - began) * 1000)
    figure(
        f"{label}: p50 / p99",
        f"{percentile(timings, 50):.2f} / {percentile(timings, 99):.2f}",
        "ms",
    )
    return timings


async def _samples(rng: random.Random) -> dict[str, list[Any]]:
    """Real values to search for, drawn from random rows (by id, without scanning the tables)."""
    from households.tables import Household, Member

    top = (await Household.select(Household.id).order_by(Household.id, ascending=False).first())["id"]
    ids = [rng.randint(1, top) for _ in range(QUERIES)]
    households = await Household.select(
        Household.id, Household.code, Household.community, Household.phone
    ).where(Household.id.is_in(ids))
    members = await Member.select(
        Member.name, Member.id_masked, Member.household.community.as_alias("c")
    ).where(Member.household.is_in(ids))
    return {"households": households, "members": members}


async def _run() -> None:
    from households import services
    from households.tables import Household
    from marketplace import db
    from marketplace.auth import Principal, Role
    from marketplace.tables import Category
    from providers.candidates import candidates

    await db.migrate()
    await db.open_pool()
    try:
        if KEEP and await Household.exists().where(Household.id > 0):
            print(f"   reusing the kept database ({await Household.count():,} households)")
        else:
            await _generate()

        rng = random.Random(20261206)
        samples = await _samples(rng)
        households, members = samples["households"], samples["members"]
        categories = [row["id"] for row in await Category.select(Category.id)]
        zone = ZoneInfo("Asia/Shanghai")
        monday = datetime(2027, 1, 4, tzinfo=zone)
        found: list[int] = []

        async def candidate_search(i: int) -> None:
            start = monday + timedelta(days=rng.randint(0, 6), minutes=rng.randrange(8 * 60, 18 * 60, 15))
            community = households[i % len(households)]["community"]
            result = await candidates(rng.choice(categories), community, start, start + timedelta(hours=2))
            found.append(len(result))

        print(f"\n   candidate search ({QUERIES} queries, random household communities and categories)")
        await _timed("candidates()", QUERIES, candidate_search)
        figure("candidates per query, on average", f"{sum(found) / len(found):.1f}")

        admin = Principal(user_id=None, role=Role.ADMIN)

        def steward_of(community: int) -> Principal:
            return Principal(
                user_id=None, role=Role.STEWARD, links={"community": frozenset({str(community)})}
            )

        def pick(rows: list[dict[str, Any]], i: int) -> dict[str, Any]:
            return rows[i % len(rows)]

        searches: dict[str, Callable[[int], tuple[int, services.ListFilters]]] = {
            "first page": lambda i: (pick(households, i)["community"], services.ListFilters()),
            "level 1, elderly living alone": lambda i: (
                pick(households, i)["community"],
                services.ListFilters(level=1, group="elderly_alone"),
            ),
            "name, 1 character (surname)": lambda i: (
                pick(members, i)["c"],
                services.ListFilters(q=pick(members, i)["name"][0]),
            ),
            "name, 2 characters": lambda i: (
                pick(members, i)["c"],
                services.ListFilters(q=pick(members, i)["name"][-2:]),
            ),
            "name, full": lambda i: (pick(members, i)["c"], services.ListFilters(q=pick(members, i)["name"])),
            "household code": lambda i: (
                pick(households, i)["community"],
                services.ListFilters(q=pick(households, i)["code"]),
            ),
            "phone, 7 digits": lambda i: (
                pick(households, i)["community"],
                services.ListFilters(q=pick(households, i)["phone"].replace("-", "")[-7:]),
            ),
            "ID number, last four": lambda i: (
                pick(members, i)["c"],
                services.ListFilters(q=pick(members, i)["id_masked"][-4:]),
            ),
        }
        slowest: tuple[float, str, Any] = (0.0, "", None)
        for who in ("steward of one community", "administrator, whole district"):
            print(f"\n   household list as a {who} ({QUERIES} queries each; 20 a page, with the count)")
            for label, make in searches.items():

                async def one(i: int, make: Any = make, who: str = who) -> None:
                    community, filters = make(i)
                    principal = steward_of(community) if who.startswith("steward") else admin
                    await services.list_households(principal, filters, 1, 20)

                timings = await _timed(label, QUERIES, one)
                if percentile(timings, 50) > slowest[0]:
                    slowest = (percentile(timings, 50), f"{who}: {label}", make(0))
        print(f"\n   slowest p50: {slowest[1]}; plan of its first query (q={slowest[2][1].q!r}):")
        await _explain(slowest[2][1], None if "administrator" in slowest[1] else slowest[2][0])
        figure("households", await Household.count())
    finally:
        await db.close_pool()


async def _generate() -> None:
    from marketplace.simulation import report
    from marketplace.simulation.generate import Sizes, generate

    sizes = Sizes(households=HOUSEHOLDS, providers=PROVIDERS, volunteers=VOLUNTEERS)
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] % 100_000 < n:
            print(f"   … {done[0]:,} of {sizes.units:,}", flush=True)

    began = time.perf_counter()
    summary = await generate(sizes, 1, progress)
    figure(
        f"generate {HOUSEHOLDS:,} households, {PROVIDERS + VOLUNTEERS:,} providers",
        time.perf_counter() - began,
        "s",
    )
    figure("households generated per second", HOUSEHOLDS / summary.seconds["households"])
    print(report.format_summary(summary))


@contextlib.contextmanager
def _kept_database(name: str) -> Iterator[str]:
    """The database ``cm_bench_keep_NAME`` on the bench server, created if missing and never dropped."""
    import asyncpg

    database = f"cm_bench_keep_{name}"

    async def ensure() -> None:
        conn = await asyncpg.connect(DATABASE_SERVER)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    asyncio.run(ensure())
    yield urlunparse(urlparse(DATABASE_SERVER)._replace(path=f"/{database}"))


async def _explain(filters: Any, community: int | None) -> None:
    """EXPLAIN ANALYZE of the page query the list runs, built the same way."""
    from households import services
    from households.tables import Household
    from marketplace import db

    conditions = [] if community is None else [Household.community.is_in([community])]
    if filters.q:
        conditions.append(services._search(filters.q, None if community is None else [community]))
    if filters.level is not None:
        conditions.append(Household.level == filters.level)
    query = (
        Household.select(Household.id, Household.code)
        .order_by(Household.level)
        .order_by(Household.id)
        .limit(20)
    )
    for condition in conditions:
        query = query.where(condition)
    sql, args = query.querystrings[0].compile_string(engine_type="postgres")
    async with db.engine().pool.acquire() as conn:
        for row in await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + sql, *args):
            print("    ", row["QUERY PLAN"])


def main() -> None:
    if "piccolo_conf" in sys.modules:
        raise RuntimeError(
            "bench.scale sets the database before importing the project: run it in its own process"
        )
    if KEEP and not re.fullmatch(r"[a-z0-9_]+", KEEP):
        raise SystemExit("BENCH_SCALE_KEEP: use lower-case letters, digits and _ only")
    with _kept_database(KEEP) if KEEP else fresh_database() as database_url:
        _configure(database_url)
        asyncio.run(_run())


if __name__ == "__main__":
    main()
