"""Who serves where, for the catalog shelves: counts per category and the offerings of a community.

Only verified providers taking orders are listed, with active offerings; individual
volunteers are listed by kind (and team), not by name, to anyone but stewards and
administrators.
"""

from __future__ import annotations

from typing import Any

from marketplace.auth import Principal, Role
from marketplace.pagination import Page, paginate
from providers.rules import Kind, Status
from providers.services import stats_for, with_details
from providers.tables import Offering, Provider, ServiceArea

_COUNTS = """
SELECT a.category AS category_id, COUNT(DISTINCT o.provider) AS providers
FROM pv_service_area a
JOIN pv_offering o ON o.id = a.offering
JOIN pv_provider p ON p.id = o.provider
WHERE a.community = {} AND o.is_active = {} AND p.is_active = {} AND p.status = {}
GROUP BY a.category
"""


async def serving_counts(community_id: int) -> dict[int, int]:
    """How many providers serve each category in a community (one query)."""
    rows = await Offering.raw(_COUNTS, community_id, True, True, Status.VERIFIED.value)
    return {row["category_id"]: row["providers"] for row in rows}


def _open_offerings(category_id: int, community_id: int) -> Any:
    return (
        (Offering.category == category_id)
        & (Offering.is_active == True)  # noqa: E712
        & (Offering.provider.status == Status.VERIFIED.value)
        & (Offering.provider.is_active == True)  # noqa: E712
        & Offering.id.is_in(
            ServiceArea.select(ServiceArea.offering).where(ServiceArea.community == community_id)
        )
    )


async def serving(
    principal: Principal, category_id: int, community_id: int, page: int = 1, per_page: int = 20
) -> Page:
    """The offerings of a category in a community, with their provider, hours and figures."""
    condition = _open_offerings(category_id, community_id)
    result = await paginate(
        Offering.select(
            *Offering.all_columns(exclude=[Offering.active_orders]),
            Offering.provider.name.as_alias("provider_name"),
            Offering.provider.kind.as_alias("provider_kind"),
            Offering.provider._.team._.name.as_alias("team_name"),
        )
        .where(condition)
        .order_by(Offering.id),
        Offering.count().where(condition),
        page,
        per_page,
    )
    rows = await with_details(result.items)
    figures = await stats_for([row["provider"] for row in rows])
    named = principal.role in (Role.STEWARD, Role.ADMIN)
    for row in rows:
        row["stats"] = figures[row["provider"]]
        if row["provider_kind"] == Kind.INDIVIDUAL_VOLUNTEER and not named:
            row["provider_name"] = ""
    result.items = rows
    return result


async def provider_names(ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await Provider.select(Provider.id, Provider.name).where(Provider.id.is_in(ids))
    return {row["id"]: row["name"] for row in rows}
