"""Booking: quotes by level policy, resident and steward bookings with consent, windows, cancelling."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest

from households.tables import Member
from marketplace import catalog_services, clock
from marketplace.errors import NotFound, PermissionDenied, ValidationFailed
from marketplace.tables import LevelPolicy, OutboxMessage
from notifications.tables import Notification
from orders import booking, credits, lifecycle, moves
from orders.credits import Balance, CreditsExhausted
from orders.tables import ConsentCode, Offer, Order, OrderEvent
from providers.tables import Offering
from tests.orders.conftest import in_locale, new_household, principal, tomorrow_window


def _form(category: str = "cleaning", **extra):
    start, end = tomorrow_window()
    return {"category": category, "window_start": start.isoformat(), "window_end": end.isoformat(), **extra}


def _fields(exc: ValidationFailed) -> dict[str, str]:
    return {e.field: e.text() for e in exc.errors}


async def _texted_code(consent_id: int) -> str:
    row = (
        await Notification.select()
        .where(Notification.key.like(f"consent_code:consent:{consent_id}:%"))
        .first()
    )
    context = json.loads(row["context"]) if isinstance(row["context"], str) else row["context"]
    return str(context["code"])


# -- windows and numbers (plain Python) ---------------------------------------------------------------


def test_order_numbers_read_like_cs_date_sequence():
    at = datetime(2026, 12, 6, 1, 0, tzinfo=clock.local_zone())
    assert booking.order_number(42, at) == "CS20261206-000042"


@pytest.mark.parametrize(
    ("start", "end", "faults"),
    [
        (None, None, {"window_start", "window_end"}),
        ("yesterday", "2026-12-08T12:00", {"window_start"}),
        ("2026-12-05T10:00", "2026-12-05T12:00", {"window_start"}),
        ("2027-03-01T10:00", "2027-03-01T12:00", {"window_start"}),
        ("2026-12-08T10:00", "2026-12-08T09:00", {"window_end"}),
        ("2026-12-08T10:00", "2026-12-08T10:00", {"window_end"}),
        ("2026-12-08T06:00", "2026-12-08T20:00", {"window_end"}),
    ],
)
def test_a_window_must_be_future_bounded_and_end_after_start(start, end, faults):
    now = datetime(2026, 12, 6, 9, 0, tzinfo=clock.local_zone())
    with pytest.raises(ValidationFailed) as failed:
        booking.check_window(start, end, now=now, days_ahead=30)
    assert set(_fields(failed.value)) == faults


def test_window_errors_are_in_the_users_language():
    now = datetime(2026, 12, 6, 9, 0, tzinfo=clock.local_zone())
    with pytest.raises(ValidationFailed) as failed:
        booking.check_window("2026-12-08T10:00", "2026-12-08T09:00", now=now, days_ahead=30)
    with in_locale("zh_CN"):
        assert _fields(failed.value)["window_end"] == "结束时间必须晚于开始时间。"
    with in_locale("en"):
        assert _fields(failed.value)["window_end"] == "The end must be after the start."


def test_a_naive_window_is_local_time():
    now = datetime(2026, 12, 6, 9, 0, tzinfo=clock.local_zone())
    start, end = booking.check_window("2026-12-08T10:00", "2026-12-08T12:00", now=now, days_ahead=30)
    assert start.utcoffset() == timedelta(hours=8) and (end - start) == timedelta(hours=2)


# -- quotes ----------------------------------------------------------------------------------------


async def test_a_quote_applies_the_level_policy(orders_world):
    # Level 2 pays 80 % of the standard cost (cleaning: 30 → 24).
    price = await booking.quote(orders_world.resident, category="cleaning")
    assert (price.level, price.credits, price.available) == (2, 24, 100)
    assert price.affordable


async def test_a_category_excluded_at_the_level_is_refused(orders_world):
    await LevelPolicy.update(
        {LevelPolicy.cost_rules: json.dumps({"percent": 80, "excluded": ["cleaning"]})}
    ).where(LevelPolicy.level == 2)
    with pytest.raises(booking.NotCovered):
        await booking.quote(orders_world.resident, category="cleaning")
    with pytest.raises(booking.NotCovered):
        await booking.book(orders_world.resident, _form())
    assert await Order.count() == 0


async def test_a_fixed_price_wins_over_the_percentage(orders_world):
    await LevelPolicy.update(
        {LevelPolicy.cost_rules: json.dumps({"percent": 80, "fixed": {"cleaning": 0}})}
    ).where(LevelPolicy.level == 2)
    assert (await catalog_services.current_policy(2)) is not None
    price = await booking.quote(orders_world.resident, category="cleaning")
    assert price.credits == 0


async def test_a_resident_cannot_quote_or_book_for_another_household(orders_world):
    other = await orders_world.another_household()
    with pytest.raises(NotFound):
        await booking.quote(orders_world.resident, category="cleaning", household_id=other)
    with pytest.raises(NotFound):
        await booking.book(orders_world.resident, _form(household_id=other))


# -- a resident books ------------------------------------------------------------------------------


async def test_a_resident_books_order_credits_event_and_routing_message_together(orders_world):
    order = await booking.book(orders_world.resident, _form(notes="请带清洁剂"))
    assert order["number"] == booking.order_number(order["id"], clock.now())
    assert order["state"] == "submitted" and order["channel"] == "app"
    assert (order["credits"], order["level"], order["community"]) == (24, 2, orders_world.community)
    assert order["accept_by"] > clock.now() and order["serve_by"] >= order["window_end"]
    assert await credits.balance(orders_world.household) == Balance(76, 24)
    [event] = await OrderEvent.select().where(OrderEvent.order == order["id"])
    assert (event["kind"], event["to_state"], event["actor"]) == (
        "submit",
        "submitted",
        orders_world.resident.user_id,
    )
    [message] = await OutboxMessage.select().where(OutboxMessage.actor == "orders.tasks.route_order")
    assert json.loads(message["args"]) == [order["id"]]


async def test_a_level_1_order_is_routed_on_the_urgent_queue(orders_world):
    household = await orders_world.another_household(level=1)
    order = await booking.book(await orders_world.resident_for(household), _form())
    [message] = await OutboxMessage.select().where(OutboxMessage.actor.like("orders.tasks.route_order%"))
    assert (message["actor"], message["queue"]) == ("orders.tasks.route_order_urgent", "routing_urgent")
    assert json.loads(message["args"]) == [order["id"]]


async def test_a_booking_beyond_the_balance_says_the_cost_and_the_balance(orders_world):
    household = await orders_world.another_household(credits_=20)
    resident = await orders_world.resident_for(household)
    with pytest.raises(CreditsExhausted) as refused:
        await booking.book(resident, _form())
    with in_locale("en"):
        assert refused.value.text() == (
            "Not enough service credits: this service costs 24 credits and the balance is 20."
        )
    assert refused.value.status == 409
    assert await Order.count() == 0
    assert await OutboxMessage.count().where(OutboxMessage.actor == "orders.tasks.route_order") == 0


async def test_field_errors_come_together(orders_world):
    with pytest.raises(ValidationFailed) as failed:
        await booking.book(
            orders_world.resident, {"category": "nope", "window_start": "x", "notes": "n" * 1001}
        )
    assert set(_fields(failed.value)) == {"category", "window_start", "window_end", "notes"}


async def test_a_chosen_offering_must_serve_the_community(orders_world):
    order = await booking.book(orders_world.resident, _form(offering_id=orders_world.offerings["cleaning"]))
    assert order["requested_offering"] == orders_world.offerings["cleaning"]
    with pytest.raises(ValidationFailed) as failed:
        await booking.book(orders_world.resident, _form(offering_id=orders_world.offerings["errands"]))
    assert set(_fields(failed.value)) == {"offering_id"}


async def test_an_offering_that_asks_less_costs_less(orders_world):
    await Offering.update({Offering.credit_cost: 10}).where(Offering.id == orders_world.offerings["cleaning"])
    price = await booking.quote(
        orders_world.resident, category="cleaning", offering_id=orders_world.offerings["cleaning"]
    )
    assert price.credits == 8


async def test_other_roles_cannot_book(orders_world):
    staff = principal(orders_world.resident.user_id, booking.Role.PROVIDER_STAFF)
    with pytest.raises(PermissionDenied):
        await booking.book(staff, _form(household_id=orders_world.household))


# -- a steward books with consent ------------------------------------------------------------------


async def test_a_steward_books_with_a_texted_code_read_back(orders_world):
    steward = orders_world.steward
    sent = await booking.request_consent(steward, orders_world.household)
    assert sent["phone"].count("*") == 4
    phone = (await Member.select(Member.phone).where(Member.household == orders_world.household).first())[
        "phone"
    ]
    note = await Notification.select().where(Notification.event == "consent_code").first()
    assert note["phone"] == phone and note["urgent"]
    code = await _texted_code(sent["consent_id"])
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(ValidationFailed) as failed:
        await booking.book(
            steward,
            _form(
                household_id=orders_world.household,
                consent_method="sms_code",
                consent_id=sent["consent_id"],
                consent_code=wrong,
            ),
        )
    assert "4" in _fields(failed.value)["consent_code"]
    order = await booking.book(
        steward,
        _form(
            household_id=orders_world.household,
            consent_method="sms_code",
            consent_id=sent["consent_id"],
            consent_code=code,
        ),
    )
    assert (order["channel"], order["consent_method"], order["booked_by"]) == (
        "steward",
        "sms_code",
        steward.user_id,
    )
    consent = await ConsentCode.select().where(ConsentCode.id == sent["consent_id"]).first()
    assert consent["order"] == order["id"] and consent["used_at"] is not None
    # A code opens one booking only.
    with pytest.raises(ValidationFailed):
        await booking.book(
            steward,
            _form(
                household_id=orders_world.household,
                consent_method="sms_code",
                consent_id=sent["consent_id"],
                consent_code=code,
            ),
        )


async def test_a_consent_code_expires_and_allows_five_tries(orders_world):
    steward = orders_world.steward
    sent = await booking.request_consent(steward, orders_world.household)
    code = await _texted_code(sent["consent_id"])
    wrong = "000000" if code != "000000" else "111111"
    form = _form(
        household_id=orders_world.household, consent_method="sms_code", consent_id=sent["consent_id"]
    )
    for _ in range(booking.MAX_ATTEMPTS):
        with pytest.raises(ValidationFailed):
            await booking.book(steward, {**form, "consent_code": wrong})
    with pytest.raises(ValidationFailed) as failed:
        await booking.book(steward, {**form, "consent_code": code})
    with in_locale("en"):
        assert "Too many" in _fields(failed.value)["consent_code"]
    again = await booking.request_consent(steward, orders_world.household)
    code = await _texted_code(again["consent_id"])
    clock.freeze(clock.now() + timedelta(minutes=booking.CODE_MINUTES + 1))
    with pytest.raises(ValidationFailed) as failed:
        await booking.book(steward, {**form, "consent_id": again["consent_id"], "consent_code": code})
    with in_locale("en"):
        assert "expired" in _fields(failed.value)["consent_code"]
    assert await Order.count() == 0


async def test_another_stewards_code_does_not_open_a_booking(orders_world):
    sent = await booking.request_consent(orders_world.steward, orders_world.household)
    code = await _texted_code(sent["consent_id"])
    colleague_user = await orders_world.make_user("steward")
    colleague = principal(colleague_user["id"], booking.Role.STEWARD, community=[orders_world.community])
    with pytest.raises(ValidationFailed):
        await booking.book(
            colleague,
            _form(
                household_id=orders_world.household,
                consent_method="sms_code",
                consent_id=sent["consent_id"],
                consent_code=code,
            ),
        )


async def test_attestation_only_when_nobody_uses_a_phone(orders_world):
    steward = orders_world.steward
    attest = {
        "consent_method": "attestation",
        "consent_note": "2026-12-06 上午入户，户主张桂英口头同意预约保洁。",
    }
    with pytest.raises(ValidationFailed) as failed:
        await booking.book(steward, _form(household_id=orders_world.household, **attest))
    assert set(_fields(failed.value)) == {"consent_method"}
    no_phone = await orders_world.another_household(phone_user=False)
    with pytest.raises(ValidationFailed) as failed:
        await booking.request_consent(steward, no_phone)
    assert set(_fields(failed.value)) == {"consent_method"}
    with pytest.raises(ValidationFailed) as failed:
        await booking.book(
            steward, _form(household_id=no_phone, consent_method="attestation", consent_note="ok")
        )
    assert set(_fields(failed.value)) == {"consent_note"}
    order = await booking.book(steward, _form(household_id=no_phone, **attest))
    assert (order["consent_method"], order["consent_note"]) == ("attestation", attest["consent_note"])


async def test_a_steward_needs_consent_and_scope(orders_world):
    with pytest.raises(ValidationFailed) as failed:
        await booking.book(orders_world.steward, _form(household_id=orders_world.household))
    assert set(_fields(failed.value)) == {"consent_method"}
    elsewhere = await new_household(orders_world.area["communities"]["马群社区"])
    with pytest.raises(NotFound):
        await booking.book(orders_world.steward, _form(household_id=elsewhere, consent_method="attestation"))
    with pytest.raises(NotFound):
        await booking.request_consent(orders_world.steward, elsewhere)


# -- cancelling ------------------------------------------------------------------------------------


async def test_a_resident_cancels_and_the_credits_come_back(orders_world):
    order = await booking.book(orders_world.resident, _form())
    with pytest.raises(ValidationFailed):
        await booking.cancel(orders_world.resident, order["id"], reason="")
    row = await booking.cancel(orders_world.resident, order["id"], reason="不需要了")
    assert row["state"] == "cancelled" and row["cancel_reason"] == "不需要了" and row["closed_at"]
    assert await credits.balance(orders_world.household) == Balance(100, 0)
    with pytest.raises(lifecycle.IllegalMove):
        await booking.cancel(orders_world.resident, order["id"], reason="again")
    assert await credits.balance(orders_world.household) == Balance(100, 0)
    assert await credits.check() == []


async def test_cancelling_an_accepted_order_gives_the_providers_slot_back(orders_world):
    order = await booking.book(orders_world.resident, _form())
    offering_id = orders_world.offerings["cleaning"]
    await Offer.insert(
        Offer(
            order=order["id"],
            provider=orders_world.provider,
            offering=offering_id,
            key=f"{order['id']}:x",
            expires_at=clock.now() + timedelta(minutes=30),
            state="accepted",
        )
    )
    await Offering.update({Offering.active_orders: 1}).where(Offering.id == offering_id)
    await moves.move(order["id"], "route")
    await moves.move(order["id"], "offer")
    await moves.move(
        order["id"], "accept", values={"provider": orders_world.provider, "offering": offering_id}
    )
    await booking.cancel(orders_world.steward, order["id"], reason="户主住院")
    assert (await Offering.select(Offering.active_orders).where(Offering.id == offering_id).first())[
        "active_orders"
    ] == 0
    assert await credits.balance(orders_world.household) == Balance(100, 0)


async def test_an_order_in_service_cannot_be_cancelled(orders_world):
    order = await booking.book(orders_world.resident, _form())
    for action in ("route", "offer", "accept", "start"):
        await moves.move(order["id"], action)
    with pytest.raises(lifecycle.IllegalMove):
        await booking.cancel(orders_world.resident, order["id"], reason="太晚了")
    assert await credits.balance(orders_world.household) == Balance(76, 24)


async def test_open_offers_are_withdrawn_on_cancel(orders_world):
    order = await booking.book(orders_world.resident, _form())
    await Offer.insert(
        Offer(
            order=order["id"],
            provider=orders_world.provider,
            offering=orders_world.offerings["cleaning"],
            key=f"{order['id']}:p",
            expires_at=clock.now() + timedelta(minutes=30),
        )
    )
    await moves.move(order["id"], "route")
    await moves.move(order["id"], "offer")
    await booking.cancel(orders_world.resident, order["id"], reason="改天")
    assert [row["state"] for row in await Offer.select(Offer.state)] == ["withdrawn"]


async def test_others_cannot_cancel(orders_world):
    order = await booking.book(orders_world.resident, _form())
    other = await orders_world.resident_for(await orders_world.another_household())
    with pytest.raises(NotFound):
        await booking.cancel(other, order["id"], reason="not mine")
    far_user = await orders_world.make_user("steward")
    far = principal(
        far_user["id"], booking.Role.STEWARD, community=[orders_world.area["communities"]["马群社区"]]
    )
    with pytest.raises(NotFound):
        await booking.cancel(far, order["id"], reason="not mine")


# -- concurrency -----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_twenty_bookings_at_once_against_credits_for_three(orders_world):
    """20 simultaneous bookings of 24 credits with 72 available: exactly 3 orders, never overdrawn."""
    household = await orders_world.another_household(credits_=72)
    resident = await orders_world.resident_for(household)
    go = asyncio.Event()

    async def attempt() -> bool:
        await go.wait()
        try:
            await booking.book(resident, _form())
        except CreditsExhausted:
            return False
        return True

    tasks = [asyncio.create_task(attempt()) for _ in range(20)]
    await asyncio.sleep(0)
    go.set()
    results = await asyncio.gather(*tasks)
    assert sum(results) == 3
    assert await Order.count().where(Order.household == household) == 3
    assert await credits.balance(household) == Balance(0, 72)
    assert await OutboxMessage.count().where(OutboxMessage.actor == "orders.tasks.route_order") == 3
    assert await credits.check() == []


async def test_only_mobiles_receive_texts_a_landline_household_is_told_through_its_steward(orders_world):
    from orders import booking, dispatch

    landline_only = await new_household(orders_world.community, phone_user=False, phone="025-85550102")
    assert await booking.household_mobile(landline_only) is None
    assert await booking.consent_phone(landline_only) is None
    assert await dispatch.residents_for(landline_only) == []

    with_mobile = await new_household(orders_world.community, phone_user=True, phone="025-85550103")
    mobile = await booking.household_mobile(with_mobile)
    assert mobile is not None and mobile.startswith("1")
    assert await dispatch.residents_for(with_mobile) == [mobile]
