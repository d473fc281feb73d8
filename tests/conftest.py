"""Test fixtures: a fresh database per run, a clean slate per test, clients and a real worker.

The suite runs on SQLite with the in-process broker when ``DATABASE_URL`` is unset, and on
PostgreSQL with Redis when ``DATABASE_URL`` and ``REDIS_URL`` point at servers: then a new
database ``cm_test_<run>`` is created on that server and a Redis key namespace of the run's
own is used, so that several runs can share the servers.  The environment is set here,
before any project module is imported, because the settings are read once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from urllib.parse import urlparse, urlunparse

RUN_ID = uuid.uuid4().hex[:10]
TMP_DIR = tempfile.mkdtemp(prefix=f"cm-test-{RUN_ID}-")
os.environ["CLOUDMARKET_VAR_DIR"] = TMP_DIR
os.environ["CLOUDMARKET_PASSWORD_HASH"] = "fast"
os.environ["CLOUDMARKET_SECRET_KEY"] = "test-secret-key-not-for-production"
os.environ.setdefault("CLOUDMARKET_DATA_KEY", "dGVzdC1kYXRhLWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=")
os.environ["CLOUDMARKET_DEMO_DATA"] = "false"
os.environ["CLOUDMARKET_LOG_LEVEL"] = os.environ.get("CLOUDMARKET_LOG_LEVEL", "WARNING")
os.environ["CLOUDMARKET_REDIS_NAMESPACE"] = f"cmtest{RUN_ID}"
os.environ["CLOUDMARKET_OUTBOX_LEASE_SECONDS"] = "900"

SERVER_URL = os.environ.get("DATABASE_URL", "")
TEST_DB = f"cm_test_{RUN_ID}"
ON_POSTGRES = SERVER_URL.startswith(("postgres://", "postgresql://"))


def _pg_admin(sql: str) -> None:
    from tests.procs import pg_admin

    pg_admin(SERVER_URL, sql)


if ON_POSTGRES:
    _pg_admin(f'CREATE DATABASE "{TEST_DB}"')
    parsed = urlparse(SERVER_URL)
    os.environ["DATABASE_URL"] = urlunparse(parsed._replace(path=f"/{TEST_DB}"))
else:
    os.environ.pop("DATABASE_URL", None)

# Only now may project modules be imported.
import dramatiq  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402
from dramatiq.brokers.stub import StubBroker  # noqa: E402

from marketplace import clock, db, kv, outbox  # noqa: E402
from marketplace.broker import broker, load_actors, new_worker  # noqa: E402
from marketplace.settings import get_settings  # noqa: E402

load_actors()


def pytest_report_header(config: pytest.Config) -> str:
    settings = get_settings()
    backend = "PostgreSQL + Redis" if ON_POSTGRES else "SQLite + in-process broker"
    return f"cloudmarket backend: {backend} (database {settings.public()['database_url']})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL and Redis: runs in the second pass of `make test`")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(TMP_DIR, ignore_errors=True)
    if ON_POSTGRES:
        try:
            _pg_admin(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
        except Exception as exc:  # the run's result matters more than the cleanup
            print(f"could not drop {TEST_DB}: {exc}")


SEEDED: dict[type, list[dict]] = {}


@pytest.fixture(scope="session", autouse=True)
async def database() -> None:
    """Migrate the run's database once; open a pool on the test loop.

    Rows that data migrations wrote (the service categories, the first level policies, ...)
    are kept aside and put back after each test's truncation, as every install has them.
    """
    await db.migrate()
    await db.open_pool()
    from piccolo.conf.apps import Finder

    for table in Finder().get_table_classes():
        rows = await table.select()
        if rows:
            SEEDED[table] = rows
    yield
    await db.close_pool()
    await kv.close()


async def _table_names() -> list[str]:
    from piccolo.conf.apps import Finder

    return [table._meta.tablename for table in Finder().get_table_classes()]


async def truncate_all() -> None:
    """Empty every table and restart every id sequence.

    On PostgreSQL, DELETE with foreign-key triggers off is some fifty times faster than
    TRUNCATE for tables of a few rows (TRUNCATE makes new files for every table).
    """
    names = await _table_names()
    if db.is_postgres():
        script = "\n".join(
            [
                "SET session_replication_role = replica;",
                *(f'DELETE FROM "{n}";' for n in names),
                "SET session_replication_role = DEFAULT;",
                "SELECT setval(c.oid, 1, false) FROM pg_class c WHERE c.relkind = 'S';",
            ]
        )
        async with db.engine().pool.acquire() as conn:
            await conn.execute(script)
    else:
        async with db.atomic():
            await db.engine().run_ddl("PRAGMA defer_foreign_keys = ON")
            for name in names:
                await db.engine().run_ddl(f'DELETE FROM "{name}"')
            await db.engine().run_ddl("DELETE FROM sqlite_sequence") if await _has_sqlite_sequence() else None


async def _has_sqlite_sequence() -> bool:
    rows = await db.engine().run_ddl("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'")
    return bool(rows)


async def flush_redis() -> None:
    client = kv.redis_client()
    if client is None:
        return
    prefix = get_settings().redis_namespace
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture(autouse=True)
async def clean_slate() -> None:
    """Every test starts with empty tables, empty queues, no counters and real time."""
    yield
    clock.reset()
    broker.flush_all()
    await flush_redis()
    kv._memory_counters._counts.clear()
    await truncate_all()
    await restore_seeded()


async def restore_seeded() -> None:
    """Put back the rows the data migrations wrote, with their ids."""
    for table, rows in SEEDED.items():
        await table.insert(*[table(**row) for row in rows])
        if db.is_postgres():
            name = table._meta.tablename
            await db.engine().run_ddl(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT MAX(id) FROM \"{name}\"))"
            )


# -- web clients -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app():
    from marketplace.app import create_app

    return create_app(run_jobs=False)


class WebClient(httpx.AsyncClient):
    """An HTTP client for the app that sends the CSRF token with forms, like a browser page."""

    async def csrf(self) -> str:
        token = self.cookies.get("cm_csrf")
        if token is None:
            await self.get("/healthz")
            token = self.cookies.get("cm_csrf")
        assert token, "the app set no CSRF cookie"
        return token

    async def post_form(self, url: str, data: dict[str, str] | None = None, **kwargs) -> httpx.Response:
        form = dict(data or {})
        form["_csrf_token"] = await self.csrf()
        return await self.post(url, data=form, **kwargs)

    def set_cookie(self, name: str, value: str) -> None:
        """Replace a cookie, as a browser would hold it for this site."""
        self.cookies.delete(name)
        self.cookies.set(name, value, domain="testserver.local")

    async def login(self, phone: str, password: str) -> httpx.Response:
        response = await self.post_form("/login", {"phone": phone, "password": password})
        return response


@pytest.fixture
def make_client(app):
    """Make as many independent browsers as a test needs."""

    def make(**headers: str) -> WebClient:
        client = WebClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 50000)),
            base_url="http://testserver",
            headers=headers,
            follow_redirects=False,
        )
        return client

    return make


@pytest.fixture
def client(make_client) -> WebClient:
    return make_client()


# -- accounts ------------------------------------------------------------------------------------

PASSWORD = "correct-horse-battery"


@pytest.fixture
def make_user():
    """Create a user with a role; returns the row as a dict with its password."""
    from marketplace import accounts

    counter = iter(range(10_000_000, 99_999_999))

    async def make(
        role: str = "resident", *, phone: str | None = None, password: str = PASSWORD, name: str = "测试用户"
    ) -> dict:
        phone = phone or f"139{next(counter):08d}"
        user = await accounts.create_user(phone=phone, display_name=name, role=role, password=password)
        return {"id": user.id, "phone": phone, "password": password, "role": role}

    return make


@pytest.fixture
def logged_in(make_client, make_user):
    """A client logged in with a new user of ``role``: ``client, user = await logged_in("steward")``."""

    async def make(role: str = "resident", **kwargs) -> tuple[WebClient, dict]:
        user = await make_user(role, **kwargs)
        c = make_client()
        response = await c.login(user["phone"], user["password"])
        assert response.status_code in (302, 303), response.text
        return c, user

    return make


# -- the queue -------------------------------------------------------------------------------------


@pytest.fixture
def worker():
    """A real Dramatiq worker over the run's broker (in-process or Redis), for one test."""
    w = new_worker(threads=2)
    w.start()
    yield w
    w.stop()
    # A worker leaves its middleware on the broker; the next test's worker brings its own.
    broker.middleware[:] = [m for m in broker.middleware if type(m).__name__ != "_WorkerMiddleware"]


async def run_jobs(worker: dramatiq.Worker, *, rounds: int = 50, fail_fast: bool = True) -> None:
    """Relay the outbox and wait until every queue is empty, until nothing new appears."""
    for _ in range(rounds):
        sent = await outbox.drain()
        for queue in broker.get_declared_queues():
            if isinstance(broker, StubBroker):
                await asyncio.to_thread(broker.join, queue, fail_fast=fail_fast)
            else:
                await asyncio.to_thread(broker.join, queue, interval=10)
        await asyncio.to_thread(worker.join)
        if sent == 0 and await _nothing_due():
            return
    raise AssertionError("jobs kept coming after 50 rounds")


async def _nothing_due() -> bool:
    from marketplace.tables import OutboxMessage

    return not await OutboxMessage.exists().where(
        (OutboxMessage.state == "pending") & (OutboxMessage.due_at <= clock.now())
    )
