"""Routing: time from submission to the first offer, alone and for level 1 behind a level 3 backlog.

PostgreSQL + Redis with one worker process (4 threads).  Orders are written as booking writes
them (the order and its routing message in one transaction); a direct offer to the nearest of
five providers follows.  First 300 orders one after another (20 a second): median and p99
from submission to first offer.  Then 5,000 level 3 orders submitted at once, and a level 1
order every 200 ms behind them: the level 1 orders' time to first offer, and how long the
backlog takes to clear.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import deployment, figure, fresh_database

SINGLE = 300
BACKLOG = 5000
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

async def main():
    await db.open_pool()
    where = await setup()
    ids = []
    for n in range({SINGLE}):
        ids.append(await submit(n, 2, *where))
        await asyncio.sleep(0.05)
    single = sorted(await first_offer_ms(ids))

    # The backlog: 5,000 level 3 orders and their routing messages in one transaction
    now = clock.now()
    rows = [order_row(100000 + n, 3, *where, now) for n in range({BACKLOG})]
    async with db.atomic():
        await db.bulk_insert(Order, rows)
    backlog = [r["id"] for r in await Order.select(Order.id).where(Order.level == 3)]
    started = time.perf_counter()
    messages = [OutboxMessage(id=uuid.uuid4(), actor=tasks.route_order.actor_name, queue="routing",
                              args=json.dumps([i]), kwargs="{{}}", due_at=now, created_at=now) for i in backlog]
    async with db.atomic():
        for start in range(0, len(messages), 500):
            await OutboxMessage.insert(*messages[start:start + 500])
        await db.engine().run_ddl(f"NOTIFY {{outbox.NOTIFY_CHANNEL}}")
    urgent = []
    for n in range({URGENT}):
        await asyncio.sleep(0.2)
        urgent.append(await submit(900000 + n, 1, *where))
    urgent_ms = sorted(await first_offer_ms(urgent))
    backlog_left = await Order.count().where(Order.id.is_in(backlog) & (Order.state == "submitted"))
    await first_offer_ms(backlog)
    backlog_s = time.perf_counter() - started
    print(json.dumps({{
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
    figure(f"{SINGLE} orders one by one: submission → first offer, median", result["p50"], "ms")
    figure("                                                    p99", result["p99"], "ms")
    figure(f"level 1 behind {BACKLOG:,} level 3 orders: median", result["urgent_p50"], "ms")
    figure("                                                    worst", result["urgent_max"], "ms")
    figure("level 3 orders still waiting when the last level 1 was offered", result["backlog_left"], "")
    figure(f"{BACKLOG:,} level 3 orders routed in", result["backlog_s"], "s")
