"""Signals: how many signals per second ``POST /api/v1/signals`` takes in, in batches of 1,000, on PostgreSQL.

    .venv/bin/python -m bench signals        (BENCH_SIGNAL_BATCHES changes the number of batches)

A fresh database gets the demo district and 10,000 registered households (one member each,
ID numbers encrypted with blind indexes, as the registry stores them).  One web process on
PostgreSQL + Redis then receives batches of 1,000 signals over HTTP with an integration
token: nine in ten name a registered person by ID number (matched by blind index, evaluated
by the warning rules, opening or joining a warning), one in ten a person not on the registry
(kept for review).  Figures: signals per second sent one batch at a time, with four senders
at once, and for a resend of the same batches (every signal answered as a duplicate).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import httpx

from bench.common import deployment, figure, fresh_database
from tests.procs import cli

HOUSEHOLDS = 10_000
BATCH = 1_000
BATCHES = int(os.environ.get("BENCH_SIGNAL_BATCHES", "20"))
KINDS = ["hospital_bill", "accident", "job_loss", "utility_arrears", "disaster", "school_dropout"]

SETUP = """
import asyncio, sys
from datetime import date, timedelta
from households import services
from households.areas import seed_demo_areas
from households.idnumbers import check_character, mask
from households.tables import Household, Member
from marketplace import crypto, db

async def main(count):
    await db.open_pool()
    areas = await seed_demo_areas()
    communities = list(areas["communities"].values())
    households, members, ids = [], [], []
    for n in range(count):
        born = date(1940, 1, 1) + timedelta(days=n % 20000)
        first17 = f"320113{born:%Y%m%d}{n // 20000 + 1:03d}"
        number = first17 + check_character(first17)
        ids.append(number)
        households.append({"code": f"B-{n:06d}", "community": communities[n % len(communities)],
                           "address": f"测试路{n}号", "phone": f"139{n:08d}", "category": "dibao",
                           "groups": ",", "level": 3, "computed_level": 3})
        members.append((n, {"name": f"居民{n}", "id_cipher": crypto.encrypt(number, services.ID_CONTEXT),
                            "id_index": crypto.blind_index(number, services.ID_CONTEXT),
                            "id_masked": mask(number), "birth_date": born, "relation": "head"}))
    async with db.atomic():
        await db.bulk_insert(Household, households)
    by_code = {r["code"]: r["id"] for r in await Household.select(Household.id, Household.code)}
    async with db.atomic():
        await db.bulk_insert(Member, [{**m, "household": by_code[f"B-{n:06d}"]} for n, m in members])
    await db.engine().run_ddl("ANALYZE")
    print("\\n".join(ids))

asyncio.run(main(int(sys.argv[1])))
"""


def make_batches(ids: list[str], count: int) -> list[list[dict]]:
    rng = random.Random(11)
    today = date.today()
    batches = []
    for b in range(count):
        items = []
        for n in range(BATCH):
            kind = rng.choice(KINDS)
            if rng.random() < 0.9:
                subject = rng.choice(ids)
            else:  # someone not on the registry
                born = date(1985, 1, 1) + timedelta(days=rng.randrange(5000))
                first17 = f"320114{born:%Y%m%d}{rng.randrange(1, 999):03d}"
                from households.idnumbers import check_character

                subject = first17 + check_character(first17)
            details: dict = {}
            if kind == "hospital_bill":
                details = {
                    "amount": rng.randrange(2_000, 120_000),
                    "out_of_pocket_share": round(rng.random(), 2),
                }
            elif kind == "utility_arrears":
                details = {"months": rng.randrange(1, 8)}
            items.append(
                {
                    "event_id": f"bench-{b:04d}-{n:04d}",
                    "kind": kind,
                    "occurred_on": (today - timedelta(days=rng.randrange(10))).isoformat(),
                    "id_number": subject,
                    "details": details,
                }
            )
        batches.append(items)
    return batches


def post_all(
    url: str, token: str, batches: list[list[dict]], senders: int
) -> tuple[float, list[float], dict]:
    """Send every batch (``senders`` at a time); returns seconds, per-batch latencies and status counts."""
    counts: dict[str, int] = {}
    latencies: list[float] = []

    def one(items: list[dict]) -> dict:
        with httpx.Client(base_url=url, timeout=120, headers={"authorization": f"Bearer {token}"}) as client:
            started = time.perf_counter()
            response = client.post("/api/v1/signals", json={"signals": items})
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            return response.json()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=senders) as pool:
        for body in pool.map(one, batches):
            for key in ("accepted", "duplicate", "rejected"):
                counts[key] = counts.get(key, 0) + body[key]
    return time.perf_counter() - started, latencies, counts


def main() -> None:
    with fresh_database() as database_url, deployment(database_url, web=1) as dep:
        setup = subprocess.run(
            [sys.executable, "-c", SETUP, str(HOUSEHOLDS)],
            env=dep.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if setup.returncode != 0:
            raise SystemExit(setup.stderr[-2000:])
        ids = setup.stdout.split()
        issued = cli(["create-api-client", "--name", "bench", "--scope", "signals:write"], dep.env)
        token = issued.stdout.strip().split(": ", 1)[1]
        url = dep.urls[0]
        half = max(1, BATCHES // 2)
        batches = make_batches(ids, BATCHES)
        print(f"   {HOUSEHOLDS:,} households; {BATCHES} batches of {BATCH:,} signals (90% on the registry)")
        for label, chosen, senders in (
            ("one sender, one batch at a time", batches[:half], 1),
            ("four senders at once", batches[half:], 4),
            ("resend of every batch (all duplicates), four senders", batches, 4),
        ):
            seconds, latencies, counts = post_all(url, token, chosen, senders)
            signals = len(chosen) * BATCH
            figure(f"{label}: signals/s", signals / seconds, "/s")
            figure(
                f"{label}: batch latency p50 / max",
                f"{statistics.median(latencies) * 1000:.0f} / {max(latencies) * 1000:.0f}",
                "ms",
            )
            figure(f"{label}: outcome", json.dumps(counts))
        check = subprocess.run(
            [sys.executable, "-c", COUNTS], env=dep.env, capture_output=True, text=True, check=True
        )
        figure("signals / warnings / unmatched stored", check.stdout.strip())


COUNTS = """
import asyncio
from households.tables import HouseholdWarning, Signal
from marketplace import db

async def main():
    await db.open_pool()
    print(f"{await Signal.count():,} / {await HouseholdWarning.count():,} / "
          f"{await Signal.count().where(Signal.status == 'unmatched'):,}")

asyncio.run(main())
"""
