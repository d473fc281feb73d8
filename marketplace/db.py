"""The database engine, transactions and migrations, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote, urlparse

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from marketplace.settings import Settings

log = logging.getLogger("cloudmarket.db")

SQLITE_BUSY_TIMEOUT_S = 30
PG_MIGRATION_LOCK = 727_001  # advisory lock id: one process migrates at a time


class LoopLocalPostgresEngine(PostgresEngine):
    """A PostgresEngine whose connection pool belongs to the event loop that opened it.

    Dramatiq runs async actors on an event loop thread of its own; in the embedded mode and
    in tests that loop lives beside the web server's.  asyncpg connections cannot cross
    loops, so each loop gets its own pool and queries use the pool of the loop they run on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pools: dict[asyncio.AbstractEventLoop, Any] = {}
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def pool(self) -> Any:
        try:
            return self._pools.get(asyncio.get_running_loop())
        except RuntimeError:
            return None

    @pool.setter
    def pool(self, value: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # the base class sets None before any loop runs
        if value is None:
            self._pools.pop(loop, None)
        else:
            self._pools[loop] = value


def make_engine(settings: Settings) -> Engine[Any]:
    """The Piccolo engine for ``DATABASE_URL``."""
    if settings.is_sqlite:
        path = settings.sqlite_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            # WAL lets readers go on while one writer writes; it is a property of the file.
            conn.execute("PRAGMA journal_mode=WAL")
        return SQLiteEngine(path=str(path), timeout=SQLITE_BUSY_TIMEOUT_S)
    url = urlparse(settings.database_url)
    if url.scheme not in {"postgres", "postgresql"}:
        raise SystemExit(f"DATABASE_URL must start with postgresql:// or sqlite:///, got {url.scheme}://")
    config = {
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 5432,
        "user": unquote(url.username) if url.username else None,
        "password": unquote(url.password) if url.password else None,
        "database": url.path.lstrip("/") or "postgres",
        "server_settings": {"application_name": "cloudmarket"},
    }
    return LoopLocalPostgresEngine(config={k: v for k, v in config.items() if v is not None})


def engine() -> Engine[Any]:
    """The engine named in ``piccolo_conf``: the one every table uses."""
    from piccolo_conf import DB

    return DB  # type: ignore[no-any-return]


def is_postgres() -> bool:
    return engine().engine_type == "postgres"


_after_commit: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "cloudmarket_after_commit", default=None
)


def on_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the current ``atomic()`` block commits (at once if none is open)."""
    pending = _after_commit.get()
    if pending is None:
        callback()
    else:
        pending.append(callback)


@contextlib.asynccontextmanager
async def atomic() -> AsyncIterator[None]:
    """One database transaction; the only way the service writes several rows together.

    On SQLite the transaction takes the write lock at once (``BEGIN IMMEDIATE``), so two
    writers queue on the busy timeout instead of failing when one upgrades a read lock.
    Nested blocks join the outer one.
    """
    db = engine()
    if db.current_transaction.get() is not None:
        yield
        return
    callbacks: list[Callable[[], None]] = []
    token = _after_commit.set(callbacks)
    try:
        if isinstance(db, SQLiteEngine):
            transaction = db.transaction(transaction_type=TransactionType.immediate)
        else:
            transaction = db.transaction()
        async with transaction:
            yield
    finally:
        _after_commit.reset(token)
    for callback in callbacks:
        callback()


def is_unique_violation(exc: BaseException) -> bool:
    """A unique index refused a row (SQLite or PostgreSQL)."""
    name = type(exc).__name__
    return name == "UniqueViolationError" or (name == "IntegrityError" and "UNIQUE" in str(exc).upper())


@contextlib.asynccontextmanager
async def atomic_unique(explain: Callable[[], Awaitable[Exception]]) -> AsyncIterator[None]:
    """:func:`atomic`, where a unique index refusing a row raises what ``explain()`` returns.

    Checking before writing leaves a moment in which a concurrent request can write the same
    value; the index then refuses the loser's row.  ``explain`` runs after the rollback (so it
    can read what the winner stored) and returns the error to raise, usually a
    ``ValidationFailed`` naming the field.  Inside an outer transaction the refusal propagates
    unchanged: that transaction is spoilt and its owner decides.
    """
    outer = engine().current_transaction.get() is not None
    try:
        async with atomic():
            yield
    except Exception as exc:
        if outer or not is_unique_violation(exc):
            raise
        raise await explain() from exc


async def lock_row(table: Any, row_id: int) -> None:
    """Hold one row until the current ``atomic()`` block ends, so that read-then-write is safe.

    PostgreSQL locks the row (``FOR UPDATE``); SQLite needs nothing, as ``atomic()`` already
    holds the database's write lock.
    """
    if is_postgres():
        await table.select(table.id).where(table.id == row_id).lock_rows("UPDATE")


async def ping() -> None:
    """Raise if the database cannot answer a trivial query."""
    await engine().run_ddl("SELECT 1")


async def open_pool() -> None:
    """Open a connection pool for the running event loop (PostgreSQL only)."""
    db = engine()
    if isinstance(db, PostgresEngine) and db.pool is None:
        await db.start_connection_pool(min_size=1, max_size=10)


async def close_pool() -> None:
    db = engine()
    if isinstance(db, PostgresEngine) and db.pool is not None:
        await db.close_connection_pool()


async def migrate() -> list[str]:
    """Apply every migration not yet applied, in app order; returns what it printed.

    On PostgreSQL an advisory lock keeps two processes from migrating at once.
    """
    from piccolo.apps.migrations.commands.forwards import run_forwards

    out = io.StringIO()
    db = engine()
    if isinstance(db, PostgresEngine):
        conn = await db.get_new_connection()
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", PG_MIGRATION_LOCK)
            with contextlib.redirect_stdout(out):
                result = await run_forwards(app_name="all")
            await conn.execute("SELECT pg_advisory_unlock($1)", PG_MIGRATION_LOCK)
        finally:
            await conn.close()
    else:
        with contextlib.redirect_stdout(out):
            result = await run_forwards(app_name="all")
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    if not result.success:
        raise RuntimeError(f"migration failed: {result.message}")
    return lines


async def pending_migrations() -> list[str]:
    """Migration ids not yet applied to this database."""
    from piccolo.apps.migrations.commands.check import CheckMigrationManager

    with contextlib.redirect_stdout(io.StringIO()):
        statuses = await CheckMigrationManager(app_name="all").get_migration_statuses()
    return [f"{s.app_name}:{s.migration_id}" for s in statuses if not s.has_ran]


async def bulk_insert(table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows at once inside the open ``atomic()`` block: COPY on PostgreSQL, executemany on SQLite.

    Rows are dicts by column name; a missing column takes its default.  Piccolo's own
    ``insert(*rows)`` builds a Table object and a query string per row, which costs more than
    the database does (about a millisecond a row); this hands plain tuples to the driver.
    Ids are not returned: look the rows up by a unique column afterwards.
    """
    from piccolo.columns import JSON
    from piccolo.columns.defaults.base import Default

    if not rows:
        return
    db = engine()
    transaction = db.current_transaction.get()
    if transaction is None:
        raise RuntimeError("bulk_insert needs an open atomic() block")
    columns = [c for c in table._meta.columns if not c._meta.primary_key]
    names = [c._meta.db_column_name for c in columns]
    defaults: dict[str, Any] = {}
    for column in columns:
        value = column.get_default_value()
        defaults[column._meta.db_column_name] = value.python() if isinstance(value, Default) else value
    json_columns = {c._meta.db_column_name for c in columns if isinstance(c, JSON)}

    def value_of(row: Mapping[str, Any], name: str) -> Any:
        value = row.get(name, defaults[name])
        if name in json_columns and not isinstance(value, str):
            return json.dumps(value, default=str)
        return value

    records = [tuple(value_of(row, name) for name in names) for row in rows]
    if isinstance(db, PostgresEngine):
        await transaction.connection.copy_records_to_table(
            table._meta.tablename, records=records, columns=names
        )
    else:
        quoted = ", ".join(f'"{name}"' for name in names)
        marks = ", ".join("?" for _ in names)
        # Table and column names come from the Table class, never from input; values are bound.
        sql = f'INSERT INTO "{table._meta.tablename}" ({quoted}) VALUES ({marks})'  # noqa: S608
        await transaction.connection.executemany(sql, records)


