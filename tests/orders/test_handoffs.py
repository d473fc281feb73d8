"""A steward's handling of a warning, carried out here: temporary credits and services booked now."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from households import handoffs as requests
from households import monitoring
from households.tables import HouseholdWarning
from marketplace import clock
from orders import credits, handoffs
from orders.credits import Balance
from orders.tables import CreditEntry, Order


@pytest.fixture(autouse=True)
def installed():
    """The orders package's implementations are registered (another test may have withdrawn them)."""
    requests.provides_credit_grants(handoffs.grant)
    requests.provides_service_bookings(handoffs.book)


def test_services_wanted_on_a_later_day_come_in_its_morning():
    now = datetime(2026, 12, 6, 15, 7, tzinfo=clock.local_zone())
    start, end = handoffs.window_for(date(2026, 12, 8), now)
    assert (start, end) == (
        datetime(2026, 12, 8, 9, 0, tzinfo=clock.local_zone()),
        datetime(2026, 12, 8, 13, 0, tzinfo=clock.local_zone()),
    )
    start, _ = handoffs.window_for(date(2026, 12, 6), now)
    assert start == datetime(2026, 12, 6, 15, 45, tzinfo=clock.local_zone())


async def _warning(world, outcome: str, detail: dict) -> int:
    now = clock.now()
    warning = HouseholdWarning(
        household=world.household,
        community=world.community,
        first_signal=f"test:{outcome}",
        severity="high",
        severity_rank=1,
        status="closed",
        deadline_at=now,
        closed_at=now,
        closed_by=world.steward.user_id,
        outcome=outcome,
        outcome_detail=detail,
        handoff_state="pending",
    )
    await HouseholdWarning.insert(warning)
    return int(warning.id)


async def test_temporary_credits_for_a_warning_are_granted_once(orders_world):
    until = clock.local_now().date() + timedelta(days=30)
    warning_id = await _warning(
        orders_world,
        "grant_credits",
        {"credits": 60, "valid_until": until.isoformat(), "note": "住院后临时加发"},
    )
    assert await monitoring.hand_off(warning_id) == "done"
    grant = requests.CreditGrant(warning_id, orders_world.household, 60, until, "again", None)
    reference = await requests.grant_temporary_credits(grant)
    assert await credits.balance(orders_world.household) == Balance(160, 0)
    [entry] = await CreditEntry.select().where(CreditEntry.kind == "temporary")
    assert (entry["valid_until"], entry["note"], entry["by_user"]) == (
        until,
        "住院后临时加发",
        orders_world.steward.user_id,
    )
    assert reference == f"credits:{entry['id']}"
    warning = await HouseholdWarning.select().where(HouseholdWarning.id == warning_id).first()
    assert warning["handoff_ref"] == reference


async def test_services_for_a_warning_are_booked_once_with_the_visit_as_consent(orders_world):
    tomorrow = clock.local_now().date() + timedelta(days=1)
    warning_id = await _warning(
        orders_world,
        "book_services",
        {
            "categories": ["cleaning", "medicine"],
            "wanted_on": tomorrow.isoformat(),
            "note": "先安排保洁和送药",
        },
    )
    assert await monitoring.hand_off(warning_id) == "done"
    orders = await Order.select().order_by(Order.id)
    assert [(o["channel"], o["consent_method"], o["booked_by"]) for o in orders] == [
        ("warning", "visit", orders_world.steward.user_id)
    ] * 2
    assert orders[0]["source_key"] == f"warning:{warning_id}:cleaning"
    warning = await HouseholdWarning.select().where(HouseholdWarning.id == warning_id).first()
    assert warning["handoff_ref"] == " ".join(o["number"] for o in orders)
    # The actor may run again: the same orders, nothing more reserved.
    booking = requests.ServiceBooking(
        warning_id, orders_world.household, ("cleaning", "medicine"), tomorrow, "again", None
    )
    assert await requests.book_services_now(booking) == warning["handoff_ref"]
    assert await Order.count() == 2
    assert await credits.balance(orders_world.household) == Balance(100 - 24 - 8, 32)


async def test_a_service_the_credits_do_not_cover_is_named_in_the_reference(orders_world):
    household = await orders_world.another_household(credits_=10)
    tomorrow = clock.local_now().date() + timedelta(days=1)
    reference = await requests.book_services_now(
        requests.ServiceBooking(77, household, ("cleaning", "medicine"), tomorrow, "note", None)
    )
    [order] = await Order.select().where(Order.household == household)
    assert reference == f"cleaning:credits_exhausted {order['number']}"
