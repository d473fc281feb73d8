"""Routes of the catalog and the level policies: the shelves, the admin pages and the JSON API."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect, Template
from msgspec import Struct

from marketplace import catalog_services as catalog
from marketplace import clock, shelves
from marketplace.auth import Principal, Role, logged_in, requires
from marketplace.catalog import (
    NEED_LEVELS,
    ROUTING_LABELS,
    UNIT_NAMES,
    CostRules,
    Policy,
    Routing,
    Unit,
)
from marketplace.errors import DomainError, ValidationFailed
from marketplace.i18n import N_, gettext
from marketplace.pagination import Page, PageNumber, PerPage

FormBody = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Level = Annotated[int | None, QueryParameter(ge=1, le=3, description="Need level 1 (most urgent) to 3.")]


def as_list(raw: Any) -> list[str]:
    """A form field that may come once, several times or not at all."""
    if raw is None or raw == "":
        return []
    return [str(v) for v in raw] if isinstance(raw, list) else [str(raw)]


def _principal(request: Request[Any, Any, Any]) -> Principal | None:
    principal: Principal | None = request.scope.get("user")
    return principal


# -- API models --------------------------------------------------------------------------------------


class CategoryOut(Struct):
    id: int
    public_id: str
    code: str
    name_zh: str
    name_en: str
    description_zh: str
    description_en: str
    icon: str
    icon_url: str
    routing: str
    unit: str
    credit_cost: int
    sort_order: int
    is_active: bool
    updated_at: datetime


class CategoryPage(Struct):
    items: list[CategoryOut]
    page: int
    per_page: int
    total: int
    pages: int


class CategoryIn(Struct, omit_defaults=True):
    """A new category (code and names required) or the fields to change of one."""

    code: str | None = None
    name_zh: str | None = None
    name_en: str | None = None
    description_zh: str | None = None
    description_en: str | None = None
    icon: str | None = None
    routing: str | None = None
    unit: str | None = None
    credit_cost: int | None = None
    sort_order: int | None = None
    is_active: bool | None = None


class LevelCostOut(Struct):
    level: int
    credits: int | None
    covered: bool


class ShelfOut(Struct):
    category: CategoryOut
    costs: list[LevelCostOut]
    my_cost: LevelCostOut | None
    providers: int | None


class CatalogOut(Struct):
    community_id: int | None
    level: int | None
    shelves: list[ShelfOut]


class CostOut(Struct):
    category_id: int
    level: int
    units: int
    credits: int | None
    covered: bool


class CostRulesOut(Struct):
    percent: int
    fixed: dict[str, int]
    excluded: list[str]


class PolicyOut(Struct):
    level: int
    version: int
    monthly_credits: int
    cost_rules: CostRulesOut
    accept_minutes: int
    service_hours: int
    offer_timeout_minutes: int
    routing_priority: int
    effective_from: datetime
    reason: str
    changed_by: int | None


class PoliciesOut(Struct):
    current: list[PolicyOut]
    scheduled: list[PolicyOut]


class PolicyPage(Struct):
    items: list[PolicyOut]
    page: int
    per_page: int
    total: int
    pages: int


class PolicyIn(Struct):
    """New terms for a level; they take effect now, or at ``effective_from`` if later."""

    monthly_credits: int
    accept_minutes: int
    service_hours: int
    offer_timeout_minutes: int
    routing_priority: int
    reason: str
    percent: int = 100
    fixed: dict[str, int] = msgspec.field(default_factory=dict)
    excluded: list[str] = msgspec.field(default_factory=list)
    effective_from: datetime | None = None


def category_out(row: dict[str, Any]) -> CategoryOut:
    return CategoryOut(
        id=row["id"],
        public_id=str(row["public_id"]),
        code=row["code"],
        name_zh=row["name_zh"],
        name_en=row["name_en"],
        description_zh=row["description_zh"],
        description_en=row["description_en"],
        icon=row["icon"],
        icon_url=f"/static/icons/{row['icon']}",
        routing=row["routing"],
        unit=row["unit"],
        credit_cost=row["credit_cost"],
        sort_order=row["sort_order"],
        is_active=bool(row["is_active"]),
        updated_at=row["updated_at"],
    )


def _cost(cost: catalog.LevelCost) -> LevelCostOut:
    return LevelCostOut(level=cost.level, credits=cost.credits, covered=cost.credits is not None)


def policy_out(policy: Policy) -> PolicyOut:
    rules = policy.terms.cost_rules
    return PolicyOut(
        level=policy.level,
        version=policy.version,
        monthly_credits=policy.terms.monthly_credits,
        cost_rules=CostRulesOut(
            percent=rules.percent, fixed=dict(rules.fixed), excluded=sorted(rules.excluded)
        ),
        accept_minutes=policy.terms.accept_minutes,
        service_hours=policy.terms.service_hours,
        offer_timeout_minutes=policy.terms.offer_timeout_minutes,
        routing_priority=policy.terms.routing_priority,
        effective_from=policy.effective_from,
        reason=policy.reason,
        changed_by=policy.changed_by,
    )


def _policy_row_out(row: dict[str, Any]) -> PolicyOut:
    rules = CostRules.from_json(row["cost_rules"])
    return PolicyOut(
        level=row["level"],
        version=row["version"],
        monthly_credits=row["monthly_credits"],
        cost_rules=CostRulesOut(
            percent=rules.percent, fixed=dict(rules.fixed), excluded=sorted(rules.excluded)
        ),
        accept_minutes=row["accept_minutes"],
        service_hours=row["service_hours"],
        offer_timeout_minutes=row["offer_timeout_minutes"],
        routing_priority=row["routing_priority"],
        effective_from=row["effective_from"],
        reason=row["reason"],
        changed_by=row["changed_by"],
    )


# -- the shelves -------------------------------------------------------------------------------------


class CatalogPages(Controller):
    path = "/catalog"
    include_in_schema = False

    @get("/")
    async def shelves_page(
        self, request: Request[Any, Any, Any], community: FromQuery[int | None] = None, level: Level = None
    ) -> Template:
        return Template(
            "catalog/shelves.html", context=await shelves.shelves(_principal(request), community, level)
        )

    @get("/{code:str}")
    async def category_page(
        self,
        request: Request[Any, Any, Any],
        code: FromPath[str],
        community: FromQuery[int | None] = None,
        level: Level = None,
        page: PageNumber = 1,
    ) -> Template:
        context = await shelves.category_page(_principal(request), code, community, level, page)
        return Template("catalog/category.html", context=context)


# -- admin pages -------------------------------------------------------------------------------------


def _category_form_context(
    row: dict[str, Any] | None, errors: dict[str, str], values: dict[str, Any]
) -> dict[str, Any]:
    return {
        "row": row,
        "values": values,
        "errors": errors,
        "icons": catalog.icons(),
        "routings": [(r.value, ROUTING_LABELS[r]) for r in Routing],
        "units": [(u.value, gettext(UNIT_NAMES[u])) for u in Unit],
    }


def _errors(exc: DomainError) -> dict[str, str]:
    return {e.field: e.text() for e in exc.errors} or {"_": exc.text()}


def _category_form_data(data: dict[str, Any]) -> dict[str, Any]:
    """A checkbox that is not ticked is not sent: say so explicitly."""
    return {**data, "is_active": "is_active" in data}


def policy_form_data(data: dict[str, Any]) -> tuple[dict[str, Any], datetime | None]:
    """The policy form as the service takes it: fixed prices, exclusions and the start date."""
    fixed = {
        key.removeprefix("fixed_"): str(value).strip()
        for key, value in data.items()
        if key.startswith("fixed_") and str(value).strip()
    }
    terms = {**data, "fixed": fixed, "excluded": as_list(data.get("excluded"))}
    raw = str(data.get("effective_from") or "").strip()
    if not raw:
        return terms, None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed.field("effective_from", N_("Enter a date like 2025-01-01.")) from None
    if day <= clock.local_now().date():
        return terms, None
    return terms, datetime.combine(day, time(0), tzinfo=clock.local_zone())


async def _policy_page_context(
    level: int, errors: dict[str, str], values: dict[str, Any] | None
) -> dict[str, Any]:
    current = await catalog.current_policy(level)
    if values is None and current is not None:
        terms = current.terms
        values = {
            "monthly_credits": terms.monthly_credits,
            "percent": terms.cost_rules.percent,
            "accept_minutes": terms.accept_minutes,
            "service_hours": terms.service_hours,
            "offer_timeout_minutes": terms.offer_timeout_minutes,
            "routing_priority": terms.routing_priority,
            **{f"fixed_{code}": credits for code, credits in terms.cost_rules.fixed.items()},
            "excluded": sorted(terms.cost_rules.excluded),
        }
    return {
        "level": level,
        "current": current,
        "values": values or {},
        "errors": errors,
        "categories": await catalog.all_categories(active_only=False),
        "history": await catalog.policy_history(level, 1, 50),
        "scheduled": [p for p in await catalog.scheduled_policies() if p.level == level],
    }


class CatalogAdmin(Controller):
    path = "/admin"
    guards = [requires(Role.ADMIN)]
    include_in_schema = False

    @get("/catalog")
    async def categories(self) -> Template:
        rows = await catalog.all_categories(active_only=False)
        return Template("catalog/admin_categories.html", context={"categories": rows})

    @get("/catalog/new")
    async def new_category(self) -> Template:
        values = {
            "routing": "direct",
            "unit": "visit",
            "is_active": True,
            "icon": "generic.svg",
            "sort_order": 100,
        }
        return Template("catalog/admin_category.html", context=_category_form_context(None, {}, values))

    @post("/catalog/new", status_code=200)
    async def create_category(self, request: Request[Any, Any, Any], data: FormBody) -> Template | Redirect:
        try:
            await catalog.create_category(request.user, _category_form_data(data))
        except DomainError as exc:
            context = _category_form_context(None, _errors(exc), data)
            return Template("catalog/admin_category.html", context=context, status_code=exc.status)
        return Redirect("/admin/catalog")

    @get("/catalog/{category_id:int}")
    async def edit_category(self, category_id: FromPath[int]) -> Template:
        row = await catalog.get_category(category_id)
        return Template("catalog/admin_category.html", context=_category_form_context(row, {}, row))

    @post("/catalog/{category_id:int}", status_code=200)
    async def update_category(
        self, request: Request[Any, Any, Any], category_id: FromPath[int], data: FormBody
    ) -> Template | Redirect:
        try:
            await catalog.update_category(request.user, category_id, _category_form_data(data))
        except DomainError as exc:
            row = await catalog.get_category(category_id)
            context = _category_form_context(row, _errors(exc), {**row, **data})
            return Template("catalog/admin_category.html", context=context, status_code=exc.status)
        return Redirect("/admin/catalog")

    @get("/policies")
    async def policies(self) -> Template:
        context = {
            "current": await catalog.current_policies(),
            "scheduled": await catalog.scheduled_policies(),
            "levels": NEED_LEVELS,
            "categories": await catalog.all_categories(active_only=False),
        }
        return Template("catalog/admin_policies.html", context=context)

    @get("/policies/{level:int}")
    async def policy(self, level: FromPath[int]) -> Template:
        return Template("catalog/admin_policy.html", context=await _policy_page_context(level, {}, None))

    @post("/policies/{level:int}", status_code=200)
    async def change_policy(
        self, request: Request[Any, Any, Any], level: FromPath[int], data: FormBody
    ) -> Template | Redirect:
        try:
            terms, starts = policy_form_data(data)
            await catalog.change_policy(request.user, level, terms, effective_from=starts)
        except DomainError as exc:
            context = await _policy_page_context(
                level, _errors(exc), {**data, "excluded": as_list(data.get("excluded"))}
            )
            return Template("catalog/admin_policy.html", context=context, status_code=exc.status)
        return Redirect("/admin/policies")


# -- JSON API ----------------------------------------------------------------------------------------


class CatalogApi(Controller):
    path = "/api/v1"
    tags = ["catalog"]
    guards = [logged_in]

    @get("/categories", summary="List service categories")
    async def list_categories(
        self,
        active: FromQuery[bool | None] = None,
        search: FromQuery[str] = "",
        page: PageNumber = 1,
        per_page: PerPage = 50,
    ) -> CategoryPage:
        """Categories in shelf order; filter by ``active`` and by a word in a name or the code."""
        found: Page = await catalog.list_categories(
            active=active, search=search, page=page, per_page=per_page
        )
        items = [category_out(row) for row in found.items]
        return CategoryPage(
            items=items, page=found.page, per_page=found.per_page, total=found.total, pages=found.pages
        )

    @get("/categories/{category_id:int}", summary="One service category")
    async def get_category(self, category_id: FromPath[int]) -> CategoryOut:
        return category_out(await catalog.get_category(category_id))

    @post("/categories", summary="Add a category (administrators)", guards=[requires(Role.ADMIN)])
    async def create_category(
        self, request: Request[Any, Any, Any], data: JSONBody[CategoryIn]
    ) -> CategoryOut:
        return category_out(await catalog.create_category(request.user, msgspec.structs.asdict(data)))

    @patch(
        "/categories/{category_id:int}",
        summary="Change a category (administrators)",
        guards=[requires(Role.ADMIN)],
    )
    async def update_category(
        self, request: Request[Any, Any, Any], category_id: FromPath[int], data: JSONBody[CategoryIn]
    ) -> CategoryOut:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        return category_out(await catalog.update_category(request.user, category_id, changes))

    @get("/categories/{category_id:int}/cost", summary="What a category costs a household of a level")
    async def cost(
        self,
        category_id: FromPath[int],
        level: Annotated[int, QueryParameter(ge=1, le=3)],
        units: Annotated[int, QueryParameter(ge=1, le=100)] = 1,
    ) -> CostOut:
        """Credits for ``units`` of the category under the level's current policy; null when not covered."""
        credits = await catalog.cost_for(category_id, level, units=units)
        return CostOut(
            category_id=category_id, level=level, units=units, credits=credits, covered=credits is not None
        )

    @get("/catalog", summary="The shelves: categories, costs by level and providers in a community")
    async def catalog_shelves(
        self, request: Request[Any, Any, Any], community_id: FromQuery[int | None] = None, level: Level = None
    ) -> CatalogOut:
        found = await shelves.shelves(_principal(request), community_id, level)
        who: shelves.Viewer = found["viewer"]
        return CatalogOut(
            community_id=who.community_id,
            level=who.level,
            shelves=[
                ShelfOut(
                    category=category_out(s.category),
                    costs=[_cost(c) for c in s.costs],
                    my_cost=_cost(s.my_cost) if s.my_cost else None,
                    providers=s.providers,
                )
                for s in found["shelves"]
            ],
        )

    @get("/level-policies", summary="The level policies in force, and changes scheduled")
    async def policies(self) -> PoliciesOut:
        current = await catalog.current_policies()
        return PoliciesOut(
            current=[policy_out(current[level]) for level in sorted(current)],
            scheduled=[policy_out(p) for p in await catalog.scheduled_policies()],
        )

    @get("/level-policies/{level:int}/history", summary="Every version of a level's policy, newest first")
    async def policy_history(
        self, level: FromPath[int], page: PageNumber = 1, per_page: PerPage = 20
    ) -> PolicyPage:
        found = await catalog.policy_history(level, page, per_page)
        return PolicyPage(
            items=[_policy_row_out(row) for row in found.items],
            page=found.page,
            per_page=found.per_page,
            total=found.total,
            pages=found.pages,
        )

    @post(
        "/level-policies/{level:int}",
        summary="Set new terms for a level (administrators)",
        guards=[requires(Role.ADMIN)],
    )
    async def change_policy(
        self, request: Request[Any, Any, Any], level: FromPath[int], data: JSONBody[PolicyIn]
    ) -> PolicyOut:
        """Adds a version; earlier versions stay in the history."""
        body = msgspec.structs.asdict(data)
        starts = body.pop("effective_from")
        return policy_out(await catalog.change_policy(request.user, level, body, effective_from=starts))


ROUTES: list[Any] = [CatalogPages, CatalogAdmin, CatalogApi]
