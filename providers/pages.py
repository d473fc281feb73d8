"""What the provider pages show: forms turned into service input, and page contexts built from services.

Handlers stay a few lines: they call one function here or in ``providers.services``.
"""

from __future__ import annotations

from typing import Any

from marketplace import catalog_services
from marketplace.auth import Principal, Role
from marketplace.catalog import UNIT_LABELS, UNIT_NAMES, Unit, localized
from marketplace.errors import NotFound
from marketplace.i18n import current_locale, gettext
from marketplace.security import MIN_PASSWORD_LENGTH
from providers import services
from providers.rules import (
    ACTION_LABELS,
    ADMIN_ACTIONS,
    DOCUMENT_KINDS,
    KIND_LABELS,
    STATUS_LABELS,
    TRANSITIONS,
    WEEKDAY_LABELS,
    Interval,
    Kind,
    Status,
    format_minutes,
    hours_lines,
)

SLOTS_PER_DAY = 2


def as_list(raw: Any) -> list[str]:
    """A form field that may come once, several times or not at all."""
    if raw is None or raw == "":
        return []
    return [str(v) for v in raw] if isinstance(raw, list) else [str(raw)]


def schedule_from_form(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Opening times from the weekly grid (``open_<day>_<slot>`` and ``close_<day>_<slot>``)."""
    schedule = []
    for day in range(7):
        for slot in range(SLOTS_PER_DAY):
            opens = str(data.get(f"open_{day}_{slot}") or "").strip()
            closes = str(data.get(f"close_{day}_{slot}") or "").strip()
            if opens or closes:
                schedule.append({"weekday": day, "opens": opens, "closes": closes})
    return schedule


def schedule_to_form(intervals: list[Interval]) -> dict[str, str]:
    values: dict[str, str] = {}
    slots: dict[int, int] = {}
    for interval in intervals:
        slot = slots.get(interval.weekday, 0)
        if slot >= SLOTS_PER_DAY:
            continue
        slots[interval.weekday] = slot + 1
        values[f"open_{interval.weekday}_{slot}"] = format_minutes(interval.opens_at)
        values[f"close_{interval.weekday}_{slot}"] = format_minutes(interval.closes_at)
    return values


def offering_from_form(data: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: v for k, v in data.items() if not k.startswith(("open_", "close_"))},
        "community_ids": as_list(data.get("community_ids")),
        "schedule": schedule_from_form(data),
        "is_active": "is_active" in data,
    }


def profile_from_form(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "is_active": "is_active" in data}


def day_names() -> list[str]:
    return [gettext(day) for day in WEEKDAY_LABELS]


def format_hours(intervals: list[Interval]) -> list[str]:
    """Opening hours in the reader's language."""
    return hours_lines(intervals, day_names())


def labels() -> dict[str, Any]:
    """Translated names of kinds, statuses, actions, documents and units for the templates."""
    return {
        "kind_labels": {k.value: gettext(v) for k, v in KIND_LABELS.items()},
        "status_labels": {k.value: gettext(v) for k, v in STATUS_LABELS.items()},
        "action_labels": {k.value: gettext(v) for k, v in ACTION_LABELS.items()},
        "document_labels": {k: gettext(v) for k, v in DOCUMENT_KINDS.items()},
        "unit_names": {u.value: gettext(UNIT_NAMES[u]) for u in Unit},
        "unit_labels": {u.value: gettext(UNIT_LABELS[u]) for u in Unit},
        "day_names": day_names(),
        "format_hours": format_hours,
        "category_name": lambda row: localized(row, "name", current_locale.get()),
    }


def registration_context(
    values: dict[str, Any], errors: dict[str, str], teams: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "values": values,
        "errors": errors,
        "teams": teams,
        "kinds": [k.value for k in Kind],
        "min_password": MIN_PASSWORD_LENGTH,
        **labels(),
    }


async def profile_context(
    principal: Principal,
    provider_id: int,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    provider = await services.managed_provider(principal, provider_id)
    return {
        "provider": provider,
        "values": values if values is not None else provider,
        "errors": errors or {},
        "stats": await services.stats(principal, provider_id),
        "tab": "profile",
        **labels(),
    }


async def offerings_context(principal: Principal, provider_id: int) -> dict[str, Any]:
    provider = await services.managed_provider(principal, provider_id)
    return {
        "provider": provider,
        "offerings": await services.list_offerings(principal, provider_id),
        "tab": "offerings",
        **labels(),
    }


async def offering_form_context(
    principal: Principal,
    provider_id: int,
    offering: dict[str, Any] | None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    provider = await services.managed_provider(principal, provider_id)
    if values is None:
        if offering is None:
            values = {"capacity": 1, "duration_minutes": 60, "is_active": True, "community_ids": []}
        else:
            values = {
                **offering,
                "community_ids": [str(a["id"]) for a in offering["areas"]],
                **schedule_to_form(offering["schedule"]),
            }
    offered = {o["category"] for o in await services.list_offerings(principal, provider_id)}
    categories = [
        c for c in await catalog_services.all_categories() if offering is not None or c["id"] not in offered
    ]
    return {
        "provider": provider,
        "offering": offering,
        "values": values,
        "selected_communities": {str(c) for c in values.get("community_ids") or []},
        "errors": errors or {},
        "categories": categories,
        "communities": await services.community_choices(),
        "streets": services.group_by_street,
        "units": [(u.value, gettext(UNIT_NAMES[u])) for u in Unit],
        "slots": range(SLOTS_PER_DAY),
        "tab": "offerings",
        **labels(),
    }


async def staff_context(
    principal: Principal,
    provider_id: int,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    provider = await services.managed_provider(principal, provider_id)
    return {
        "provider": provider,
        "staff": await services.list_staff(principal, provider_id),
        "values": values or {},
        "errors": errors or {},
        "tab": "staff",
        "me": principal.user_id,
        **labels(),
    }


async def hours_context(principal: Principal, provider_id: int, page: int) -> dict[str, Any]:
    provider = await services.managed_provider(principal, provider_id)
    found = await services.hours(principal, provider_id, page)
    return {"provider": provider, "tab": "hours", **found, **labels()}


async def admin_list_context(
    principal: Principal, status: str | None, kind: str | None, search: str, page: int
) -> dict[str, Any]:
    found = await services.list_providers(
        principal, status=status, kind=kind, search=search, page=page, per_page=30
    )
    return {
        "providers": found,
        "status": status or "",
        "kind": kind or "",
        "search": search,
        "statuses": [s.value for s in Status],
        "kinds": [k.value for k in Kind],
        **labels(),
    }


async def admin_detail_context(
    principal: Principal,
    provider_id: int,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    if principal.role != Role.ADMIN:
        raise NotFound()
    provider = await services.get_provider(principal, provider_id)
    actions = [a.value for a in ADMIN_ACTIONS if Status(provider["status"]) in TRANSITIONS[a][0]]
    return {
        "provider": provider,
        "history": await services.history(principal, provider_id),
        "offerings": await services.list_offerings(principal, provider_id),
        "staff": await services.list_staff(principal, provider_id)
        if Kind(provider["kind"]).is_organization
        else [],
        "stats": await services.stats(principal, provider_id),
        "actions": actions,
        "values": values or {},
        "errors": errors or {},
        **labels(),
    }
