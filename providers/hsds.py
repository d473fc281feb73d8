"""The provider directory in Open Referral HSDS 3.0 form (services, organizations, taxonomy).

What is published: verified organizations (including volunteer teams) and their offerings,
the service categories as one taxonomy, the communities each offering serves and its weekly
hours, and the credits each need level pays.  What never is: contact people, phone numbers,
anything about households, and individual volunteers, who appear only as the team they serve
with.  Ids are the UUIDs stored with each row; objects without a row of their own (schedules,
service areas, cost options, ...) get name-based UUIDs derived from their parent, so every id
is stable from one export to the next.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from households.tables import Community
from marketplace import clock
from marketplace.catalog import NEED_LEVELS, Unit, credit_cost
from marketplace.catalog_services import contains, current_policies
from marketplace.errors import NotFound, ValidationFailed
from marketplace.i18n import N_
from marketplace.tables import Category
from providers.rules import Interval, Kind, Status, format_minutes
from providers.services import with_details
from providers.tables import Offering, Provider

HSDS_VERSION = "3.0"
OPENAPI_URL = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/openapi.json"
TAXONOMY_ID = uuid.uuid5(uuid.NAMESPACE_URL, "cloudmarket:taxonomy:service-categories")
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
RRULE_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WEEKDAYS_ZH = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")
UNITS_ZH = {Unit.VISIT: "次", Unit.HOUR: "小时", Unit.MEAL: "餐"}
FEES_DESCRIPTION = "困难家庭使用每月发放的服务点数支付，不收现金；每次所需点数按家庭的需求等级计算。"
ELIGIBILITY = "本区低收入人口数据库中的困难家庭，由社区救助小管家登记核实后按需求等级分级响应。"


@dataclass(frozen=True)
class Query:
    """The HSDS list parameters this export understands."""

    search: str = ""
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    taxonomy_term_id: str | None = None
    taxonomy_id: str | None = None
    organization_id: str | None = None
    modified_after: str | None = None
    full: bool = False
    full_service: bool = False
    top_only: bool = False
    parent_id: str | None = None


def _uuid(raw: str | None, name: str) -> uuid.UUID | None:
    if raw is None or raw == "":
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed.field(name, N_("This value is missing or has the wrong form.")) from None


def _since(raw: str | None) -> datetime | None:
    """``modified_after`` as an aware time; a time without a zone is read in the service's zone."""
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise ValidationFailed.field(
            "modified_after", N_("This value is missing or has the wrong form.")
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=clock.local_zone())


def _page_numbers(query: Query) -> tuple[int, int]:
    return max(1, query.page), max(1, min(query.per_page, MAX_PER_PAGE))


