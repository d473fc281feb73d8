"""The credit ledger: each effect once, reservations that never overdraw, a check that recomputes."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from marketplace import db
from marketplace.errors import PermissionDenied, ValidationFailed
from orders import credits
from orders.credits import Balance, CreditsExhausted, Kind
from orders.tables import CreditAccount, CreditEntry, Order
from tests.orders.conftest import tomorrow_window


async def _order(world, cost: int = 10) -> int:
    """A bare order row (booking has its own tests) to hang reservations on."""
    start, end = tomorrow_window()
    order = Order(
        number=f"T{await Order.count() + 1:06d}",
        household=world.household,
        community=world.community,
        level=2,
        category=world.categories["cleaning"],
        window_start=start,
        window_end=end,
        credits=cost,
    )
    await Order.insert(order)
    return int(order.id)


def test_balance_is_the_sum_of_entries():
    rows = [
        {"amount": 100, "reserved_change": 0},
        {"amount": -30, "reserved_change": 30},
        {"amount": 0, "reserved_change": -30},
        {"amount": 20, "reserved_change": 0},
    ]
    assert credits.balance_of(rows) == Balance(90, 0)
    assert credits.balance_of([]) == Balance(0, 0)


@pytest.mark.parametrize(
    ("granted", "used", "available", "lapses"),
    [(50, 0, 80, 50), (50, 20, 80, 30), (50, 70, 80, 0), (50, 0, 10, 10), (50, -10, 80, 50)],
)
def test_what_lapses_of_temporary_credits(granted, used, available, lapses):
    assert credits.lapsing(granted, used, available) == lapses


async def test_grant_is_once_per_key(orders_world):
    hh = orders_world.household
    assert await credits.grant(hh, 50, key="grant:2026-12:x") is not None
    assert await credits.grant(hh, 50, key="grant:2026-12:x") is None
    assert await credits.balance(hh) == Balance(150, 0)


async def test_reserve_consume_and_release_move_the_right_figures(orders_world):
    hh = orders_world.household
    first, second = await _order(orders_world), await _order(orders_world)
    assert await credits.reserve(hh, first, 30)
    assert not await credits.reserve(hh, first, 30), "a second reservation of one order is a no-op"
    assert await credits.balance(hh) == Balance(70, 30)
    await credits.reserve(hh, second, 20)
    assert await credits.consume(first)
    assert not await credits.release(first), "a consumed reservation cannot be released too"
    assert await credits.balance(hh) == Balance(50, 20)
    assert await credits.release(second)
    assert not await credits.release(second)
    assert await credits.balance(hh) == Balance(70, 0)
    assert await credits.refund(first, note="dispute upheld")
    assert not await credits.refund(first)
    assert await credits.balance(hh) == Balance(100, 0)
    kinds = [row["kind"] for row in await credits.entries(hh)]
    assert kinds == ["refund", "release", "consume", "reserve", "reserve", "grant"]
    assert await credits.check() == []


async def test_a_reservation_beyond_the_balance_is_refused_and_writes_nothing(orders_world):
    hh = orders_world.household
    order_id = await _order(orders_world)
    with pytest.raises(CreditsExhausted) as refused:
        await credits.reserve(hh, order_id, 101)
    assert refused.value.params == {"cost": 101, "balance": 100}
    assert "101" in refused.value.text() and "100" in refused.value.text()
    assert await credits.balance(hh) == Balance(100, 0)
    assert not await CreditEntry.exists().where(CreditEntry.kind == Kind.RESERVE.value)


async def test_adjust_needs_a_reason_and_never_goes_below_zero(orders_world):
    hh = orders_world.household
    with pytest.raises(Exception, match="correct"):
        await credits.adjust(hh, 5, key="a", note=" ", by_user=None)
    assert await credits.adjust(hh, -40, key="a", note="double grant", by_user=None)
    with pytest.raises(CreditsExhausted):
        await credits.adjust(hh, -61, key="b", note="too much", by_user=None)
    assert await credits.balance(hh) == Balance(60, 0)


async def test_only_an_administrator_corrects_credits(orders_world):
    hh = orders_world.household
    with pytest.raises(PermissionDenied):
        await credits.correct(orders_world.steward, hh, "10", "扣错了", key="c1")
    with pytest.raises(ValidationFailed) as failed:
        await credits.correct(orders_world.admin, hh, "ten", "扣错了", key="c1")
    assert failed.value.errors[0].field == "amount"
    with pytest.raises(ValidationFailed):
        await credits.correct(orders_world.admin, hh, "0", "扣错了", key="c1")
    assert await credits.correct(orders_world.admin, hh, "15", "上月少发", key="c1")
    assert await credits.correct(orders_world.admin, hh, "15", "上月少发", key="c1") is None
    [entry] = await CreditEntry.select().where(CreditEntry.kind == "adjust")
    assert (entry["amount"], entry["note"], entry["by_user"]) == (15, "上月少发", orders_world.admin.user_id)
    assert await credits.balance(hh) == Balance(115, 0)


async def test_temporary_credits_lapse_as_far_as_unused(orders_world):
    hh = orders_world.household
    entry = await credits.grant_temporary(hh, 50, valid_until=date(2026, 1, 31), key="warning:1")
    assert await credits.grant_temporary(hh, 50, valid_until=date(2026, 1, 31), key="warning:1") is None
    order_id = await _order(orders_world)
    await credits.reserve(hh, order_id, 30)
    assert await credits.balance(hh) == Balance(120, 30)
    # 30 of the 50 were used (temporary credits go first): 20 lapse.
    assert await credits.expire_entry(entry) == 20
    assert await credits.expire_entry(entry) is None
    assert await credits.balance(hh) == Balance(100, 30)
    assert await credits.check() == []


async def test_check_finds_an_account_that_disagrees_with_its_entries(orders_world):
    hh = orders_world.household
    assert await credits.check() == []
    await CreditAccount.update({CreditAccount.available: 7}).where(CreditAccount.household == hh)
    [difference] = await credits.check()
    assert difference.household_id == hh
    assert difference.stored == Balance(7, 0)
    assert difference.computed == Balance(100, 0)


@pytest.mark.postgres
async def test_twenty_bookings_at_once_against_a_balance_for_three(orders_world):
    """20 concurrent reservations of 10 credits against a balance of 30: exactly 3 succeed."""
    hh = await orders_world.another_household(credits_=30)
    orders = [await _order(orders_world) for _ in range(20)]
    start = asyncio.Event()

    async def book(order_id: int) -> bool:
        await start.wait()
        try:
            async with db.atomic():
                await credits.reserve(hh, order_id, 10)
        except CreditsExhausted:
            return False
        return True

    tasks = [asyncio.create_task(book(order_id)) for order_id in orders]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks)
    assert sum(results) == 3
    assert await credits.balance(hh) == Balance(0, 30)
    assert (
        await CreditEntry.count().where(
            (CreditEntry.household == hh) & (CreditEntry.kind == Kind.RESERVE.value)
        )
        == 3
    )
    assert await credits.check() == []
