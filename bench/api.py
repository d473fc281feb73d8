"""Bookings: POST /api/v1/orders per second against a bare Litestar insert, with peak memory.

A fresh PostgreSQL database and Redis, and a production deployment of real processes: two
`cloudmarket serve` web processes (one port each; the clients are spread over both) and one
`cloudmarket worker`, which routes the orders while they are booked.  The district: the demo
streets, five providers offering cleaning at every hour, and BENCH_API_HOUSEHOLDS households
(default 64), each with a resident logged in (a session cookie and its CSRF token) and a
million credits.  BENCH_API_CLIENTS concurrent clients (default 32), each a resident booking
for their household over and over with a fresh Idempotency-Key, for BENCH_API_SECONDS
(default 30) after a 2 s warm-up.

Then, in the same run and under the same client load, a bare Litestar app defined here
(`bare_app`): one endpoint that inserts one row through the project's Piccolo engine and
connection pool, served by uvicorn as `cloudmarket serve` is, in two processes on two ports
of the same PostgreSQL.

Prints bookings/s and p50/p99 latency, the same for the bare inserts, their ratio (bookings/s
÷ inserts/s: what one booking costs in bare inserts), and the peak RSS (VmHWM) of each web
process and the worker.  Run: ``python -m bench api``.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Litestar, post
from piccolo.columns import Timestamptz, Varchar
from piccolo.table import Table

from bench.common import (
    HttpClient,
    LoadResult,
    deployment,
    env_int,
    figure,
    fresh_database,
    http_load,
    peak_rss_mb,
    percentile,
)
from tests.procs import ROOT, free_port

HOUSEHOLDS = env_int("BENCH_API_HOUSEHOLDS", 64)
CLIENTS = env_int("BENCH_API_CLIENTS", 32)
SECONDS = env_int("BENCH_API_SECONDS", 30)


class BareRow(Table, tablename="bench_bare_row"):
    """The bare app's table: one row per request."""

    payload = Varchar(length=200)
    created_at = Timestamptz()


@asynccontextmanager
async def _pool(app: Litestar) -> AsyncIterator[None]:
    from marketplace import db

    await db.open_pool()
    try:
        yield
    finally:
        await db.close_pool()


@post("/insert", status_code=201)
async def insert(data: dict[str, Any]) -> dict[str, Any]:
    row = BareRow(payload=str(data.get("payload", ""))[:200], created_at=datetime.now(UTC))
    await row.save()
    return {"id": row.id}


def bare_app() -> Litestar:
    """The baseline: Litestar, the project's engine and pool, one insert per request."""
    return Litestar(route_handlers=[insert], lifespan=[_pool])


SETUP = f"""
import asyncio, json
from households import services
from households.areas import seed_demo_areas
from marketplace import accounts, db
from marketplace.auth import LinkKind
from orders import credits
from tests.catalog_data import seed_catalog
from tests.households.conftest import ADMIN, member_data
from tests.providers.factories import make_offering, make_provider
from bench.api import BareRow

EVERYWHERE = [(d, 0, 24 * 60) for d in range(7)]

async def main():
    await db.open_pool()
    await BareRow.create_table(if_not_exists=True)
    area = await seed_demo_areas()
    community = area["communities"]["尧化门社区"]
    category = (await seed_catalog())["cleaning"]
    for i in range(5):
        provider = await make_provider(name=f"服务中心{{i}}", latitude=32.11, longitude=118.86 + i * 0.01)
        await make_offering(provider, category, [community], hours=EVERYWHERE, capacity=10_000_000)
    sessions = []
    for i in range({HOUSEHOLDS}):
        household = await services.create_household(ADMIN, {{"code": f"B-{{i}}", "community_id": community,
            "address": f"{{i}}号", "phone": f"136{{i:08d}}", "category": "dibao", "groups": []}},
            [member_data(seq=i % 900 + 2)])
        await credits.grant(household, 1_000_000, key=f"bench:{{household}}")
        user = await accounts.create_user(phone=f"137{{i:08d}}", display_name=f"居民{{i}}", role="resident",
                                          password="bench-password")
        await accounts.link(user.id, LinkKind.HOUSEHOLD, household)
        sessions.append(await accounts.start_session(user.id))
    print(json.dumps({{"sessions": sessions}}))

asyncio.run(main())
"""


