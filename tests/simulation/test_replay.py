"""The replay of a day of orders: everything booked comes to rest, the ledger balances, the
summary is what the database holds, and the same seed gives the same day."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from marketplace.simulation import report
from marketplace.simulation.generate import Sizes, generate
from marketplace.simulation.replay import Outcome, at_rest, booking_minute, replay
from marketplace.tables import OutboxMessage
from orders import credits
from orders.tables import CreditEntry, Offer, Order
from tests.conftest import restore_seeded, truncate_all

SMALL = Sizes(households=300, providers=15, volunteers=30)
ORDERS = 200
SEED = 11


async def _day(orders: int = ORDERS) -> Outcome:
    await generate(SMALL, SEED)
    steps: list[int] = []
    outcome = await replay(orders, SEED, progress=steps.append)
    assert sum(steps) == orders  # the bar ends full: every booking came to rest or was refused
    return outcome


def _counts(outcome: Outcome) -> dict[str, Any]:
    return {
        "states": dict(outcome.states),
        "levels": dict(outcome.levels),
        "escalations": dict(outcome.escalations),
        "offers": dict(outcome.offers),
        "refused": dict(outcome.tally.refused),
        "credits": outcome.credits_spent,
    }


async def test_every_order_comes_to_rest_and_the_summary_is_what_the_database_holds() -> None:
    # Given a small district, When a day of 200 bookings is replayed
    outcome = await _day()

    # Then every booked order is confirmed, cancelled, not served or with a steward
    tally = outcome.tally
    rows = await Order.select().where(Order.id.is_in(tally.booked))
    assert len(rows) == len(tally.booked) == outcome.booked > 0
    assert all(at_rest(row["state"]) for row in rows), Counter(row["state"] for row in rows)
    assert outcome.booked + sum(tally.refused.values()) == ORDERS
    assert outcome.states["confirmed"] > 0 and outcome.states["escalated"] > 0
    assert outcome.offers["accepted"] > 0
    # nothing is left for routing to do, and no offer is still open
    assert await OutboxMessage.count().where(OutboxMessage.actor.like("orders.tasks.%")) == 0
    assert await Offer.count().where(Offer.state == "open") == 0
    # every credit account agrees with its entries
    assert await credits.check() == []
    assert outcome.credit_differences == 0

    # And what the replay saw the services answer is what the database holds
    states = Counter(row["state"] for row in rows)
    assert states["confirmed"] == tally.confirmed == outcome.states["confirmed"]
    assert states["escalated"] == tally.escalated == outcome.states["escalated"]
    assert states["cancelled"] == tally.cancelled == outcome.states["cancelled"]
    assert states["failed"] == tally.failed == outcome.states["failed"]
    assert sum(1 for row in rows if row["accepted_at"] is not None) == tally.accepted
    escalated = Counter(row["escalation_reason"] for row in rows if row["state"] == "escalated")
    assert escalated == outcome.escalations
    # credits spent: the consumed entries, and the credits of the confirmed orders
    confirmed = sum(row["credits"] for row in rows if row["state"] == "confirmed")
    consumed = await CreditEntry.select(CreditEntry.reserved_change).where(
        (CreditEntry.kind == "consume") & CreditEntry.order.is_in(tally.booked)
    )
    assert outcome.credits_spent == confirmed == -sum(row["reserved_change"] for row in consumed) > 0
    # times by level cover every accepted and every started order
    assert sum(len(v) for v in outcome.to_accept.values()) == tally.accepted
    assert sum(len(v) for v in outcome.to_serve.values()) == sum(1 for r in rows if r["started_at"])
    assert all(minutes > 0 for values in outcome.to_accept.values() for minutes in values)

    printed = report.format_replay(outcome)
    assert f"orders booked            {outcome.booked:>10,}" in printed
    assert f"served and confirmed   {states['confirmed']:>10,}" in printed
    assert f"escalated to a steward {states['escalated']:>10,}" in printed
    assert f"credits spent            {confirmed:>10,}" in printed
    assert "accept p90" in printed and "clean" in printed


async def test_the_same_seed_gives_the_same_day() -> None:
    first = _counts(await _day(80))
    await truncate_all()
    await restore_seeded()

    second = _counts(await _day(80))

    assert first == second


def test_bookings_peak_in_the_morning() -> None:
    rng = random.Random(3)
    hours = Counter(int(booking_minute(rng) // 60) for _ in range(5000))
    assert max(hours, key=lambda h: hours[h]) in (8, 9, 10)
    assert sum(hours[h] for h in range(7, 12)) > sum(hours[h] for h in range(12, 17))
    assert min(hours) >= 6 and max(hours) <= 21