async def bulk_update(table: Any, rows: Sequence[Mapping[str, Any]], key: str = "id") -> None:
    """Change many rows at once inside the open ``atomic()`` block: one statement on PostgreSQL.

    Rows are dicts by column name, all with the same columns and ``key`` (an integer column that
    finds the row); JSON values are serialised as :func:`bulk_insert` does.  PostgreSQL gets one
    ``UPDATE ... FROM unnest(arrays)`` whatever the number of rows; SQLite, which has no round
    trips to save, one prepared UPDATE run by executemany.
    """
    from piccolo.columns import JSON

    if not rows:
        return
    transaction = engine().current_transaction.get()
    if transaction is None:
        raise RuntimeError("bulk_update needs an open atomic() block")
    names = [name for name in rows[0] if name != key]
    columns = {c._meta.db_column_name: c for c in table._meta.columns}
    json_columns = {name for name, c in columns.items() if isinstance(c, JSON)}

    def value_of(row: Mapping[str, Any], name: str) -> Any:
        value = row[name]
        if name in json_columns and not isinstance(value, str):
            return json.dumps(value, default=str)
        return value

    tablename = table._meta.tablename
    # Table and column names come from the Table class, never from input; values are bound.
    if is_postgres():
        types = [columns[name].column_type for name in names]
        arrays = ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(["INTEGER", *types], start=1))
        assignments = ", ".join(f'"{name}" = v."{name}"' for name in names)
        aliases = ", ".join(f'"{name}"' for name in [key, *names])
        sql = (
            f'UPDATE "{tablename}" SET {assignments} FROM unnest({arrays}) AS v({aliases}) '  # noqa: S608
            f'WHERE "{tablename}"."{key}" = v."{key}"'
        )
        await transaction.connection.execute(
            sql, [row[key] for row in rows], *([value_of(row, name) for row in rows] for name in names)
        )
        return
    assignments = ", ".join(f'"{name}" = ?' for name in names)
    sql = f'UPDATE "{tablename}" SET {assignments} WHERE "{key}" = ?'  # noqa: S608
    await transaction.connection.executemany(
        sql, [(*(value_of(row, n) for n in names), row[key]) for row in rows]
    )


def contains_any(columns: Sequence[Any], values: Sequence[str]) -> Any:
    """A condition: any text ``column`` contains any of ``values`` (LIKE: a full scan, for rare jobs)."""
    condition: Any = None
    for column in columns:
        for value in values:
            like = column.like(f"%{value}%")
            condition = like if condition is None else condition | like
    return condition
