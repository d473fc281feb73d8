"""Demo orders: this month's credits, and orders in every state for the demo accounts to look at.

Every order is booked and moved through the same services people use (booking, dispatch,
fulfilment), so the demo shows real timelines, ledgers and settlements.  The demo resident's
household gets an order of each kind they act on (one waiting to be confirmed); the demo
provider staff's care centre serves the accepted ones; the demo steward finds an escalated
order on the dispatch board.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from marketplace import clock
from marketplace.auth import LinkKind, Principal, Role
from marketplace.demo import DemoContext
from marketplace.errors import DomainError
from marketplace.tables import Category
from orders import booking, dispatch, settlement
from providers.tables import Offering

log = logging.getLogger("cloudmarket.demo")

WEEKDAYS = range(5)


def service_window(days_ahead: int, hour: int = 9) -> tuple[str, str]:
    """A two-hour window on a weekday at least ``days_ahead`` days ahead (when the care centre cleans)."""
    day = clock.local_now().date() + timedelta(days=days_ahead)
    while day.weekday() not in WEEKDAYS:
        day += timedelta(days=1)
    start = datetime(day.year, day.month, day.day, hour, tzinfo=clock.local_zone())
    return start.isoformat(), (start + timedelta(hours=2)).isoformat()


async def seed(ctx: DemoContext) -> None:
    await settlement.grant_month()
    households: dict[str, int] = ctx.extra["households"]
    care_centre: int = ctx.extra["providers"]["care_centre"]
    cleaning = await Category.select(Category.id).where(Category.code == "cleaning").first()
    offering = (
        await Offering.select(Offering.id)
        .where((Offering.provider == care_centre) & (Offering.category == cleaning["id"]))
        .first()
        if cleaning
        else None
    )
    if offering is None:
        log.warning("demo orders skipped: the care centre offers no cleaning")
        return
    communities = [str(c) for c in ctx.extra["areas"]["communities"].values()]
    steward = Principal(
        user_id=ctx.users[Role.STEWARD],
        role=Role.STEWARD,
        links={LinkKind.COMMUNITY.value: frozenset(communities)},
    )
    admin = Principal(user_id=ctx.users[Role.ADMIN], role=Role.ADMIN)
    demo = _Demo(ctx, steward, admin, offering["id"])
    home = households["QX-YH-0001"]
    # The demo resident's household: one of each thing a resident does.
    await demo.book(home, "cleaning", 1, then=("dispatch",), note="请先打电话，门铃坏了。")
    await demo.book(home, "cleaning", 3, then=("route",))
    await demo.book(home, "meals", 5, then=("cancel",))
    # Other households of the steward's communities.
    other = households["QX-XY-0001"]
    # Offered to the care centre (the resident chose it on the shelves), waiting for its answer.
    await demo.book(other, "cleaning", 2, then=("route",), chosen=True)
    await demo.book(other, "cleaning", 6, then=("dispatch",))
    await demo.book(households["QX-XY-0002"], "cleaning", 2, then=("escalate",))
    await settlement.refresh(settlement.month_of(clock.now()))


class _Demo:
    """Books demo orders as each household's resident and moves them on as staff would."""

    def __init__(self, ctx: DemoContext, steward: Principal, admin: Principal, offering: int) -> None:
        self.ctx = ctx
        self.steward = steward
        self.admin = admin
        self.offering = offering

    def resident(self, household_id: int) -> Principal:
        user = (
            self.ctx.users[Role.RESIDENT]
            if household_id == self.ctx.extra["households"]["QX-YH-0001"]
            else None
        )
        return Principal(
            user_id=user, role=Role.RESIDENT, links={LinkKind.HOUSEHOLD.value: frozenset({str(household_id)})}
        )

    async def book(
        self,
        household_id: int,
        category: str,
        days: int,
        *,
        then: tuple[str, ...],
        note: str = "",
        chosen: bool = False,
    ) -> None:
        """Book as the household's resident (``chosen``: the care centre's offering), then take ``then``."""
        start, end = service_window(days)
        resident = self.resident(household_id)
        data = {"category": category, "window_start": start, "window_end": end, "notes": note}
        if chosen:
            data["offering_id"] = str(self.offering)
        try:
            order = await booking.book(resident, data)
            for step in then:
                order = await self._step(step, order, resident)
        except DomainError as exc:
            # A demo that cannot book (a policy changed, no credits) leaves that order out, says why.
            log.warning("demo order left out", extra={"household": household_id, "reason": exc.text()})

    async def _step(self, step: str, order: dict[str, Any], resident: Principal) -> dict[str, Any]:
        order_id = order["id"]
        if step == "route":
            await dispatch.route(order_id)
        elif step == "escalate":
            order = await dispatch.escalate(order, "no_candidate")
        elif step == "dispatch":
            order = await dispatch.escalate(order, "no_candidate")
            order = await dispatch.dispatch_to(self.steward, order_id, self.offering)
        elif step == "cancel":
            order = await booking.cancel(resident, order_id, reason="家人这周回来照顾。")
        return order
