"""Routing: orders routed per second, submission → first offer, and level 1 behind a level 3 backlog.

PostgreSQL + Redis with one worker process (4 threads).  Orders are written as booking writes
them (the order and its routing message in one transaction); a direct offer to the nearest of
five providers follows.

1. Throughput: BENCH_ROUTING_BURST orders (default 2,000) and their routing messages written in
   one transaction: orders routed per second, from the commit until every one is offered or
   escalated.
2. Latency: BENCH_ROUTING_SINGLE orders (default 300) one after another at a steady
   BENCH_ROUTING_RATE a second (default 20): median and p99 from submission to first offer.
3. Priority: BENCH_ROUTING_BACKLOG level 3 orders (default 10,000) submitted at once, and a
   level 1 order every 200 ms behind them (10 in all): the level 1 orders' time to first
   offer, how many level 3 orders still waited then, and how long the backlog takes to clear.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import deployment, env_int, figure, fresh_database

BURST = env_int("BENCH_ROUTING_BURST", 2_000)
SINGLE = env_int("BENCH_ROUTING_SINGLE", 300)
RATE = env_int("BENCH_ROUTING_RATE", 20)
BACKLOG = env_int("BENCH_ROUTING_BACKLOG", 10_000)
URGENT = 10

SCRIPT = f"""
import asyncio, json, statistics, time, uuid
from datetime import timedelta
from marketplace import clock, db, outbox
from marketplace.tables import OutboxMessage
from orders import dispatch, tasks
from orders.tables import Order
from tests.catalog_data import seed_catalog
from tests.households.conftest import ADMIN, member_data
from tests.providers.factories import make_offering, make_provider
from households import services
from households.areas import seed_demo_areas

EVERYWHERE = [(d, 0, 24 * 60) for d in range(7)]

async def setup():
    area = await seed_demo_areas()
    community = area["communities"]["尧化门社区"]
    category = (await seed_catalog())["cleaning"]
    household = await services.create_household(ADMIN, {{"code": "B-1", "community_id": community,
        "address": "1号", "phone": "13612340000", "category": "dibao", "groups": []}}, [member_data()])
    for i in range(5):
        provider = await make_provider(name=f"服务中心{{i}}", latitude=32.11, longitude=118.86 + i * 0.01)
        await make_offering(provider, category, [community], hours=EVERYWHERE, capacity=100000)
    return community, category, household

def order_row(n, level, community, category, household, now):
    start = now + timedelta(days=1)
    return {{"number": f"B{{n:08d}}", "household": household, "community": community, "level": level,
             "category": category, "routing": "direct", "state": "submitted", "window_start": start,
             "window_end": start + timedelta(hours=2), "submitted_at": now, "updated_at": now,
             "accept_by": now + timedelta(hours=2), "serve_by": now + timedelta(days=2)}}

async def submit(n, level, *where):
    async with db.atomic():
        now = clock.now()
        order = Order(**order_row(n, level, *where, now))
        await Order.insert(order)
        await dispatch.request_routing(order.id, level)
    return order.id

async def first_offer_ms(ids):
    while True:
        rows = await Order.select(Order.id, Order.submitted_at, Order.offered_at).where(Order.id.is_in(ids))
        if all(r["offered_at"] is not None for r in rows):
            return [(r["offered_at"] - r["submitted_at"]).total_seconds() * 1000 for r in rows]
        await asyncio.sleep(0.05)

async def settled(ids):
    # wait until every order of ids is offered or escalated
    while await Order.count().where(Order.id.is_in(ids) & Order.offered_at.is_null()
                                    & (Order.state != "escalated")):
        await asyncio.sleep(0.1)

async def at_once(first, count, level, where):
    # count orders and their routing messages in one transaction; returns (ids, commit time)
    now = clock.now()
    numbers = [f"B{{first + n:08d}}" for n in range(count)]
    async with db.atomic():
        await db.bulk_insert(Order, [order_row(first + n, level, *where, now) for n in range(count)])
        ids = [r["id"] for r in await Order.select(Order.id).where(Order.number.is_in(numbers))]
        messages = [OutboxMessage(id=uuid.uuid4(), actor=tasks.route_order.actor_name, queue="routing",
                                  args=json.dumps([i]), kwargs="{{}}", due_at=now, created_at=now) for i in ids]
        for start in range(0, len(messages), 500):
            await OutboxMessage.insert(*messages[start:start + 500])
        await db.engine().run_ddl(f"NOTIFY {{outbox.NOTIFY_CHANNEL}}")
    return ids, time.perf_counter()

async def main():
    await db.open_pool()
    where = await setup()

    # Throughput: a burst of orders written at once, routed by the one worker
    burst, committed = await at_once(1_000_000, {BURST}, 2, where)
    await settled(burst)
    burst_s = time.perf_counter() - committed

    ids = []
    for n in range({SINGLE}):
        ids.append(await submit(n, 2, *where))
        await asyncio.sleep(1 / {RATE})
    single = sorted(await first_offer_ms(ids))

    # The backlog: level 3 orders and their routing messages in one transaction
    backlog, started = await at_once(100_000_000, {BACKLOG}, 3, where)
    urgent = []
    for n in range({URGENT}):
        await asyncio.sleep(0.2)
        urgent.append(await submit(900000 + n, 1, *where))
    urgent_ms = sorted(await first_offer_ms(urgent))
    backlog_left = await Order.count().where(Order.id.is_in(backlog) & (Order.state == "submitted"))
    await settled(backlog)
    backlog_s = time.perf_counter() - started
    print(json.dumps({{
        "burst_s": burst_s,
        "p50": statistics.median(single), "p99": single[int(len(single) * 0.99) - 1],
        "urgent_p50": statistics.median(urgent_ms), "urgent_max": urgent_ms[-1],
        "backlog_left": backlog_left, "backlog_s": backlog_s,
    }}))

asyncio.run(main())
"""


def main() -> None:
    with (
        fresh_database() as database_url,
        deployment(database_url, web=0, workers=1, CLOUDMARKET_QUIET_HOURS="") as dep,
    ):
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            env=dep.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:] + "\n" + "\n".join(p.output()[-2000:] for p in dep.procs))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    figure(f"{BURST:,} orders written at once: routed per second", BURST / result["burst_s"])
    figure(f"{BURST:,} orders written at once: all routed in", result["burst_s"], "s")
    figure(f"{SINGLE} orders at {RATE}/s: submission → first offer, median", result["p50"], "ms")
    figure("                                                    p99", result["p99"], "ms")
    figure(f"level 1 behind {BACKLOG:,} level 3 orders: median", result["urgent_p50"], "ms")
    figure("                                                    worst", result["urgent_max"], "ms")
    figure("level 3 orders still waiting when the last level 1 was offered", result["backlog_left"], "")
    figure(f"{BACKLOG:,} level 3 orders routed in", result["backlog_s"], "s")
