"""Notifications: what ``notify`` costs a caller, and how fast a worker delivers what it asked for.

PostgreSQL + Redis with one worker process (4 threads) and the SMS sandbox: 300 single
notifications (one order event each, as orders will send them), then the monthly credits
to 2,000 residents in one call; figures are the caller's latency and the end-to-end
delivery rate (inbox items written, SMS stored by the sandbox).
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import deployment, figure, fresh_database

SINGLE = 300
RESIDENTS = 2000

SCRIPT = f"""
import asyncio, json, statistics, time
from datetime import date
from marketplace import db
from marketplace.tables import User
from notifications.events import Event
from notifications.services import notify
from notifications.tables import Delivery, InboxItem, SandboxSms

async def wait_for(expected, started):
    while await SandboxSms.count() < expected:
        if time.perf_counter() - started > 600:
            raise SystemExit("deliveries did not finish in 10 minutes")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started

async def main():
    await db.open_pool()
    users = [User(phone=f"137{{i:08d}}", display_name=f"居民{{i}}", role="resident") for i in range({RESIDENTS})]
    for start in range(0, len(users), 500):
        await User.insert(*users[start:start + 500])
    ids = [r["id"] for r in await User.select(User.id).order_by(User.id)]
    context = {{"order_no": "20261201-0042", "service": "助餐"}}
    latencies = []
    started = time.perf_counter()
    for uid in ids[:{SINGLE}]:
        t = time.perf_counter()
        async with db.atomic():
            await notify(Event.ORDER_DONE, [uid], context, dedupe_key=f"order:{{uid}}:done")
        latencies.append((time.perf_counter() - t) * 1000)
    single_s = await wait_for({SINGLE}, started)
    started = time.perf_counter()
    async with db.atomic():
        await notify(Event.CREDITS_GRANTED, ids, {{"month": date(2026, 12, 1), "credits": 120, "balance": 120}},
                     dedupe_key="credits:2026-12")
    batch_call_s = time.perf_counter() - started
    batch_s = await wait_for({SINGLE} + {RESIDENTS}, started)
    latencies.sort()
    print(json.dumps({{
        "p50": statistics.median(latencies), "p99": latencies[int(len(latencies) * 0.99) - 1],
        "single_s": single_s, "batch_call_s": batch_call_s, "batch_s": batch_s,
        "inbox": await InboxItem.count(), "deliveries": await Delivery.count(),
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
            timeout=900,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
    figure("notify() of one order event, in its own transaction: p50", r["p50"], "ms")
    figure("notify() of one order event, in its own transaction: p99", r["p99"], "ms")
    figure(f"{SINGLE} order events: inbox + SMS delivered, messages/s", SINGLE / r["single_s"], "/s")
    figure(
        f"notify() of monthly credits to {RESIDENTS:,} residents (one call)", r["batch_call_s"] * 1000, "ms"
    )
    figure(
        f"{RESIDENTS:,} credit messages: inbox + SMS delivered, messages/s", RESIDENTS / r["batch_s"], "/s"
    )
    figure("inbox items / deliveries written", f"{r['inbox']:,} / {r['deliveries']:,}")