def page_of(contents: list[dict[str, Any]], total: int, page: int, per_page: int) -> dict[str, Any]:
    """The HSDS page envelope around ``contents``."""
    pages = max(1, -(-total // per_page))
    return {
        "total_items": total,
        "total_pages": pages,
        "page_number": page,
        "size": len(contents),
        "first_page": page == 1,
        "last_page": page >= pages,
        "empty": not contents,
        "contents": contents,
    }


def _iso(value: datetime) -> str:
    return value.astimezone(clock.local_zone()).isoformat(timespec="seconds")


def _derived(parent: uuid.UUID | str, name: str) -> str:
    return str(uuid.uuid5(uuid.UUID(str(parent)), name))


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """HSDS types its fields: absent is allowed, null and empty strings are not useful."""
    return {k: v for k, v in obj.items() if v is not None and v != ""}


# -- what is exported --------------------------------------------------------------------------------


def _exported_providers() -> Any:
    return (Provider.status == Status.VERIFIED.value) & (Provider.kind != Kind.INDIVIDUAL_VOLUNTEER.value)


def _exported_offerings() -> Any:
    return (Offering.provider.status == Status.VERIFIED.value) & (
        Offering.provider.kind != Kind.INDIVIDUAL_VOLUNTEER.value
    )


def _service_filters(query: Query) -> list[Any]:
    conditions = [_exported_offerings()]
    term = _uuid(query.taxonomy_term_id, "taxonomy_term_id")
    if term is not None:
        conditions.append(Offering.category.public_id == term)
    taxonomy = _uuid(query.taxonomy_id, "taxonomy_id")
    if taxonomy is not None and taxonomy != TAXONOMY_ID:
        conditions.append(Offering.id == -1)
    organization = _uuid(query.organization_id, "organization_id")
    if organization is not None:
        conditions.append(Offering.provider.public_id == organization)
    since = _since(query.modified_after)
    if since is not None:
        conditions.append((Offering.updated_at >= since) | (Offering.provider.updated_at >= since))
    if query.search.strip():
        word = query.search.strip()
        conditions.append(
            contains(Offering.title, word)
            | contains(Offering.description, word)
            | contains(Offering.provider.name, word)
            | contains(Offering.category.name_zh, word)
            | contains(Offering.category.name_en, word)
        )
    return conditions


_OFFERING_COLUMNS = (
    Offering.provider.public_id.as_alias("provider_public_id"),
    Offering.provider.name.as_alias("provider_name"),
    Offering.provider.name_en.as_alias("provider_name_en"),
    Offering.provider.description.as_alias("provider_description"),
    Offering.provider.is_active.as_alias("provider_active"),
    Offering.provider.updated_at.as_alias("provider_updated_at"),
)


async def _offerings_page(query: Query) -> tuple[list[dict[str, Any]], int, int, int]:
    page, per_page = _page_numbers(query)
    select = Offering.select(*Offering.all_columns(), *_OFFERING_COLUMNS).order_by(Offering.id)
    count = Offering.count()
    for condition in _service_filters(query):
        select = select.where(condition)
        count = count.where(condition)
    rows = await select.limit(per_page).offset((page - 1) * per_page)
    return await with_details(rows), await count, page, per_page


def _status(row: dict[str, Any]) -> str:
    if not row["is_active"]:
        return "inactive"
    if not row["provider_active"]:
        return "temporarily closed"
    return "active"


def _service_brief(row: dict[str, Any]) -> dict[str, Any]:
    category = row["category_row"]
    modified = max(row["updated_at"], row["provider_updated_at"])
    return _clean(
        {
            "id": str(row["public_id"]),
            "organization_id": str(row["provider_public_id"]),
            "name": row["title"] or category["name_zh"],
            "alternate_name": category["name_en"],
            "description": row["description"] or category.get("description_zh", ""),
            "status": _status(row),
            "fees_description": FEES_DESCRIPTION,
            "eligibility_description": ELIGIBILITY,
            "last_modified": _iso(modified),
        }
    )


def _schedules(service_id: str, intervals: Iterable[Interval]) -> list[dict[str, Any]]:
    """Weekly RRULE-style schedules, one per distinct opening interval, with its days."""
    by_hours: dict[tuple[int, int], list[int]] = {}
    for interval in intervals:
        by_hours.setdefault((interval.opens_at, interval.closes_at), []).append(interval.weekday)
    offset = clock.local_now().utcoffset()
    zone_hours = offset.total_seconds() / 3600 if offset is not None else 0
    schedules = []
    for (opens, closes), listed in sorted(by_hours.items(), key=lambda item: (min(item[1]), item[0])):
        days = sorted(set(listed))
        closes_text = "23:59" if closes >= 24 * 60 else format_minutes(closes)
        schedules.append(
            {
                "id": _derived(service_id, f"schedule:{opens}:{closes}:{','.join(map(str, days))}"),
                "service_id": service_id,
                "freq": "WEEKLY",
                "wkst": "MO",
                "interval": 1,
                "byday": ",".join(RRULE_DAYS[d] for d in days),
                "opens_at": format_minutes(opens),
                "closes_at": closes_text,
                "timezone": zone_hours,
                "description": "、".join(WEEKDAYS_ZH[d] for d in days)
                + f" {format_minutes(opens)}–{closes_text}",
            }
        )
    return schedules


def _location(row: dict[str, Any]) -> dict[str, Any] | None:
    """An organization's office, when it gave an address or coordinates."""
    if not row["address"] and row["latitude"] is None:
        return None
    return _clean(
        {
            "id": _derived(row["public_id"], "location:office"),
            "location_type": "physical",
            "organization_id": str(row["public_id"]),
            "name": row["name"],
            "description": row["address"],
            "latitude": row["latitude"],
            "longitude": row["longitude"],
        }
    )


def _organization_brief(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["public_id"]),
        "name": row["name"],
        "description": row["description"] or "",
        **_clean({"alternate_name": row["name_en"], "website": row["website"]}),
    }


def _term(category: dict[str, Any]) -> dict[str, Any]:
    return _clean(
        {
            "id": str(category["public_id"]),
            "code": category["code"],
            "name": category["name_zh"],
            "description": category.get("description_zh") or category["name_en"],
            "taxonomy_id": str(TAXONOMY_ID),
            "language": "zh",
        }
    )


def _taxonomy() -> dict[str, Any]:
    return {
        "id": str(TAXONOMY_ID),
        "name": "云超市服务类别",
        "description": "服务类社会救助“云超市”的服务类别：跑腿代办、保洁、代购送药、助餐、陪伴探访、陪诊等。",
        "version": "1",
    }


def _full_service(
    row: dict[str, Any],
    provider: dict[str, Any],
    categories: dict[int, dict[str, Any]],
    policies: dict[int, Any],
    communities: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    service = _service_brief(row)
    service_id = service["id"]
    category = categories[row["category"]]
    service["organization"] = _organization_brief(provider)
    service["service_areas"] = [
        _clean(
            {
                "id": _derived(service_id, f"area:{area['id']}"),
                "service_id": service_id,
                "name": area["name"],
                "description": f"{communities.get(area['id'], {}).get('street_name', '')}{area['name']}",
                "extent_type": "community",
            }
        )
        for area in row["areas"]
    ]
    service["schedules"] = _schedules(service_id, row["schedule"])
    location = _location(provider)
    service["service_at_locations"] = (
        [
            {
                "id": _derived(service_id, "service_at_location:office"),
                "service_id": service_id,
                "location_id": location["id"],
                "location": location,
            }
        ]
        if location
        else []
    )
    service["languages"] = [
        {"id": _derived(service_id, "language:zh"), "service_id": service_id, "name": "中文", "code": "zh"}
    ]
    unit = UNITS_ZH.get(Unit(row["unit"]) if row["unit"] in set(Unit) else Unit.VISIT, "次")
    options = []
    for level in NEED_LEVELS:
        policy = policies.get(level)
        if policy is None:
            continue
        credits = credit_cost(category["code"], row["credit_cost"], policy.terms.cost_rules)
        options.append(
            _clean(
                {
                    "id": _derived(service_id, f"cost:level:{level}"),
                    "service_id": service_id,
                    "option": f"需求等级{level}",
                    "amount": credits,
                    "amount_description": (
                        f"每{unit}{credits}个服务点数"
                        if credits is not None
                        else "该等级不在服务点数覆盖范围内"
                    ),
                }
            )
        )
    service["cost_options"] = options
    service["attributes"] = [
        {
            "id": _derived(service_id, "attribute:category"),
            "link_id": service_id,
            "link_type": "service",
            "link_entity": "service",
            "taxonomy_term_id": str(category["public_id"]),
            "taxonomy_term": _term(category),
        }
    ]
    return service


async def _categories(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await Category.select().where(Category.id.is_in(wanted))
    return {row["id"]: row for row in rows}


async def _providers(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await Provider.select().where(Provider.id.is_in(wanted))
    return {row["id"]: row for row in rows}


# -- the endpoints -----------------------------------------------------------------------------------


def about() -> dict[str, Any]:
    """``GET /``: which HSDS version this is and where its API description lives."""
    return {"version": HSDS_VERSION, "openapi_url": OPENAPI_URL}


async def services(query: Query) -> dict[str, Any]:
    rows, total, page, per_page = await _offerings_page(query)
    if query.full:
        contents = await _full_services(rows)
    else:
        contents = [_service_brief(row) for row in rows]
    return page_of(contents, total, page, per_page)


async def _full_services(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Whole services for a page of offerings, in a fixed number of queries whatever its size."""
    categories = await _categories(r["category"] for r in rows)
    providers = await _providers(r["provider"] for r in rows)
    policies = await current_policies()
    community_ids = {area["id"] for r in rows for area in r["areas"]}
    communities = {
        c["id"]: c
        for c in await Community.select(
            Community.id, Community.name, Community.street.name.as_alias("street_name")
        ).where(Community.id.is_in(list(community_ids) or [-1]))
    }
    return [_full_service(r, providers[r["provider"]], categories, policies, communities) for r in rows]


async def service(public_id: str) -> dict[str, Any]:
    """``GET /services/{id}``: one service with everything about it."""
    wanted = _uuid_or_404(public_id)
    row = (
        await Offering.select(*Offering.all_columns(), *_OFFERING_COLUMNS)
        .where(_exported_offerings() & (Offering.public_id == wanted))
        .first()
    )
    if row is None:
        raise NotFound()
    return (await _full_services(await with_details([row])))[0]


def _uuid_or_404(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound() from None


async def organizations(query: Query) -> dict[str, Any]:
    page, per_page = _page_numbers(query)
    conditions = [_exported_providers()]
    if query.search.strip():
        word = query.search.strip()
        conditions.append(
            contains(Provider.name, word)
            | contains(Provider.name_en, word)
            | contains(Provider.description, word)
        )
    select = Provider.select().order_by(Provider.id)
    count = Provider.count()
    for condition in conditions:
        select = select.where(condition)
        count = count.where(condition)
    rows = await select.limit(per_page).offset((page - 1) * per_page)
    if query.full or query.full_service:
        contents = await _full_organizations(rows, full_service=query.full_service)
    else:
        contents = [_organization_brief(row) for row in rows]
    return page_of(contents, await count, page, per_page)


async def organization(public_id: str, *, full_service: bool = False) -> dict[str, Any]:
    """``GET /organizations/{id}``: one organization with its services and office."""
    wanted = _uuid_or_404(public_id)
    row = await Provider.select().where(_exported_providers() & (Provider.public_id == wanted)).first()
    if row is None:
        raise NotFound()
    return (await _full_organizations([row], full_service=full_service))[0]


async def _full_organizations(rows: list[dict[str, Any]], *, full_service: bool) -> list[dict[str, Any]]:
    """Organizations with their services, in a fixed number of queries for the whole page."""
    offerings = await with_details(
        await Offering.select(*Offering.all_columns(), *_OFFERING_COLUMNS)
        .where(Offering.provider.is_in([row["id"] for row in rows] or [-1]))
        .order_by(Offering.id)
    )
    services = await _full_services(offerings) if full_service else [_service_brief(o) for o in offerings]
    by_provider: dict[int, list[dict[str, Any]]] = {}
    for offering, service in zip(offerings, services, strict=True):
        by_provider.setdefault(offering["provider"], []).append(service)
    return [_full_organization(row, by_provider.get(row["id"], [])) for row in rows]


def _full_organization(row: dict[str, Any], services: list[dict[str, Any]]) -> dict[str, Any]:
    org = _organization_brief(row)
    org["services"] = services
    location = _location(row)
    org["locations"] = [location] if location else []
    if row["credit_code"]:
        org["organization_identifiers"] = [
            {
                "id": _derived(row["public_id"], "identifier:uscc"),
                "organization_id": str(row["public_id"]),
                "identifier_scheme": "CN-USCC",
                "identifier_type": "统一社会信用代码",
                "identifier": row["credit_code"],
            }
        ]
    return org


async def service_at_locations(query: Query) -> dict[str, Any]:
    """Offerings linked to the office of their organization (for those that gave one)."""
    page, per_page = _page_numbers(query)
    conditions = [
        *_service_filters(query),
        (Offering.provider.address != "") | Offering.provider.latitude.is_not_null(),
    ]
    select = Offering.select(*Offering.all_columns(), *_OFFERING_COLUMNS).order_by(Offering.id)
    count = Offering.count()
    for condition in conditions:
        select = select.where(condition)
        count = count.where(condition)
    rows = await with_details(await select.limit(per_page).offset((page - 1) * per_page))
    providers = await _providers(r["provider"] for r in rows)
    contents = []
    for row in rows:
        location = _location(providers[row["provider"]])
        if location is None:  # pragma: no cover - the query asked for an address or coordinates
            continue
        brief = _service_brief(row)
        contents.append(
            {
                "id": _derived(brief["id"], "service_at_location:office"),
                "service_id": brief["id"],
                "location_id": location["id"],
                "location": location,
                "service": {k: brief[k] for k in ("id", "name", "status", "organization_id")},
            }
        )
    return page_of(contents, await count, page, per_page)


async def taxonomies(query: Query) -> dict[str, Any]:
    page, per_page = _page_numbers(query)
    taxonomy = _taxonomy()
    word = query.search.strip().lower()
    matches = [taxonomy] if not word or word in (taxonomy["name"] + taxonomy["description"]).lower() else []
    return page_of(matches[(page - 1) * per_page : page * per_page], len(matches), page, per_page)


async def taxonomy(public_id: str) -> dict[str, Any]:
    if _uuid_or_404(public_id) != TAXONOMY_ID:
        raise NotFound()
    return _taxonomy()


async def taxonomy_terms(query: Query) -> dict[str, Any]:
    """The service categories as terms of one flat taxonomy (every term is a top term)."""
    page, per_page = _page_numbers(query)
    conditions: list[Any] = [Category.is_active == True]  # noqa: E712
    taxonomy_id = _uuid(query.taxonomy_id, "taxonomy_id")
    if (taxonomy_id is not None and taxonomy_id != TAXONOMY_ID) or _uuid(query.parent_id, "parent_id"):
        conditions.append(Category.id == -1)
    if query.search.strip():
        word = query.search.strip()
        conditions.append(
            contains(Category.name_zh, word)
            | contains(Category.name_en, word)
            | contains(Category.code, word)
        )
    select = Category.select().order_by(Category.sort_order).order_by(Category.id)
    count = Category.count()
    for condition in conditions:
        select = select.where(condition)
        count = count.where(condition)
    rows = await select.limit(per_page).offset((page - 1) * per_page)
    return page_of([_term(row) for row in rows], await count, page, per_page)


async def taxonomy_term(public_id: str) -> dict[str, Any]:
    row = (
        await Category.select()
        .where(
            (Category.public_id == _uuid_or_404(public_id)) & (Category.is_active == True)  # noqa: E712
        )
        .first()
    )
    if row is None:
        raise NotFound()
    return _term(row)
