"""The steward's dashboard: today's escalated orders, overdue warnings, households not reached."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from households.monitoring import number as warning_number
from households.monitoring import warning_scope
from households.services import community_scope
from households.tables import Community, HouseholdWarning
from marketplace import clock
from marketplace.auth import Principal
from orders.tables import Order
from reports import figures
from reports.figures import Period, Scope

LIST_LIMIT = 10


@dataclass
class Dashboard:
    """Three short lists, each with the number of rows beyond what is listed."""

    escalations: list[dict[str, Any]] = field(default_factory=list)
    escalations_total: int = 0
    overdue: list[dict[str, Any]] = field(default_factory=list)
    overdue_total: int = 0
    not_reached: list[dict[str, Any]] = field(default_factory=list)
    not_reached_total: int = 0
    communities: list[str] = field(default_factory=list)


async def for_steward(p: Principal, limit: int = LIST_LIMIT) -> Dashboard:
    """What needs the steward today, in the communities linked to them (admins: everywhere)."""
    communities = community_scope(p)
    board = Dashboard()
    order_where: Any = Order.state == "escalated"
    if communities is not None:
        order_where &= Order.community.is_in(sorted(communities) or [0])
    board.escalations = await (
        Order.select(
            Order.id,
            Order.number,
            Order.level,
            Order.escalation_reason,
            Order.updated_at,
            Order.category.name_zh.as_alias("category_zh"),
            Order.category.name_en.as_alias("category_en"),
            Order.community.name.as_alias("community_name"),
        )
        .where(order_where)
        .order_by(Order.level)
        .order_by(Order.updated_at)
        .limit(limit)
    )
    board.escalations_total = await Order.count().where(order_where)

    warnings = await warning_scope(p)
    warning_where: Any = (HouseholdWarning.status == "open") & (HouseholdWarning.deadline_at <= clock.now())
    if warnings is not None:
        warning_where &= HouseholdWarning.community.is_in(sorted(warnings) or [0])
    board.overdue = await (
        HouseholdWarning.select(
            HouseholdWarning.id,
            HouseholdWarning.severity,
            HouseholdWarning.deadline_at,
            HouseholdWarning.household.code.as_alias("household_code"),
            HouseholdWarning.community.name.as_alias("community_name"),
        )
        .where(warning_where)
        .order_by(HouseholdWarning.deadline_at)
        .limit(limit)
    )
    for row in board.overdue:
        row["number"] = warning_number(row["id"])
    board.overdue_total = await HouseholdWarning.count().where(warning_where)

    if communities is None:
        rows = await Community.select(Community.id, Community.name).order_by(Community.id)
    else:
        rows = await Community.select(Community.id, Community.name).where(
            Community.id.is_in(sorted(communities) or [0])
        )
    names = {row["id"]: row["name"] for row in rows}
    board.communities = [names[c] for c in sorted(names)]
    period = Period.parse(figures.current_month())
    for community_id in sorted(names):
        scope = Scope("community", community_id)
        found = await figures.not_reached_households(scope, period, limit=limit)
        for row in found:
            row["community_name"] = names[community_id]
        board.not_reached.extend(found)
        board.not_reached_total += await figures.not_reached_count(scope, period)
    board.not_reached.sort(key=lambda r: (r["level"], r["id"]))
    del board.not_reached[limit:]
    return board
