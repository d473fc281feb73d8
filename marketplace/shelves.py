"""The catalog as each role sees it (the "supermarket shelves"): categories, costs, who serves where.

The shell composes here the catalog (``marketplace.catalog_services``) with the provider
directory (``providers.directory``).  What a category costs "for me" needs the reader's need
level and community: a resident's come from their household, a steward's community from
their links; anyone may choose another community or level on the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from households.tables import Household
from marketplace.auth import LinkKind, Principal, Role
from marketplace.catalog import (
    NEED_LEVELS,
    ROUTING_HINTS,
    ROUTING_LABELS,
    UNIT_LABELS,
    Routing,
    Unit,
    credit_cost,
    localized,
)
from marketplace.catalog_services import LevelCost, all_categories, cost_table, current_policies
from marketplace.errors import NotFound
from marketplace.i18n import current_locale, gettext
from marketplace.pagination import Page
from marketplace.tables import Category
from providers import directory
from providers.rules import WEEKDAY_LABELS, Interval
from providers.rules import hours_lines as format_hours
from providers.services import community_choices, group_by_street


@dataclass
class Viewer:
    """Whose shelves these are: the community and need level the costs and providers are for."""

    community_id: int | None
    level: int | None
    community_name: str = ""

    own_level: bool = False

    @property
    def query(self) -> str:
        """The query string that keeps this community and level on the next page."""
        params = {"community": self.community_id, "level": self.level}
        return urlencode({k: v for k, v in params.items() if v is not None})


@dataclass
class Shelf:
    """One category on the shelves."""

    category: dict[str, Any]
    name: str
    description: str
    unit: str
    routing: str
    routing_hint: str
    costs: list[LevelCost]
    my_cost: LevelCost | None
    providers: int | None


async def viewer(principal: Principal | None, community_id: int | None, level: int | None) -> Viewer:
    """The community and level to show: as chosen, else what the caller's links tell."""
    if level not in NEED_LEVELS:
        level = None
    own_level = False
    choices = await community_choices()
    names = {c["id"]: c["name"] for c in choices}
    if principal is not None and principal.role == Role.RESIDENT:
        household = await _household_of(principal)
        if household is not None:
            community_id = community_id or household["community"]
            if level is None and household["level"] in NEED_LEVELS:
                level, own_level = household["level"], True
    if community_id is None and principal is not None and principal.role == Role.STEWARD:
        mine = sorted(int(c) for c in principal.linked(LinkKind.COMMUNITY) if c.isdigit())
        community_id = mine[0] if mine else None
    if community_id is not None and community_id not in names:
        community_id = None
    return Viewer(community_id, level, names.get(community_id, "") if community_id else "", own_level)


async def _household_of(principal: Principal) -> dict[str, Any] | None:
    """The community and level in force of the household a resident acts for (no personal data)."""
    linked = sorted(int(ref) for ref in principal.linked(LinkKind.HOUSEHOLD) if ref.isdigit())
    if not linked:
        return None
    row: dict[str, Any] | None = (
        await Household.select(Household.community, Household.level).where(Household.id == linked[0]).first()
    )
    return row


def _texts(category: dict[str, Any]) -> dict[str, str]:
    locale = current_locale.get()
    unit = Unit(category["unit"]) if category["unit"] in set(Unit) else Unit.VISIT
    routing = Routing(category["routing"]) if category["routing"] in set(Routing) else Routing.DIRECT
    return {
        "name": localized(category, "name", locale),
        "description": localized(category, "description", locale),
        "unit": gettext(UNIT_LABELS[unit]),
        "routing": gettext(ROUTING_LABELS[routing]),
        "routing_hint": gettext(ROUTING_HINTS[routing]),
    }


async def shelves(principal: Principal | None, community_id: int | None, level: int | None) -> dict[str, Any]:
    """Every active category with its cost at each level (or at mine) and how many serve my community."""
    who = await viewer(principal, community_id, level)
    categories = await all_categories()
    policies = await current_policies()
    costs = cost_table(categories, policies)
    counts = await directory.serving_counts(who.community_id) if who.community_id else {}
    items = []
    for category in categories:
        by_level = costs.get(category["id"], [])
        mine = next((c for c in by_level if c.level == who.level), None) if who.level else None
        items.append(
            Shelf(
                category=category,
                costs=by_level,
                my_cost=mine,
                providers=counts.get(category["id"], 0) if who.community_id else None,
                **_texts(category),
            )
        )
    return {
        "viewer": who,
        "shelves": items,
        "levels": [level for level in NEED_LEVELS if level in policies],
        "communities": await community_choices(),
        "streets": group_by_street,
    }


async def category_page(
    principal: Principal | None, code: str, community_id: int | None, level: int | None, page: int = 1
) -> dict[str, Any]:
    """One category: what it is, what it costs at each level, and who serves the community."""
    category = await Category.select().where((Category.code == code) & (Category.is_active == True)).first()  # noqa: E712
    if category is None:
        raise NotFound()
    who = await viewer(principal, community_id, level)
    policies = await current_policies()
    costs = cost_table([category], policies)[category["id"]]
    offerings: Page | None = None
    if who.community_id is not None:
        offerings = await directory.serving(
            principal or Principal(user_id=None, role=None), category["id"], who.community_id, page
        )
        for row in offerings.items:
            row["costs"] = [
                LevelCost(lvl, credit_cost(category["code"], row["credit_cost"], policy.terms.cost_rules))
                for lvl, policy in sorted(policies.items())
            ]
    return {
        "viewer": who,
        "category": category,
        "costs": costs,
        "policies": policies,
        "offerings": offerings,
        "communities": await community_choices(),
        "streets": group_by_street,
        "levels": [level for level in NEED_LEVELS if level in policies],
        "hours_lines": hours_lines,
        **_texts(category),
    }


def hours_lines(intervals: list[Interval]) -> list[str]:
    """Opening hours in the reader's language."""
    return format_hours(intervals, [gettext(day) for day in WEEKDAY_LABELS])
