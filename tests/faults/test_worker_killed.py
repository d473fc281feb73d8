"""A `cloudmarket worker` SIGKILLed at random points of routing, trial after trial: nothing lost or doubled.

Each trial adds two to four providers (those of the trial before stop taking orders), answers a
few open offers of earlier trials (accept or decline, which routes the order on), books two to
five orders for three households with credits, and SIGKILLs the running worker a random time
(0–300 ms, a seeded RNG) after the bookings commit: the relay, routing, escalation and the
notifications' dispatch are all under way somewhere in that window.  A new worker is started
and the trial waits until the outbox is quiet; then every order is checked (offered, accepted or
escalated; rounds and offers agree; credits balance; every notice made and delivered once).
The new worker is the one the next trial kills, so each trial starts one process.

``CM_TEST_KILL_TRIALS`` sets the number of trials (50), ``CM_TEST_KILL_SEED`` the seed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from households.tables import Household
from marketplace import accounts, clock, db
from marketplace.auth import LinkKind, Principal, Role
from marketplace.errors import Conflict
from marketplace.tables import JobFailure, OutboxMessage
from notifications.tables import Delivery, InboxItem, Notification
from orders import booking, credits, dispatch
from orders.tables import CreditAccount, CreditEntry, Offer, Order, OrderEvent
from providers.tables import Provider
from tests.orders.routing_world import RoutingWorld, new_household, principal, tomorrow
from tests.procs import Proc, relaying, run_env, waiting_worker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TRIALS = int(os.environ.get("CM_TEST_KILL_TRIALS", "50"))
SEED = int(os.environ.get("CM_TEST_KILL_SEED", "20261206"))
KILL_WITHIN = 0.3  # seconds after the bookings commit
LEASE_SECONDS = 1  # a message the killed worker held goes out again this soon
QUIET_TIMEOUT = 60
# cleaning is offered one provider at a time, errands to a pool; nobody offers meals (escalated)
CATEGORIES = ("cleaning", "cleaning", "errands", "errands", "meals")
LIVE = ("offered", "accepted", "escalated")


@dataclass
class Trial:
    number: int
    kill_after: float
    orders: list[int] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    at_kill: str = ""
    mid_routing: bool = False
    worker_alive: bool = True

    def line(self) -> str:
        return (
            f"trial {self.number:2d}: killed {self.kill_after * 1000:5.0f} ms after booking "
            f"{len(self.orders)} orders ({', '.join(self.answers) or 'no answers'}); at the kill {self.at_kill}"
        )


async def households(world: RoutingWorld) -> list[Principal]:
    """Three households of levels 1–3 with plenty of credits, each with a resident account."""
    residents = [(world.household, world.resident)]
    for phone in ("13612340001", "13612340002"):
        household_id = await new_household(world.community, phone=phone)
        user = await world.make_user("resident")
        await accounts.link(user["id"], LinkKind.HOUSEHOLD, household_id)
        residents.append((household_id, principal(user["id"], Role.RESIDENT, household=[household_id])))
    for level, (household_id, _) in enumerate(residents, start=1):
        await Household.update({Household.level: level}).where(Household.id == household_id)
        await credits.grant(household_id, 100_000, key=f"grant:kill-test:{household_id}", note="test")
    return [resident for _, resident in residents]


async def new_providers(world: RoutingWorld, rng: random.Random) -> None:
    """Retire the providers of earlier trials; two to four new ones near the households."""
    if world.providers:
        await Provider.update({Provider.is_active: False}).where(Provider.id.is_in(world.providers))
    for _ in range(rng.randint(2, 4)):
        await world.add_provider(
            rng.choice([None, 1, 2, 3, 6]), capacity=100, category=rng.choice(("cleaning", "errands"))
        )


async def answer_some(rng: random.Random) -> list[str]:
    """Accept or decline up to two open offers of earlier trials, as providers do meanwhile."""
    open_offers = await Offer.select(Offer.id).where(Offer.state == "open").order_by(Offer.id)
    answers = []
    for row in rng.sample(open_offers, min(len(open_offers), rng.randint(0, 2))):
        how = rng.choice(("accept", "decline"))
        try:
            if how == "accept":
                await dispatch.accept(row["id"])
            else:
                await dispatch.decline(row["id"], reason="busy")
        except Conflict as exc:  # another pool offer of the order was accepted just before
            how += f" refused ({exc.code})"
        answers.append(f"{how} offer {row['id']}")
    return answers


async def book(residents: list[Principal], rng: random.Random, count: int) -> list[int]:
    """``count`` orders in one transaction: they reach the worker together."""
    start, end = tomorrow()
    ids = []
    async with db.atomic():
        for _ in range(count):
            order = await booking.book(
                rng.choice(residents),
                {"category": rng.choice(CATEGORIES), "window_start": start, "window_end": end},
            )
            ids.append(order["id"])
    return ids


async def progress(order_ids: list[int]) -> tuple[str, bool]:
    """Where the trial's orders and the outbox stood when the worker died, and whether it died
    routing (an order not routed yet whose routing message had been handed to it)."""
    states = Counter(
        row["state"] for row in await Order.select(Order.state).where(Order.id.is_in(order_ids or [0]))
    )
    outbox = Counter(
        f"{row['actor'].rsplit('.', 1)[-1]}:{row['state']}"
        for row in await OutboxMessage.select(OutboxMessage.actor, OutboxMessage.state).where(
            OutboxMessage.due_at <= clock.now() + timedelta(seconds=LEASE_SECONDS + 1)
        )
    )
    routing = bool(states["submitted"] + states["routing"]) and any(
        key.startswith("route_order") and key.endswith(":sent") for key in outbox
    )
    return f"orders {dict(states)}, outbox {dict(outbox)}", routing


async def quiet() -> bool:
    """No message waiting or in flight (later ones, like offer expiries, may wait) and no order
    waiting to be routed."""
    now = clock.now()
    busy = await OutboxMessage.exists().where(
        (OutboxMessage.state == "sent") | ((OutboxMessage.state == "pending") & (OutboxMessage.due_at <= now))
    )
    return not busy and not await Order.exists().where(Order.state.is_in(["submitted", "routing"]))


async def wait_quiet(worker: Proc) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + QUIET_TIMEOUT
    while not await quiet():
        if worker.popen.poll() is not None:
            raise AssertionError(f"the new worker exited with {worker.popen.returncode}")
        if loop.time() > deadline:
            raise AssertionError(f"not quiet after {QUIET_TIMEOUT}s: {(await progress([]))[0]}")
        await asyncio.sleep(0.05)


def _groups(rows: list[dict[str, Any]], *keys: str) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(row[k] for k in keys) for row in rows)


async def check_orders() -> None:
    """Every order routed once per round, its offers consistent with its state."""
    orders = await Order.select(
        Order.id, Order.state, Order.routing, Order.attempts, Order.provider, Order.credits
    )
    offers = await Offer.select(Offer.id, Offer.order, Offer.provider, Offer.round, Offer.state)
    by_order: dict[int, list[dict[str, Any]]] = {o["id"]: [] for o in orders}
    for offer in offers:
        by_order[offer["order"]].append(offer)
    offer_moves = Counter(
        row["order"] for row in await OrderEvent.select(OrderEvent.order).where(OrderEvent.kind == "offer")
    )
    escalations = Counter(
        row["order"] for row in await OrderEvent.select(OrderEvent.order).where(OrderEvent.kind == "escalate")
    )
    for order in orders:
        oid, state, mine = order["id"], order["state"], by_order[order["id"]]
        where = f"order {oid} ({state}, {order['routing']}, attempts {order['attempts']}): offers {mine}"
        assert state in LIVE, f"stuck: {where}"
        assert max((o["round"] for o in mine), default=0) == order["attempts"], where
        assert offer_moves[oid] == order["attempts"], f"{offer_moves[oid]} offer moves: {where}"
        assert escalations[oid] == (state == "escalated"), f"escalated {escalations[oid]} times: {where}"
        rounds = _groups(mine, "round")
        if order["routing"] == "direct":
            assert all(n == 1 for n in rounds.values()), f"two offers in one round: {where}"
        assert all(n == 1 for n in _groups(mine, "provider").values()), f"a provider offered twice: {where}"
        live = [o for o in mine if o["state"] == "open"]
        accepted = [o for o in mine if o["state"] == "accepted"]
        assert len(accepted) == (state == "accepted"), f"accepted offers {accepted}: {where}"
        if state == "offered":
            assert live and {o["round"] for o in live} == {order["attempts"]}, where
            assert order["routing"] == "pool" or len(live) == 1, where
        else:
            assert not live, f"open offers left: {where}"
        if accepted:
            assert accepted[0]["provider"] == order["provider"], where


async def check_credits() -> None:
    """The ledger balances; each order holds exactly its reservation, none ended twice."""
    assert await credits.check() == []
    orders = await Order.select(Order.id, Order.household, Order.credits)
    reserves = await CreditEntry.select(CreditEntry.order, CreditEntry.reserved_change).where(
        CreditEntry.kind == credits.Kind.RESERVE.value
    )
    assert sorted((r["order"], r["reserved_change"]) for r in reserves) == sorted(
        (o["id"], o["credits"]) for o in orders
    )
    assert not await CreditEntry.exists().where(
        CreditEntry.order.is_not_null() & (CreditEntry.kind != "reserve")
    )
    held: Counter[int] = Counter()
    for order in orders:
        held[order["household"]] += order["credits"]
    accounts_ = await CreditAccount.select(CreditAccount.household, CreditAccount.reserved)
    assert {a["household"]: a["reserved"] for a in accounts_ if a["reserved"]} == {
        h: n for h, n in held.items() if n
    }


async def check_notifications() -> None:
    """Each offer told its provider once; every notice dispatched once, to one inbox item."""
    offers = await Offer.select(Offer.id, Offer.provider, Offer.mode)
    told = Counter(
        row["key"].split(":")[2]
        for row in await Notification.select(Notification.key).where(Notification.event == "new_offer")
    )
    assert told == Counter(str(o["id"]) for o in offers), "new_offer notices differ from the offers"
    notices = await Notification.select(Notification.id, Notification.key, Notification.dispatched_at)
    assert all(n == 1 for n in Counter(n["key"] for n in notices).values())
    undispatched = [n["key"] for n in notices if n["dispatched_at"] is None]
    assert not undispatched, f"notices never dispatched: {undispatched}"
    inbox = await InboxItem.select(InboxItem.notification, InboxItem.user)
    assert all(n == 1 for n in _groups(inbox, "notification", "user").values()), "a notice twice in an inbox"
    deliveries = await Delivery.select(Delivery.notification, Delivery.channel, Delivery.webhook_id)
    doubled = [k for k, n in _groups(deliveries, "notification", "channel", "webhook_id").items() if n > 1]
    assert not doubled, f"deliveries made twice: {doubled}"


async def check_jobs() -> None:
    failures = await JobFailure.select(JobFailure.actor, JobFailure.error)
    assert not failures, f"jobs failed: {failures}"
    assert not await OutboxMessage.exists().where(OutboxMessage.state == "failed")


async def test_a_worker_killed_at_random_points_of_routing_loses_and_doubles_nothing(world, tmp_path):
    rng = random.Random(SEED)
    env = run_env(tmp_path / "var", CLOUDMARKET_OUTBOX_LEASE_SECONDS=str(LEASE_SECONDS))
    residents = await households(world)
    loop = asyncio.get_running_loop()
    done: list[Trial] = []
    started = datetime.now()
    worker = relaying(waiting_worker(env, "kill-0"))
    # the next worker, its imports done by the time it is needed
    spare: Proc | None = waiting_worker(env, "kill-1")
    try:
        for number in range(1, TRIALS + 1):
            # Given new providers, answers to earlier offers, and fresh orders being routed
            trial = Trial(number, round(rng.uniform(0, KILL_WITHIN), 3))
            await new_providers(world, rng)
            trial.answers = await answer_some(rng)
            trial.orders = await book(residents, rng, rng.randint(2, 5))
            booked = loop.time()

            # When the worker is SIGKILLed somewhere in that work, and a new one started
            await asyncio.sleep(max(0.0, booked + trial.kill_after - loop.time()))
            trial.worker_alive = worker.popen.poll() is None
            worker.popen.send_signal(signal.SIGKILL)
            worker.popen.wait(10)
            worker.stop()
            trial.at_kill, trial.mid_routing = await progress(trial.orders)
            assert spare is not None
            worker, spare = relaying(spare), None
            if number < TRIALS:
                spare = waiting_worker(env, f"kill-{number + 1}")

            # Then once all is quiet nothing is stuck, lost or doubled
            try:
                assert trial.worker_alive, "the worker had died before it was killed"
                await wait_quiet(worker)
                await check_orders()
                await check_credits()
                await check_notifications()
                await check_jobs()
            except AssertionError as exc:
                history = "\n".join(t.line() for t in [*done, trial])
                raise AssertionError(
                    f"trial {number} (seed {SEED}) failed: {exc}\n{history}\n"
                    f"--- the new worker's log:\n{worker.output()[-4000:]}"
                ) from exc
            done.append(trial)
    finally:
        for proc in (worker, spare):
            if proc is not None:
                proc.stop()
    states = Counter(row["state"] for row in await Order.select(Order.state))
    print(
        f"\n{len(done)} trials in {(datetime.now() - started).total_seconds():.0f} s, "
        f"{sum(len(t.orders) for t in done)} orders: {dict(states)}"
    )
    for trial in done:
        print(trial.line())
    if TRIALS >= 10:  # the kills are meant to land in routing too, not only before or after it
        assert any(t.mid_routing for t in done), "no kill landed while an order was being routed"
