"""Both run modes start from nothing, as real processes; readiness tells when Redis is gone."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ON_POSTGRES, SERVER_URL
from tests.procs import Proc, clean_env, cli, free_port, login, private_redis, start_redis
from tests.procs import fresh_database as procs_fresh_database

CREDENTIAL_LINE = re.compile(r"^\s+(\w+)\s+(1\d{10})\s+(\S+)\s", re.MULTILINE)


def credentials(output: str) -> dict[str, tuple[str, str]]:
    return {role: (phone, password) for role, phone, password in CREDENTIAL_LINE.findall(output)}


def wait_until(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.mark.skipif(ON_POSTGRES, reason="the embedded mode is tested in the SQLite pass")
async def test_embedded_mode_starts_from_nothing(tmp_path: Path):
    var = tmp_path / "var"
    port = free_port()
    env = clean_env(CLOUDMARKET_VAR_DIR=str(var))
    base = f"http://127.0.0.1:{port}"

    serve = Proc(["serve", "--port", str(port)], env, "embedded")
    try:
        health = await asyncio.to_thread(serve.wait_for, f"{base}/healthz")
        assert health.status_code == 200
        assert (await asyncio.to_thread(httpx.get, f"{base}/readyz")).json()["status"] == "ready"
        creds = credentials(serve.output())
        assert set(creds) == {"admin", "steward", "provider_staff", "volunteer", "resident"}
        assert (var / "cloudmarket.sqlite3").is_file()

        # Every demo account logs in and sees a page for its role
        for role, (phone, password) in creds.items():
            browser = await asyncio.to_thread(login, base, phone, password)
            home = await asyncio.to_thread(browser.get, "/")
            assert home.status_code == 200, role
            assert "退出登录" in home.text

        # The in-process worker runs jobs: the daily housekeeping ran and nothing due is left
        # in the outbox (messages for later, such as offers' expiry, wait for their time)
        def housekeeping_done() -> bool:
            with sqlite3.connect(var / "cloudmarket.sqlite3") as db:
                runs = db.execute("SELECT COUNT(*) FROM cm_scheduled_run").fetchone()[0]
                waiting = db.execute(
                    "SELECT COUNT(*) FROM cm_outbox WHERE julianday(due_at) <= julianday('now')"
                ).fetchone()[0]
            return runs >= 1 and waiting == 0

        await asyncio.to_thread(wait_until, housekeeping_done)
    finally:
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught
        assert serve.stop() in (0, -15), serve.output()
    assert "Application shutdown complete" in serve.output()

    # A second start keeps the data: no second set of demo accounts, the same credentials
    again = Proc(["serve", "--port", str(port)], env, "embedded-again")
    try:
        await asyncio.to_thread(again.wait_for, f"{base}/healthz")
        assert credentials(again.output()) == creds
        with sqlite3.connect(var / "cloudmarket.sqlite3") as db:
            assert db.execute("SELECT COUNT(*) FROM cm_user").fetchone()[0] == 5
    finally:
        again.stop()


@pytest.fixture
def fresh_database():
    """A new, empty PostgreSQL database for one deployment."""
    with procs_fresh_database(SERVER_URL, "cm_deploy") as url:
        yield url


def production_env(database_url: str, redis_port: int, tmp_path: Path) -> dict[str, str]:
    """The environment of a production deployment on ``database_url`` and a private Redis."""
    return clean_env(
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        CLOUDMARKET_SECRET_KEY="deploy-secret",
        CLOUDMARKET_DATA_KEY="deploy-data-key",
        CLOUDMARKET_VAR_DIR=str(tmp_path / "var"),
    )


@pytest.mark.postgres
async def test_production_mode_with_several_web_and_worker_processes(fresh_database, tmp_path):
    with private_redis() as (redis_port, redis_proc):
        env = production_env(fresh_database, redis_port, tmp_path)
        # A web process refuses an un-migrated database and says what to do
        refused = await asyncio.to_thread(cli, ["serve", "--port", str(free_port())], env)
        assert refused.returncode != 0
        assert "cloudmarket migrate" in refused.stderr

        migrated = await asyncio.to_thread(cli, ["migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
        checked = await asyncio.to_thread(cli, ["check"], env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "all checks passed" in checked.stdout
        seeded = await asyncio.to_thread(cli, ["seed-demo"], env)
        creds = credentials(seeded.stdout)
        assert "admin" in creds, seeded.stdout + seeded.stderr

        ports = [free_port(), free_port()]
        procs = [Proc(["serve", "--port", str(p)], env, f"web{p}") for p in ports]
        procs.append(Proc(["worker", "--threads", "2"], env, "worker"))
        try:
            for port in ports:
                await asyncio.to_thread(procs[0].wait_for, f"http://127.0.0.1:{port}/healthz")
            # One login, accepted by both web processes: sessions live in Redis
            phone, password = creds["steward"]
            browser = await asyncio.to_thread(login, f"http://127.0.0.1:{ports[0]}", phone, password)
            other = httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", cookies=browser.cookies)
            me = await asyncio.to_thread(other.get, "/api/v1/me")
            assert me.status_code == 200
            assert me.json()["role"] == "steward"

            # Login attempts are counted across processes: five wrong ones shared out, then 429
            def attempt(port: int, pw: str) -> int:
                c = httpx.Client(base_url=f"http://127.0.0.1:{port}")
                c.get("/login")
                data = {
                    "phone": creds["resident"][0],
                    "password": pw,
                    "_csrf_token": c.cookies.get("cm_csrf") or "",
                }
                return c.post("/login", data=data).status_code

            # Limits count per clock minute: start early in one so that all six land in it
            await asyncio.sleep(max(0.0, time.time() % 60 - 40) and 61 - time.time() % 60)
            codes = [await asyncio.to_thread(attempt, ports[i % 2], "wrong-password") for i in range(5)]
            assert codes == [401] * 5
            assert await asyncio.to_thread(attempt, ports[1], creds["resident"][1]) == 429

            # The worker relays the outbox and runs the jobs (the daily housekeeping); messages due
            # later (offers' expiry) wait for their time
            import asyncpg

            async def jobs_done() -> bool:
                conn = await asyncpg.connect(fresh_database)
                try:
                    runs = await conn.fetchval("SELECT COUNT(*) FROM cm_scheduled_run")
                    waiting = await conn.fetchval("SELECT COUNT(*) FROM cm_outbox WHERE due_at <= now()")
                finally:
                    await conn.close()
                return runs >= 1 and waiting == 0

            for _ in range(150):
                if await jobs_done():
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(procs[-1].output())

            # Readiness reports a stopped Redis, and recovers when it is back
            ready = f"http://127.0.0.1:{ports[0]}/readyz"
            assert (await asyncio.to_thread(httpx.get, ready)).status_code == 200
            redis_proc.kill()
            redis_proc.wait()
            down = await asyncio.to_thread(httpx.get, ready, timeout=10)
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "unavailable"
            assert body["database"] == "ok"
            assert body["broker"] != "ok"
            assert body["broker"].startswith("unreachable (")
            assert str(redis_port) not in down.text  # where Redis lives is for the log, not the public
            revived = start_redis(redis_port)
            try:
                for _ in range(50):
                    if (await asyncio.to_thread(httpx.get, ready, timeout=10)).status_code == 200:
                        break
                    await asyncio.sleep(0.2)
                else:
                    raise AssertionError("readiness did not recover after Redis came back")
            finally:
                # Processes stop before their Redis does, as in a deployment: a worker told to stop
                # while Redis is gone waits out its consumers' reconnection back-off instead.
                codes = [p.stop() for p in procs]
                revived.kill()
                revived.wait()
        finally:
            codes = [p.stop() for p in procs]
        assert all(code in (0, -15) for code in codes), f"exit codes {codes}:\n" + "\n".join(
            p.output()[-3000:] for p in procs
        )
        assert "worker stopped" in procs[-1].output()


def test_production_settings_refuse_missing_keys(monkeypatch):
    from marketplace.settings import Settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/cloudmarket")
    monkeypatch.delenv("CLOUDMARKET_SECRET_KEY", raising=False)
    with pytest.raises(SystemExit, match="CLOUDMARKET_SECRET_KEY must be set"):
        Settings()


def test_embedded_settings_make_and_keep_their_keys(monkeypatch, tmp_path):
    from marketplace.settings import Settings

    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "CLOUDMARKET_SECRET_KEY",
        "CLOUDMARKET_DATA_KEY",
        "CLOUDMARKET_DEMO_DATA",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDMARKET_VAR_DIR", str(tmp_path))
    first, second = Settings(), Settings()
    assert first.embedded
    assert first.demo_data
    assert first.database_url == f"sqlite:///{tmp_path / 'cloudmarket.sqlite3'}"
    assert first.secret_key == second.secret_key
    assert len(first.data_key) >= 32
    assert oct((tmp_path / "data_key").stat().st_mode)[-3:] == "600"


def test_every_command_explains_itself():
    env = clean_env()
    top = cli(["--help"], env)
    assert top.returncode == 0
    for command in ("serve", "worker", "migrate", "seed-demo", "create-user", "create-api-client", "check"):
        assert command in top.stdout
        result = cli([command, "--help"], env)
        assert result.returncode == 0, command
        assert "Usage:" in result.stdout


def test_worker_refuses_embedded_mode_with_a_reason(tmp_path):
    result = cli(["worker"], clean_env(CLOUDMARKET_VAR_DIR=str(tmp_path)))
    assert result.returncode != 0
    assert "REDIS_URL is not set" in result.stderr


@pytest.mark.postgres
async def test_a_worker_can_be_given_some_queues_only(fresh_database, tmp_path):
    with private_redis() as (redis_port, _):
        env = production_env(fresh_database, redis_port, tmp_path)
        assert (await asyncio.to_thread(cli, ["migrate"], env)).returncode == 0
        wrong = await asyncio.to_thread(cli, ["worker", "--queues", "routing,nope"], env)
        assert wrong.returncode != 0
        assert "no such queue: nope" in wrong.stderr and "routing_urgent" in wrong.stderr

        routing = Proc(["worker", "--queues", "routing, routing_urgent"], env, "routing-worker")
        try:
            await asyncio.to_thread(wait_until, lambda: "worker started" in routing.output(), 60)
            assert "queues=routing,routing_urgent" in routing.output()
        finally:
            routing.stop()
