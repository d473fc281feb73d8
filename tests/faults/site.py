"""A whole deployment for fault tests: its own database, its own Redis, real web and worker processes.

Each fault test starts ``cloudmarket serve`` and ``cloudmarket worker`` as a production site
runs them (PostgreSQL + Redis), on a throwaway database seeded with the demo data, so that
killing or restarting one of them harms nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx

from tests.procs import Proc, clean_env, cli, free_port, login, pg_admin, started_worker

CREDENTIAL_LINE = re.compile(r"^\s+(\w+)\s+(1\d{10})\s+(\S+)\s", re.MULTILINE)
TOKEN_LINE = re.compile(r"^client \d+: (\S+)$", re.MULTILINE)
ROLES = ("resident", "provider_staff", "volunteer", "steward", "admin")


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true; generous, as CI machines are loaded."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout}s")
        time.sleep(0.2)


def query(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run one query on the deployment's database from the test (sync) code."""
    import asyncpg

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(database_url, timeout=10)
        try:
            return [dict(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def scalar(database_url: str, sql: str, *args: Any) -> Any:
    rows = query(database_url, sql, *args)
    return next(iter(rows[0].values())) if rows else None


class Deployment:
    """One site: a migrated, seeded database, a Redis, and the processes started for it."""

    def __init__(self, database_url: str, redis_port: int, var_dir: Path, **settings: str):
        self.database_url = database_url
        self.redis_port = redis_port
        self.env = clean_env(
            DATABASE_URL=database_url,
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            CLOUDMARKET_SECRET_KEY="fault-test-secret",
            CLOUDMARKET_DATA_KEY="fault-test-data-key-0123456789abcdef",
            CLOUDMARKET_VAR_DIR=str(var_dir),
            CLOUDMARKET_API_RATE_LIMIT="1000000",
            CLOUDMARKET_LOGIN_RATE_LIMIT="1000",
            CLOUDMARKET_LOG_LEVEL="INFO",
            **settings,
        )
        self.procs: list[Proc] = []
        self.clients: list[httpx.Client] = []  # closed before the processes stop, which waits for them
        self.creds: dict[str, tuple[str, str]] = {}
        self.token = ""

    def prepare(self) -> Seeded:
        """Migrate, load the demo data and issue a ``signals:write`` token, as an operator would."""
        for args in (
            ["migrate"],
            ["seed-demo"],
            ["create-api-client", "--name", "医保局", "--scope", "signals:write"],
        ):
            done = cli(args, self.env)
            assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
            if args[0] == "seed-demo":
                self.creds = {role: (phone, pw) for role, phone, pw in CREDENTIAL_LINE.findall(done.stdout)}
            if args[0] == "create-api-client":
                found = TOKEN_LINE.search(done.stdout)
                assert found, done.stdout
                self.token = found.group(1)
        assert set(self.creds) == set(ROLES), self.creds
        return Seeded(self.creds, self.token)

    def serve(self, name: str = "web") -> tuple[Proc, str]:
        """Start one web process and wait until it answers; returns it and its base URL."""
        port = free_port()
        proc = Proc(["serve", "--port", str(port)], self.env, name)
        self.procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        proc.wait_for(f"{base}/healthz", timeout=90)
        return proc, base

    def worker(self, threads: int = 2) -> Proc:
        """Start a worker and wait until its outbox relay runs."""
        proc = started_worker(self.env, threads=threads)
        self.procs.append(proc)
        return proc

    def login(self, base: str, role: str) -> httpx.Client:
        phone, password = self.creds[role]
        return login(base, phone, password)

    def api(self, base: str) -> httpx.Client:
        """A client of another department's system, with the bearer token."""
        return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def sql(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return query(self.database_url, sql, *args)

    def scalar(self, sql: str, *args: Any) -> Any:
        return scalar(self.database_url, sql, *args)

    def everyone_told(self) -> bool:
        """No message to tell a steward is waiting, and every open warning's assignee has it in the inbox."""
        waiting = self.scalar(
            "SELECT COUNT(*) FROM cm_outbox WHERE actor = 'households.tasks.notify_assigned'"
        )
        untold = self.scalar(
            "SELECT COUNT(*) FROM hh_warning w WHERE w.assigned_to IS NOT NULL AND w.status <> 'closed' "
            "AND NOT EXISTS (SELECT 1 FROM nt_inbox_item i WHERE i.link = '/warnings/' || w.id)"
        )
        return waiting == 0 and untold == 0

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.output()[-4000:]}" for p in self.procs)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.stop(timeout=5)  # what they do after the test does not matter: no long goodbyes


@dataclass
class Seeded:
    """What preparing a database printed: the demo accounts' passwords and the API token."""

    creds: dict[str, tuple[str, str]]
    token: str


@contextlib.contextmanager
def deployment(
    database_url: str, redis_port: int, var_dir: Path, seeded: Seeded | None = None, **settings: str
) -> Iterator[Deployment]:
    """A site on ``database_url``: prepared here, or a copy of a database prepared before (``seeded``)."""
    site = Deployment(database_url, redis_port, var_dir, **settings)
    if seeded is None:
        site.prepare()
    else:
        site.creds, site.token = seeded.creds, seeded.token
    try:
        yield site
    finally:
        site.stop()


HOUSEHOLDS = ("QX-YH-0001", "QX-YH-0002", "QX-XY-0001", "QX-XY-0002", "QX-MQ-0001", "QX-NONE-9999")
KINDS = ("accident", "job_loss", "disaster")
LOAD_THREADS = 4
MAX_REQUESTS = 4000  # per thread: the load is bounded in count as well as in time


@dataclass
class Load:
    """Signal batches sent by several threads until told to stop, with every answer kept."""

    base: str
    token: str
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[list[str], int, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    numbers: Iterator[int] = field(default_factory=itertools.count)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.run) for _ in range(LOAD_THREADS)]
        for thread in threads:
            thread.start()
        return threads

    def finish(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for thread in threads:
            thread.join(60)

    def run(self) -> None:
        day = (date.today() - timedelta(days=1)).isoformat()
        with httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        ) as api:
            for _ in range(MAX_REQUESTS):
                if self.stop.is_set():
                    return
                with self.lock:
                    n = next(self.numbers)
                batch = [
                    {
                        "event_id": f"LOAD-{n}-{i}",
                        "kind": KINDS[(n + i) % len(KINDS)],
                        "occurred_on": day,
                        "household_code": HOUSEHOLDS[(n + i) % len(HOUSEHOLDS)],
                    }
                    for i in range(1 + n % 3)
                ]
                try:
                    response = api.post("/api/v1/signals", json={"signals": batch})
                    status, body = response.status_code, _json(response)
                except httpx.HTTPError as exc:  # a request the server never answered
                    status, body = 0, {"error": repr(exc)}
                with self.lock:
                    self.answers.append(([s["event_id"] for s in batch], status, body))
                time.sleep(0.01)


def _json(response: httpx.Response) -> dict:
    try:
        return response.json()
    except ValueError:
        return {"text": response.text[:500]}


@contextlib.contextmanager
def copy_of(template_url: str) -> Iterator[str]:
    """A new database copied from the (idle) database at ``template_url``, dropped afterwards."""
    parsed = urlparse(template_url)
    name = f"cm_fault_{uuid.uuid4().hex[:8]}"
    server = urlunparse(parsed._replace(path="/postgres"))
    pg_admin(server, f'CREATE DATABASE "{name}" TEMPLATE "{parsed.path.lstrip("/")}"')
    try:
        yield urlunparse(parsed._replace(path=f"/{name}"))
    finally:
        pg_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
