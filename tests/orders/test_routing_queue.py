"""Routing through the real queue: submit → offered, timeout → next provider, all decline → escalated."""

from __future__ import annotations

from datetime import timedelta

from marketplace import clock, db, outbox
from notifications.tables import Notification
from orders import dispatch, tasks
from orders.tables import Offer, Order
from tests.conftest import run_jobs
from tests.orders.routing_world import make_order


async def submit(order_id: int, level: int = 2) -> None:
    async with db.atomic():
        await dispatch.request_routing(order_id, level)


async def order_state(order_id: int) -> str:
    row = await Order.select(Order.state).where(Order.id == order_id).first()
    return str(row["state"])


async def open_offers(order_id: int) -> list[dict]:
    return await Offer.select().where((Offer.order == order_id) & (Offer.state == "open"))


async def test_submit_offers_timeout_moves_on_and_all_declines_escalate(world, worker):
    # Given three providers, nearest first
    added = [await world.add_provider(km) for km in (1, 2, 3)]
    staff_of = {p: s for p, _, s in added}
    order_id = await make_order(world)

    # When the order is submitted, the worker offers it to the nearest provider
    await submit(order_id)
    await run_jobs(worker)
    assert await order_state(order_id) == "offered"
    [first] = await open_offers(order_id)
    assert first["provider"] == added[0][0]

    # When the offer times out, the next provider gets it
    clock.advance(await dispatch.offer_timeout(2) + timedelta(seconds=1))
    await run_jobs(worker)
    [second] = await open_offers(order_id)
    assert second["provider"] == added[1][0]
    assert await order_state(order_id) == "offered"

    # When the remaining providers decline, the order goes to the steward
    await dispatch.decline(second["id"], staff_of[second["provider"]])
    await run_jobs(worker)
    [third] = await open_offers(order_id)
    assert third["provider"] == added[2][0]
    await dispatch.decline(third["id"], staff_of[third["provider"]])
    await run_jobs(worker)
    assert await order_state(order_id) == "escalated"
    states = [
        o["state"] for o in await Offer.select(Offer.state).where(Offer.order == order_id).order_by(Offer.id)
    ]
    assert states == ["expired", "declined", "declined"]
    escalated = await Notification.select().where(Notification.event == "order_escalated")
    assert [n["user"] for n in escalated] == [world.steward.user_id]


async def test_the_same_routing_message_twice_makes_one_offer_and_one_notification(world, worker):
    await world.add_provider(1)
    await world.add_provider(2)
    order_id = await make_order(world, level=1)
    async with db.atomic():
        await outbox.send(tasks.route_order_urgent, order_id)
        await outbox.send(tasks.route_order_urgent, order_id)
        await outbox.send(tasks.route_order, order_id)
    await run_jobs(worker)
    offers = await Offer.select().where(Offer.order == order_id)
    assert len(offers) == 1
    assert await Notification.count().where(Notification.event == "new_offer") == 1
    # The expiry, delivered twice, expires the offer once and routes the order on once
    async with db.atomic():
        await outbox.send(tasks.expire_offer_urgent, offers[0]["id"], delay=await dispatch.offer_timeout(1))
    clock.advance(await dispatch.offer_timeout(1) + timedelta(seconds=1))
    await run_jobs(worker)
    offers = await Offer.select().where(Offer.order == order_id).order_by(Offer.id)
    assert [o["state"] for o in offers] == ["expired", "open"]
    assert await Notification.count().where(Notification.event == "new_offer") == 2


async def test_a_level_1_order_does_not_wait_behind_a_backlog_of_level_3_orders(world, worker):
    from marketplace.broker import broker

    assert {"routing", "routing_urgent"} <= set(broker.get_declared_queues())
    await world.add_provider(1, capacity=1000)
    backlog = [await make_order(world, level=3) for _ in range(BACKLOG)]
    urgent = await make_order(world, level=1)
    # The backlog was submitted first; the level 1 order comes last
    async with db.atomic():
        for order_id in backlog:
            await dispatch.request_routing(order_id, 3)
    clock.advance(timedelta(seconds=1))
    await submit(urgent, level=1)

    await run_jobs(worker)

    rows = await Order.select(Order.id, Order.offered_at, Order.state)
    assert {r["state"] for r in rows} == {"offered"}
    offered_at = {r["id"]: r["offered_at"] for r in rows}
    ahead = sum(1 for order_id in backlog if offered_at[order_id] < offered_at[urgent])
    assert ahead < BACKLOG // 4, f"{ahead} of {BACKLOG} level 3 orders were routed before the level 1 order"


BACKLOG = 120


async def test_the_periodic_sla_watch_tells_the_steward_through_the_queue(world, worker):
    await world.add_provider(1)
    order_id = await make_order(world, accept_in=timedelta(minutes=10))
    await submit(order_id)
    await run_jobs(worker)
    clock.advance(timedelta(minutes=11))
    await outbox.schedule_due()
    await run_jobs(worker)
    [told] = await Notification.select().where(Notification.event == "sla_missed")
    assert told["user"] == world.steward.user_id
    clock.advance(timedelta(minutes=2))
    await outbox.schedule_due()
    await run_jobs(worker)
    assert await Notification.count().where(Notification.event == "sla_missed") == 1


async def test_booked_by_the_resident_to_confirmed_through_the_queue(orders_world, worker, make_user):
    from marketplace import accounts
    from marketplace.auth import LinkKind, Role
    from orders import booking, credits, fulfilment
    from tests.orders.conftest import principal, tomorrow_window

    w = orders_world
    staff_user = await make_user("provider_staff")
    await accounts.link(staff_user["id"], LinkKind.PROVIDER, w.provider)
    staff = principal(staff_user["id"], Role.PROVIDER_STAFF, provider=[w.provider])
    start, end = tomorrow_window()

    # Booking reserves the credits and sends the routing message in one transaction
    order = await booking.book(
        w.resident, {"category": "cleaning", "window_start": start.isoformat(), "window_end": end.isoformat()}
    )
    await run_jobs(worker)
    [offer] = await open_offers(order["id"])
    assert offer["provider"] == w.provider and offer["offering"] == w.offerings["cleaning"]

    await dispatch.accept(offer["id"], staff)
    await fulfilment.check_in(staff, order["id"])
    await fulfilment.check_out(staff, order["id"])
    await fulfilment.confirm(w.resident, order["id"], rating=5)
    await run_jobs(worker)

    assert await order_state(order["id"]) == "confirmed"
    assert order["credits"] > 0
    assert (await credits.balance(w.household)).reserved == 0
    kinds = {e["kind"]: e for e in await credits.entries(w.household) if e["order"] == order["id"]}
    assert set(kinds) == {"reserve", "consume"}
    assert kinds["consume"]["reserved_change"] == -order["credits"]
    assert await credits.check() == []
    events = {
        n["event"]
        for n in await Notification.select(Notification.event).where(Notification.user == w.resident.user_id)
    }
    assert {"order_accepted", "worker_on_the_way", "order_done", "confirmation_code"} <= events
