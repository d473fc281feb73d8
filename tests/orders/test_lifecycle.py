"""The table of moves (every legal and illegal move) and the one way to move an order."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from marketplace import db
from orders import lifecycle, moves
from orders.lifecycle import MOVES, IllegalMove, State
from orders.tables import Order, OrderEvent
from tests.orders.conftest import in_locale, tomorrow_window

# The lifecycle of DESIGN.md, spelt out once more by hand: (action, from) → to.
EXPECTED = {
    ("route", "submitted"): "routing",
    ("route", "offered"): "routing",
    ("offer", "routing"): "offered",
    ("escalate", "submitted"): "escalated",
    ("escalate", "routing"): "escalated",
    ("escalate", "offered"): "escalated",
    ("reroute", "escalated"): "routing",
    ("accept", "offered"): "accepted",
    ("accept", "escalated"): "accepted",
    ("start", "accepted"): "in_service",
    ("complete", "in_service"): "completed",
    ("confirm", "completed"): "confirmed",
    **{("cancel", s): "cancelled" for s in ("submitted", "routing", "offered", "escalated", "accepted")},
    ("fail", "accepted"): "failed",
    ("fail", "in_service"): "failed",
}
ALL = list(itertools.product(sorted(MOVES), [s.value for s in State]))


@pytest.mark.parametrize(("action", "state"), [pair for pair in ALL if pair in EXPECTED])
def test_every_legal_move(action, state):
    assert lifecycle.can(action, state)
    assert lifecycle.check(action, state) == EXPECTED[(action, state)]


@pytest.mark.parametrize(("action", "state"), [pair for pair in ALL if pair not in EXPECTED])
def test_every_illegal_move_is_refused_with_409(action, state):
    assert not lifecycle.can(action, state)
    with pytest.raises(IllegalMove) as refused:
        lifecycle.check(action, state)
    assert refused.value.status == 409


def test_the_table_has_no_move_beyond_the_expected_ones():
    assert {(a, s) for a, (sources, _) in MOVES.items() for s in sources} == set(EXPECTED)


def test_final_states_have_no_way_out_and_cancel_stops_at_service():
    for state in lifecycle.FINAL:
        assert not any(lifecycle.can(action, state) for action in MOVES)
    assert not lifecycle.can("cancel", "in_service")
    assert lifecycle.HOLDS_CREDITS.isdisjoint(lifecycle.FINAL | {State.COMPLETED})


def test_an_illegal_move_says_where_the_order_stands():
    with pytest.raises(IllegalMove) as refused, in_locale("en"):
        lifecycle.check("cancel", "in_service")
    with in_locale("en"):
        assert "“Being served”" in refused.value.text()
    with pytest.raises(IllegalMove) as refused, in_locale("zh_CN"):
        lifecycle.check("cancel", "in_service")
    with in_locale("zh_CN"):
        assert "“服务中”" in refused.value.text()


# -- moves -----------------------------------------------------------------------------------------


async def _order(world) -> int:
    start, end = tomorrow_window()
    order = Order(
        number=f"T{await Order.count() + 1:06d}",
        household=world.household,
        community=world.community,
        level=2,
        category=world.categories["cleaning"],
        window_start=start,
        window_end=end,
    )
    await Order.insert(order)
    return int(order.id)


async def test_a_move_writes_the_state_the_version_and_an_event(orders_world):
    order_id = await _order(orders_world)
    row = await moves.move(
        order_id, "route", actor=orders_world.steward.user_id, note="开始派单", detail={"n": 1}
    )
    assert (row["state"], row["version"]) == ("routing", 1)
    row = await moves.move(order_id, "offer", values={"attempts": 1})
    assert (row["state"], row["version"], row["attempts"]) == ("offered", 2, 1)
    events = await OrderEvent.select().where(OrderEvent.order == order_id).order_by(OrderEvent.id)
    assert [(e["kind"], e["from_state"], e["to_state"]) for e in events] == [
        ("route", "submitted", "routing"),
        ("offer", "routing", "offered"),
    ]
    assert (events[0]["actor"], events[0]["note"]) == (orders_world.steward.user_id, "开始派单")


async def test_an_illegal_move_changes_nothing(orders_world):
    order_id = await _order(orders_world)
    with pytest.raises(IllegalMove):
        await moves.move(order_id, "complete")
    assert (await Order.select(Order.state, Order.version).where(Order.id == order_id).first()) == {
        "state": "submitted",
        "version": 0,
    }
    assert await OrderEvent.count() == 0


async def test_a_move_on_a_stale_version_is_refused(orders_world):
    order_id = await _order(orders_world)
    await moves.move(order_id, "route")
    with pytest.raises(IllegalMove) as refused:
        await moves.move(order_id, "offer", version=0)
    with in_locale("en"):
        assert "changed by someone else" in refused.value.text()
    await moves.move(order_id, "offer", version=1)


async def test_a_move_in_a_transaction_that_fails_leaves_no_trace(orders_world):
    order_id = await _order(orders_world)
    seen: list[tuple[int, str]] = []
    moves.on_move(lambda row, kind: seen.append((row["id"], kind)))
    try:
        with pytest.raises(RuntimeError):
            async with db.atomic():
                await moves.move(order_id, "route")
                raise RuntimeError("the rest of the change failed")
        assert seen == [], "listeners hear only of committed moves"
        assert (await Order.select(Order.state).where(Order.id == order_id).first())["state"] == "submitted"
        assert await OrderEvent.count() == 0
        await moves.move(order_id, "route")
        assert seen == [(order_id, "route")]
    finally:
        moves._listeners.pop()


async def test_of_two_racing_moves_the_second_gets_illegal_move(orders_world):
    """Two accepts of one offered order at once: one wins, the other is refused; one event."""
    order_id = await _order(orders_world)
    await moves.move(order_id, "route")
    await moves.move(order_id, "offer")
    results = await asyncio.gather(
        *(moves.move(order_id, "accept", actor=orders_world.steward.user_id) for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["IllegalMove", "dict"]
    assert await OrderEvent.count().where(OrderEvent.kind == "accept") == 1
    assert (await Order.select(Order.version).where(Order.id == order_id).first())["version"] == 3


@pytest.mark.postgres
async def test_of_many_racing_moves_exactly_one_wins_each_round(orders_world):
    for _ in range(10):
        order_id = await _order(orders_world)
        await moves.move(order_id, "route")
        await moves.move(order_id, "offer")
        go = asyncio.Event()

        async def accept(order_id: int = order_id, go: asyncio.Event = go) -> bool:
            await go.wait()
            try:
                await moves.move(order_id, "accept")
            except IllegalMove:
                return False
            return True

        tasks = [asyncio.create_task(accept()) for _ in range(8)]
        await asyncio.sleep(0)
        go.set()
        assert sum(await asyncio.gather(*tasks)) == 1
        assert (
            await OrderEvent.count().where((OrderEvent.order == order_id) & (OrderEvent.kind == "accept"))
            == 1
        )
