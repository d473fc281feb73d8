"""A `cloudmarket worker` killed in the middle of routing loses no order and offers none twice."""

from __future__ import annotations

import asyncio
import signal

import pytest

from marketplace import db, outbox
from notifications.tables import Notification
from orders import tasks
from orders.tables import Offer, Order
from tests.orders.routing_world import make_order
from tests.procs import Proc, run_env

ORDERS = 40


def worker_env(tmp_path) -> dict[str, str]:
    """The test run's database and Redis namespace; a short lease so lost messages are sent again."""
    return run_env(tmp_path / "var", CLOUDMARKET_OUTBOX_LEASE_SECONDS="5", CLOUDMARKET_WORKER_THREADS="2")


async def routed() -> int:
    return await Order.count().where(Order.state.is_in(["offered", "escalated"]))


async def wait_until(check, proc: Proc, seconds: float = 180) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await check():
            return
        if proc.popen.poll() is not None:
            raise AssertionError(f"worker exited with {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out; worker log:\n{proc.output()[-3000:]}")


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_worker_killed_mid_routing_loses_nothing(world, tmp_path):
    # Given forty submitted orders and three providers
    for km in (1, 2, 3):
        await world.add_provider(km, capacity=1000)
    order_ids = [await make_order(world, level=1 + i % 3) for i in range(ORDERS)]
    async with db.atomic():
        for order_id in order_ids:
            await outbox.send(tasks.route_order, order_id)

    # When a worker is SIGKILLed once it has routed some of them
    first = Proc(["worker"], worker_env(tmp_path), "routing-worker-1")
    try:
        await wait_until(lambda: _at_least(1), first)
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait(30)
    finally:
        first.stop()
    assert first.popen.returncode == -signal.SIGKILL
    killed_at = await routed()

    # Then a new worker routes every order, each offered once
    second = Proc(["worker"], worker_env(tmp_path), "routing-worker-2")
    try:
        await wait_until(lambda: _at_least(ORDERS), second)
        await wait_until(_outbox_empty, second)
    finally:
        second.stop()
    print(f"routed when the worker was killed: {killed_at} of {ORDERS}")
    rows = await Order.select(Order.id, Order.state, Order.attempts).where(Order.id.is_in(order_ids))
    assert {r["state"] for r in rows} == {"offered"}
    assert {r["attempts"] for r in rows} == {1}
    offers = await Offer.select(Offer.order, Offer.state)
    assert sorted(o["order"] for o in offers) == sorted(order_ids)
    assert {o["state"] for o in offers} == {"open"}
    assert await Notification.count().where(Notification.event == "new_offer") == ORDERS


async def _at_least(n: int) -> bool:
    return await routed() >= n


async def _outbox_empty() -> bool:
    from marketplace.tables import OutboxMessage

    return not await OutboxMessage.exists().where(
        OutboxMessage.actor.is_in([tasks.route_order.actor_name, tasks.route_order_urgent.actor_name])
    )
