"""A Hypothesis state machine over the ledger: random grants, bookings, cancels, completions, refunds.

After every step each household's balance equals the sum of its entries and agrees with a
model kept here in plain Python, and neither figure is ever negative.  The machine runs in a
thread; each step hands its database work to the test's event loop (where the pool lives).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from households.tables import Household
from marketplace.auth import Role
from orders import booking, credits, moves
from orders.credits import Balance, CreditsExhausted
from orders.tables import CreditEntry
from tests.orders.conftest import principal, tomorrow_window
from tests.orders.machines import run_machine

# Level 2 pays 80 %: cleaning 30 → 24, medicine 10 → 8, errands 10 → 8.
COSTS = {"cleaning": 24, "medicine": 8, "errands": 8}


def machine_for(world, run):
    """The machine class, bound to the test's scene and to a way of running coroutines."""

    class CreditsMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model: dict[int, list[int]] = {}  # household → [available, reserved]
            self.open: list[tuple[int, int, int]] = []  # (order, household, credits) holding credits
            self.completed: list[tuple[int, int, int]] = []
            self.refunded: set[int] = set()
            self.resident = None

        @initialize()
        def households(self) -> None:
            ids = [run(self._household()) for _ in range(2)]
            self.model = {h: [0, 0] for h in ids}
            self.resident = principal(world.resident.user_id, Role.RESIDENT, household=ids)

        async def _household(self) -> int:
            household = Household(
                code=f"SM-{uuid.uuid4().hex[:12]}",
                community=world.community,
                category="dibao",
                level=2,
                phone="13600000000",
            )
            await Household.insert(household)
            return int(household.id)

        @rule(which=st.integers(0, 1), amount=st.integers(0, 60))
        def grant(self, which: int, amount: int) -> None:
            household = list(self.model)[which]
            run(credits.grant(household, amount, key=f"grant:sm:{uuid.uuid4().hex}"))
            self.model[household][0] += amount

        @rule(which=st.integers(0, 1), amount=st.integers(1, 40))
        def temporary(self, which: int, amount: int) -> None:
            household = list(self.model)[which]
            run(
                credits.grant_temporary(
                    household, amount, valid_until=date.today() + timedelta(days=9), key=uuid.uuid4().hex
                )
            )
            self.model[household][0] += amount

        @rule(which=st.integers(0, 1), service=st.sampled_from(sorted(COSTS)))
        def book(self, which: int, service: str) -> None:
            household = list(self.model)[which]
            start, end = tomorrow_window()
            form = {"household_id": household, "category": service, "window_start": start, "window_end": end}
            cost = COSTS[service]
            try:
                order = run(booking.book(self.resident, form))
            except CreditsExhausted:
                assert self.model[household][0] < cost, "refused although the balance covered it"
                return
            assert self.model[household][0] >= cost, "booked beyond the balance"
            assert order["credits"] == cost
            self.model[household][0] -= cost
            self.model[household][1] += cost
            self.open.append((order["id"], household, cost))

        @precondition(lambda self: self.open)
        @rule(index=st.integers(0, 1000))
        def cancel(self, index: int) -> None:
            order_id, household, cost = self.open.pop(index % len(self.open))
            run(booking.cancel(self.resident, order_id, reason="不需要了"))
            self.model[household][0] += cost
            self.model[household][1] -= cost

        @precondition(lambda self: self.open)
        @rule(index=st.integers(0, 1000))
        def complete(self, index: int) -> None:
            order_id, household, cost = self.open.pop(index % len(self.open))
            run(self._serve(order_id))
            self.model[household][1] -= cost
            self.completed.append((order_id, household, cost))

        async def _serve(self, order_id: int) -> None:
            for action in ("route", "offer", "accept", "start"):
                await moves.move(order_id, action)
            from marketplace import db

            async with db.atomic():
                await moves.move(order_id, "complete")
                assert await credits.consume(order_id)
            assert not await credits.consume(order_id), "consumed twice"
            assert not await credits.release(order_id), "released after consuming"

        @precondition(lambda self: self.completed)
        @rule(index=st.integers(0, 1000))
        def refund(self, index: int) -> None:
            order_id, household, cost = self.completed[index % len(self.completed)]
            done = run(credits.refund(order_id, note="申诉成立"))
            assert done == (order_id not in self.refunded)
            if done:
                self.refunded.add(order_id)
                self.model[household][0] += cost

        @invariant()
        def balances_are_the_sum_of_entries_and_never_negative(self) -> None:
            for household, (available, reserved) in self.model.items():
                stored, rows = run(self._figures(household))
                assert stored == Balance(available, reserved)
                assert credits.balance_of(rows) == stored
                assert stored.available >= 0 and stored.reserved >= 0

        async def _figures(self, household: int):
            rows = await CreditEntry.select(CreditEntry.amount, CreditEntry.reserved_change).where(
                CreditEntry.household == household
            )
            return await credits.balance(household), rows

        def teardown(self) -> None:
            if self.model:
                assert run(credits.check()) == []

    return CreditsMachine


async def test_credits_always_balance(orders_world):
    await run_machine(machine_for, orders_world, max_examples=12, stateful_step_count=20)
