"""The outbox: messages leave with their transaction, survive crashes, and actors run safely twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from marketplace import clock, db, outbox
from marketplace.broker import broker
from marketplace.tables import JobFailure, OutboxMessage, ScheduledRun
from tests.conftest import ON_POSTGRES, run_jobs
from tests.jobs import RUNS, Tally, always_fails, tally


@pytest.fixture(autouse=True)
async def tally_table():
    await Tally.create_table(if_not_exists=True)
    RUNS.clear()
    yield
    await Tally.delete(force=True)


async def outbox_rows() -> list[dict]:
    return await OutboxMessage.select().order_by(OutboxMessage.created_at)


async def test_a_message_is_written_with_its_transaction_and_not_without_it():
    async with db.atomic():
        await outbox.send(tally, "kept")
    with pytest.raises(RuntimeError):
        async with db.atomic():
            await outbox.send(tally, "rolled-back")
            raise RuntimeError("the change failed")
    rows = await outbox_rows()
    assert [r["args"] for r in rows] == ['["kept"]']
    assert rows[0]["state"] == "pending"
    assert rows[0]["actor"] == "tests.jobs.tally"
    assert rows[0]["queue"] == "test"


async def test_relay_delivers_and_the_finished_message_is_gone(worker):
    async with db.atomic():
        await outbox.send(tally, "a", amount=3)
    await run_jobs(worker)
    assert RUNS["a"] == 1
    assert (await Tally.select().first())["amount"] == 3
    assert await outbox_rows() == []


async def test_a_delayed_message_waits_for_its_time(worker):
    clock.freeze(clock.now())
    await outbox.send(tally, "later", delay=timedelta(minutes=10))
    await run_jobs(worker)
    assert RUNS["later"] == 0
    clock.advance(timedelta(minutes=10))
    await run_jobs(worker)
    assert RUNS["later"] == 1


async def test_crash_between_send_and_mark_sends_again_and_the_effect_happens_once(request):
    await outbox.send(tally, "twice")

    class Crash(Exception):
        pass

    def crash() -> None:
        raise Crash

    # The relay hands the message to the broker, then dies before marking it sent
    with pytest.raises(Crash):
        await outbox.relay_once(after_send=crash)
    assert [r["state"] for r in await outbox_rows()] == ["pending"]

    # The next relay round sends it again; a worker starts only now, so both copies wait in
    # the queue (otherwise the first could finish, and end the message, before the resend).
    assert await outbox.relay_once() == 1
    await run_jobs(request.getfixturevalue("worker"))
    # Sent twice (once before the crash, once after): ran twice, changed things once
    assert RUNS["twice"] == 2
    assert await Tally.count() == 1
    assert await outbox_rows() == []


async def test_relay_killed_between_send_and_mark_loses_nothing(request):
    """A real relay process is SIGKILLed right after handing the message to the broker."""
    await outbox.send(tally, "killed")
    script = (
        "import asyncio, os, signal\n"
        "import tests.jobs\n"
        "from marketplace import outbox\n"
        "asyncio.run(outbox.relay_once(after_send=lambda: os.kill(os.getpid(), signal.SIGKILL)))\n"
    )
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], env=dict(os.environ), capture_output=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    # The relay's transaction died with it: the row is still waiting to be sent
    assert [r["state"] for r in await outbox_rows()] == ["pending"]

    assert await outbox.relay_once() == 1
    await run_jobs(request.getfixturevalue("worker"))
    assert await Tally.select(Tally.key) == [{"key": "killed"}]
    assert await outbox_rows() == []
    # With Redis the first send had reached the broker, so the actor also ran for it
    assert RUNS["killed"] == (2 if ON_POSTGRES else 1)


async def test_running_an_actor_twice_does_no_harm(request):
    await outbox.send(tally, "dup")
    await outbox.relay_once()
    row = (await outbox_rows())[0]
    # The broker delivers the same message a second time
    broker.enqueue(outbox._to_message(row))
    await run_jobs(request.getfixturevalue("worker"))
    assert RUNS["dup"] == 2
    assert await Tally.count() == 1


async def test_a_message_whose_lease_ran_out_is_sent_again(request):
    clock.freeze(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    await outbox.send(tally, "lost")
    assert await outbox.relay_once() == 1
    # The broker lost it (Redis restarted, say): nothing runs it.
    broker.flush_all()
    clock.advance(timedelta(minutes=14))
    assert await outbox.relay_once() == 0
    clock.advance(timedelta(minutes=2))
    assert await outbox.relay_once() == 1
    row = (await outbox_rows())[0]
    assert row["sends"] == 2
    await run_jobs(request.getfixturevalue("worker"))
    assert RUNS["lost"] == 1


async def test_an_actor_that_keeps_failing_leaves_a_failure_record(worker, logged_in):
    await outbox.send(always_fails, "sms-17")
    await run_jobs(worker, fail_fast=False)
    for _ in range(100):  # the retries wait out a short backoff
        if await JobFailure.count():
            break
        await asyncio.sleep(0.05)
        await run_jobs(worker, fail_fast=False)
    assert RUNS["sms-17"] == 3  # the first try and two retries
    failure = await JobFailure.select().first()
    assert failure["actor"] == "tests.jobs.always_fails"
    assert failure["retries"] == 3
    assert "gateway refused sms-17" in failure["error"]
    assert [r["state"] for r in await outbox_rows()] == ["failed"]

    admin, _ = await logged_in("admin")
    page = await admin.get("/admin/jobs")
    assert "tests.jobs.always_fails" in page.text
    assert "gateway refused sms-17" in page.text


async def test_periodic_jobs_run_once_per_slot_across_relays():
    clock.freeze(datetime(2026, 12, 1, 0, 0, 30, tzinfo=UTC))
    started = await asyncio.gather(outbox.schedule_due(), outbox.schedule_due(), outbox.schedule_due())
    jobs = len(outbox.PERIODIC)
    assert sum(started) == jobs
    assert await ScheduledRun.count() == jobs
    before = clock.now()
    clock.advance(timedelta(days=1))
    # A day later every job is due again but the monthly ones (same month).
    due = sum(1 for job in outbox.PERIODIC if job.slot(clock.now()) != job.slot(before))
    assert 0 < due < jobs
    assert await outbox.schedule_due() == due
    assert await outbox.schedule_due() == 0


def test_monthly_slots_follow_the_local_calendar():
    # 2026-11-30 17:00 UTC is already 1 December in Nanjing
    assert outbox.monthly(datetime(2026, 11, 30, 15, 59, tzinfo=UTC)) == "2026-11"
    assert outbox.monthly(datetime(2026, 11, 30, 16, 0, tzinfo=UTC)) == "2026-12"


@pytest.mark.postgres
async def test_several_relays_share_the_work_without_sending_twice(monkeypatch):
    for i in range(300):
        await outbox.send(tally, f"k{i}")
    sent: list[str] = []
    real_enqueue = broker.enqueue
    monkeypatch.setattr(
        broker,
        "enqueue",
        lambda message, **kw: (sent.append(message.message_id), real_enqueue(message, **kw))[1],
    )

    async def relay() -> int:
        total = 0
        while n := await outbox.relay_once(batch=20):
            total += n
        return total

    counts = await asyncio.gather(*(relay() for _ in range(4)))
    assert sum(counts) == 300
    assert len(sent) == len(set(sent)) == 300
    assert sum(1 for c in counts if c) >= 2  # the work really was shared


@pytest.mark.postgres
async def test_the_relay_listens_again_after_its_connection_is_lost():
    """A PostgreSQL restart ends the LISTEN connection: the relay opens a new one by itself."""

    async def listeners() -> list[int]:
        rows = await db.engine().run_ddl(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        )
        return [row["pid"] for row in rows]

    async def eventually(predicate) -> None:
        for _ in range(300):
            if await predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("not in time")

    stop = asyncio.Event()
    relay = asyncio.create_task(outbox.run_relay(stop))
    try:
        await eventually(listeners)
        [first] = await listeners()
        await db.engine().run_ddl(f"SELECT pg_terminate_backend({first})")
        await eventually(lambda: _changed(listeners, first))
        # and a message sent now is still relayed
        await outbox.send(tally, "after")
        await eventually(lambda: _all_sent())
    finally:
        stop.set()
        await relay


async def _changed(listeners, old: int) -> bool:
    pids = await listeners()
    return bool(pids) and old not in pids


async def _all_sent() -> bool:
    return [r["state"] for r in await outbox_rows() if r["actor"] == "tests.jobs.tally"] == ["sent"]