def _run(script: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return out.stdout.strip().splitlines()[-1]


def _booking() -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=1, minutes=random.randrange(0, 24 * 60, 15))
    return {
        "category": "cleaning",
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=2)).isoformat(),
    }


def _residents(urls: list[str], sessions: list[str]) -> list[HttpClient]:
    """One client per resident, spread over the web processes, with its session and CSRF token."""
    import httpx

    clients = []
    for i in range(CLIENTS):
        base = urls[i % len(urls)]
        cookies = {"cm_session": sessions[i % len(sessions)]}
        me = httpx.get(f"{base}/api/v1/me", cookies=cookies, timeout=60)
        me.raise_for_status()
        csrf = me.cookies.get("cm_csrf") or ""
        clients.append(
            HttpClient(
                url=f"{base}/api/v1/orders",
                body=_booking,
                headers={"x-csrftoken": csrf, "Idempotency-Key": "new"},
                cookies={**cookies, "cm_csrf": csrf},
            )
        )
    return clients


def _print(label: str, result: LoadResult) -> None:
    figure(f"{label}: per second", result.per_second)
    p50 = percentile(result.latencies_ms, 50)
    p99 = percentile(result.latencies_ms, 99)
    figure(f"{label}: p50 / p99 latency", f"{p50:.0f} / {p99:.0f}", "ms")
    if result.errors:
        figure(f"{label}: failed requests", str(result.errors), f"{dict(result.statuses)}")


def main() -> None:
    with (
        fresh_database() as database_url,
        deployment(database_url, web=2, workers=1, CLOUDMARKET_QUIET_HOURS="") as dep,
    ):
        sessions = json.loads(_run(SETUP, dep.env))["sessions"]
        clients = _residents(dep.urls, sessions)
        booked = http_load(clients, seconds=SECONDS)
        peaks = {f"web process {n + 1}": peak_rss_mb(pid) for n, pid in enumerate(dep.pids("web"))}
        peaks["worker"] = peak_rss_mb(dep.pids("worker")[0])

        inserted = _bare_inserts(dep.env)

    print(f"   {CLIENTS} clients, {SECONDS} s, 2 web processes + 1 worker, {HOUSEHOLDS} households")
    _print("POST /api/v1/orders (bookings)", booked)
    _print("bare Litestar insert (2 processes)", inserted)
    ratio = booked.per_second / inserted.per_second if inserted.per_second else float("nan")
    figure("bookings/s ÷ bare inserts/s", f"{ratio:.3f}")
    for name, mb in peaks.items():
        figure(f"peak RSS during the bookings, {name}", mb, "MiB")


def _bare_inserts(env: dict[str, str]) -> LoadResult:
    """The bare app in two uvicorn processes under the same client load."""
    ports = [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in ports]
        bare = [
            subprocess.Popen(_uvicorn(port), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            for port, log in zip(ports, logs, strict=True)
        ]
        try:
            for port, proc, log in zip(ports, bare, logs, strict=True):
                if not _answers(f"http://127.0.0.1:{port}/insert", proc):
                    log.seek(0)
                    raise SystemExit(f"the bare app did not start:\n{log.read().decode(errors='replace')}")
            clients = [
                HttpClient(url=f"http://127.0.0.1:{ports[i % 2]}/insert", body=lambda: {"payload": "x" * 40})
                for i in range(CLIENTS)
            ]
            return http_load(clients, seconds=SECONDS)
        finally:
            for proc in bare:
                proc.terminate()
                proc.wait(30)


def _answers(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    """Whether the server at ``url`` answers within ``timeout`` seconds (False if it exits)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=2)
            return True
        time.sleep(0.2)
    return False


def _uvicorn(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.api:bare_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
