"""Serving an order: worker, check-in, check-out with a texted code, confirmation, rating, disputes, no-shows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace import clock
from marketplace.errors import NotFound, RateLimited, ValidationFailed
from notifications import rules
from notifications.tables import Notification
from orders import credits, dispatch, fulfilment, routing
from orders.lifecycle import IllegalMove
from orders.tables import Offer, Order
from providers.candidates import candidates
from providers.tables import Offering, ProviderStats, VolunteerHours, Worker
from tests.orders.routing_world import make_order

COST = 10


async def accepted_order(world, *, kind: str = "social_organization") -> tuple[int, int, int, object]:
    """An order accepted by the nearest provider: (order, provider, offering, staff principal)."""
    if not world.providers:
        await world.add_provider(1, kind=kind)
    order_id = await make_order(world, credits=COST)
    await credits.grant(world.household, 100, key=f"grant:test:{order_id}")
    await credits.reserve(world.household, order_id, COST)
    await dispatch.route(order_id)
    offer = await Offer.select().where(Offer.order == order_id).first()
    staff = world.staff[world.providers.index(offer["provider"])]
    await dispatch.accept(offer["id"], staff)
    return order_id, offer["provider"], offer["offering"], staff


async def order_row(order_id: int) -> dict:
    return await Order.select().where(Order.id == order_id).first()


async def provider_stats(provider_id: int) -> dict:
    return await ProviderStats.select().where(ProviderStats.provider == provider_id).first()


async def texted_code(order_id: int) -> str:
    """The confirmation code texted to the resident for this order at check-out."""
    number = (await Order.select(Order.number).where(Order.id == order_id).first())["number"]
    for row in await Notification.select().where(Notification.event == "confirmation_code"):
        context = rules.decode_context(row["context"])
        if context["order_no"] == number:
            return str(context["code"])
    raise AssertionError(f"no code was texted for order {number}")


async def serve(order_id: int, staff) -> None:
    await fulfilment.check_in(staff, order_id)
    clock.advance(timedelta(minutes=50))
    await fulfilment.check_out(staff, order_id, note="打扫了厨房和卧室")


async def test_a_visit_from_worker_to_confirmation_by_the_texted_code(world):
    order_id, provider_id, offering_id, staff = await accepted_order(world)
    worker = Worker(provider=provider_id, name="王师傅", phone="13700001111")
    await worker.save()

    await fulfilment.assign_worker(staff, order_id, worker.id)
    order = await fulfilment.check_in(staff, order_id, note="出发了")
    assert order["state"] == "in_service" and order["started_at"] is not None
    [on_the_way] = await Notification.select().where(Notification.event == "worker_on_the_way")
    assert on_the_way["user"] == world.resident.user_id
    assert rules.decode_context(on_the_way["context"])["worker"] == "王师傅"

    clock.advance(timedelta(minutes=45))
    order = await fulfilment.check_out(staff, order_id, note="打扫完毕")
    assert order["state"] == "completed"
    # The credits are spent, the slot is free, the provider's figures count a served order
    balance = await credits.balance(world.household)
    assert (balance.available, balance.reserved) == (100 - COST, 0)
    assert (await Offering.select().where(Offering.id == offering_id).first())["active_orders"] == 0
    stats = await provider_stats(provider_id)
    assert (stats["orders_total"], stats["orders_completed"], stats["no_shows"]) == (1, 1, 0)
    # The resident gets a one-time code by SMS (a channel they cannot turn off)
    code_request = await Notification.select().where(Notification.event == "confirmation_code").first()
    assert code_request["user"] == world.resident.user_id and code_request["urgent"] is True
    code = await texted_code(order_id)
    assert len(code) == 6 and code not in order["confirm_code_hash"]

    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(fulfilment.WrongCode):
        await fulfilment.confirm_with_code(order_id, wrong, principal=staff)
    with pytest.raises(ValidationFailed):
        await fulfilment.confirm_with_code(order_id, "12ab", principal=staff)
    order = await fulfilment.confirm_with_code(order_id, code, principal=staff, rating=5)
    assert order["state"] == "confirmed" and order["rating"] == 5
    stats = await provider_stats(provider_id)
    assert (stats["rating_count"], stats["rating_sum"]) == (1, 5)
    with pytest.raises(IllegalMove):
        await fulfilment.confirm_with_code(order_id, code, principal=staff)


async def test_codes_cannot_be_guessed(world):
    order_id, _, _, staff = await accepted_order(world)
    await serve(order_id, staff)
    code = await texted_code(order_id)
    wrong = [f"{n:06d}" for n in range(20) if f"{n:06d}" != code][:5]
    for guess in wrong:
        with pytest.raises(fulfilment.WrongCode):
            await fulfilment.confirm_with_code(order_id, guess)
    with pytest.raises(RateLimited):
        await fulfilment.confirm_with_code(order_id, code)
    assert (await order_row(order_id))["state"] == "completed"


async def test_checking_out_twice_spends_the_credits_once(world):
    order_id, provider_id, _, staff = await accepted_order(world)
    await serve(order_id, staff)
    with pytest.raises(IllegalMove):
        await fulfilment.check_out(staff, order_id)
    assert (await credits.balance(world.household)).available == 100 - COST
    assert (await provider_stats(provider_id))["orders_completed"] == 1
    assert await Notification.count().where(Notification.event == "confirmation_code") == 1


async def test_the_resident_confirms_and_rates_on_the_web_and_a_steward_for_another(world):
    order_id, provider_id, _, staff = await accepted_order(world)
    with pytest.raises(IllegalMove):
        await fulfilment.confirm(world.resident, order_id, rating=4)  # not served yet
    await serve(order_id, staff)
    with pytest.raises(ValidationFailed) as bad:
        await fulfilment.confirm(world.resident, order_id, rating=9)
    assert bad.value.errors[0].field == "rating"
    order = await fulfilment.confirm(world.resident, order_id, rating="4", comment="很干净")
    assert (order["state"], order["rating"], order["rating_comment"]) == ("confirmed", 4, "很干净")

    second, _, _, second_staff = await accepted_order(world)
    await serve(second, second_staff)
    order = await fulfilment.confirm(world.steward, second)
    assert order["state"] == "confirmed" and order["rating"] is None


async def test_only_the_serving_provider_and_the_households_people_act(world, make_user):
    from marketplace.auth import Role
    from tests.orders.routing_world import principal

    order_id, _, _, staff = await accepted_order(world)
    _, _, other_staff = await world.add_provider(4)
    with pytest.raises(NotFound):
        await fulfilment.check_in(other_staff, order_id)
    await serve(order_id, staff)
    stranger = principal((await make_user("resident"))["id"], Role.RESIDENT, household=[world.household + 99])
    with pytest.raises(NotFound):
        await fulfilment.confirm(stranger, order_id)


async def test_unconfirmed_orders_confirm_themselves_unless_disputed(world):
    quiet, _, _, staff = await accepted_order(world)
    await serve(quiet, staff)
    disputed, _, _, staff2 = await accepted_order(world)
    await serve(disputed, staff2)
    await fulfilment.dispute(world.resident, disputed, note="只打扫了一半")
    with pytest.raises(ValidationFailed):
        await fulfilment.dispute(world.resident, quiet, note=" ")

    assert await fulfilment.auto_confirm_due() == 0
    clock.advance(timedelta(days=3, minutes=1))
    assert await fulfilment.auto_confirm_due() == 1
    assert await fulfilment.auto_confirm_due() == 0
    assert (await order_row(quiet))["state"] == "confirmed"
    assert (await order_row(disputed))["state"] == "completed"

    # The steward upholds the complaint: the credits come back and the order closes
    before = (await credits.balance(world.household)).available
    order = await fulfilment.settle_dispute(world.steward, disputed, upheld=True, note="核实属实，退还点数")
    assert order["state"] == "confirmed" and order["dispute"] == "upheld"
    assert (await credits.balance(world.household)).available == before + COST


async def test_a_no_show_releases_credits_and_the_slot_and_costs_ranking(world):
    order_id, provider_id, offering_id, staff = await accepted_order(world)
    order = await fulfilment.fail(world.steward, order_id, note="约定时间无人上门")
    assert order["state"] == "failed"
    balance = await credits.balance(world.household)
    assert (balance.available, balance.reserved) == (100, 0)
    assert (await Offering.select().where(Offering.id == offering_id).first())["active_orders"] == 0
    stats = await provider_stats(provider_id)
    assert (stats["orders_total"], stats["no_shows"]) == (1, 1)
    order = await order_row(order_id)
    [found] = await candidates(
        order["category"], order["community"], order["window_start"], order["window_end"]
    )
    no_shows = next(r for r in routing.rank([found])[0].reasons if r.factor == "no_shows")
    assert no_shows.points == -routing.NO_SHOW_POINTS


async def test_a_volunteers_hours_go_to_the_time_bank_once(world):
    order_id, provider_id, _, staff = await accepted_order(world, kind="individual_volunteer")
    await fulfilment.check_in(staff, order_id)
    clock.advance(timedelta(minutes=90))
    await fulfilment.check_out(staff, order_id)
    [entry] = await VolunteerHours.select().where(VolunteerHours.provider == provider_id)
    assert entry["minutes"] == 90 and entry["user"] == staff.user_id and entry["order_id"] == order_id
