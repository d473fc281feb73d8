"""Routes of `providers`: registration, the provider portal, admin verification, the API and HSDS."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from msgspec import Struct

from marketplace.auth import Role, logged_in, requires
from marketplace.errors import DomainError
from marketplace.pagination import Page, PageNumber, PerPage
from providers import pages, services
from providers.hsds_controllers import HsdsApi
from providers.rules import Stats, format_minutes

FormBody = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
PORTAL_ROLES = (Role.PROVIDER_STAFF, Role.VOLUNTEER, Role.ADMIN)


def _errors(exc: DomainError) -> dict[str, str]:
    return {e.field: e.text() for e in exc.errors} or {"_": exc.text()}


# -- registration ------------------------------------------------------------------------------------


class Registration(Controller):
    path = "/providers/register"
    include_in_schema = False

    @get("/")
    async def form(self) -> Template:
        context = pages.registration_context({"kind": ""}, {}, await services.verified_teams())
        return Template("providers/register.html", context=context)

    @post("/", status_code=200)
    async def submit(self, data: FormBody) -> Template:
        try:
            done = await services.register(data)
        except DomainError as exc:
            values = {k: v for k, v in data.items() if k != "password"}
            context = pages.registration_context(values, _errors(exc), await services.verified_teams())
            return Template("providers/register.html", context=context, status_code=exc.status)
        return Template(
            "providers/registered.html", context={"provider_id": done.provider_id, "phone": data.get("phone")}
        )


# -- the portal --------------------------------------------------------------------------------------


class Portal(Controller):
    path = "/portal"
    guards = [requires(*PORTAL_ROLES)]
    include_in_schema = False

    @get("/")
    async def home(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        mine = await services.my_providers(request.user)
        if len(mine) == 1:
            return Redirect(f"/portal/{mine[0]['id']}")
        return Template("providers/portal_home.html", context={"providers": mine, **pages.labels()})

    @get("/{provider_id:int}")
    async def profile(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> Template:
        return Template(
            "providers/portal_profile.html", context=await pages.profile_context(request.user, provider_id)
        )

    @post("/{provider_id:int}", status_code=200)
    async def update_profile(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], data: FormBody
    ) -> Template | Redirect:
        try:
            await services.update_profile(request.user, provider_id, pages.profile_from_form(data))
        except DomainError as exc:
            context = await pages.profile_context(request.user, provider_id, _errors(exc), data)
            return Template("providers/portal_profile.html", context=context, status_code=exc.status)
        return Redirect(f"/portal/{provider_id}?saved=1")

    @post("/{provider_id:int}/resubmit", status_code=200)
    async def resubmit(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> Redirect:
        await services.resubmit(request.user, provider_id)
        return Redirect(f"/portal/{provider_id}")

    @get("/{provider_id:int}/offerings")
    async def offerings(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> Template:
        context = await pages.offerings_context(request.user, provider_id)
        return Template("providers/portal_offerings.html", context=context)

    @get("/{provider_id:int}/offerings/new")
    async def new_offering(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> Template:
        context = await pages.offering_form_context(request.user, provider_id, None)
        return Template("providers/portal_offering.html", context=context)

    @post("/{provider_id:int}/offerings/new", status_code=200)
    async def create_offering(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], data: FormBody
    ) -> Template | Redirect:
        try:
            await services.create_offering(request.user, provider_id, pages.offering_from_form(data))
        except DomainError as exc:
            values = {**data, "community_ids": pages.as_list(data.get("community_ids"))}
            context = await pages.offering_form_context(request.user, provider_id, None, values, _errors(exc))
            return Template("providers/portal_offering.html", context=context, status_code=exc.status)
        return Redirect(f"/portal/{provider_id}/offerings")

    @get("/{provider_id:int}/offerings/{offering_id:int}")
    async def edit_offering(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], offering_id: FromPath[int]
    ) -> Template:
        offering = await services.get_offering_of(request.user, provider_id, offering_id)
        context = await pages.offering_form_context(request.user, provider_id, offering)
        return Template("providers/portal_offering.html", context=context)

    @post("/{provider_id:int}/offerings/{offering_id:int}", status_code=200)
    async def update_offering(
        self,
        request: Request[Any, Any, Any],
        provider_id: FromPath[int],
        offering_id: FromPath[int],
        data: FormBody,
    ) -> Template | Redirect:
        offering = await services.get_offering_of(request.user, provider_id, offering_id)
        try:
            await services.update_offering(request.user, offering_id, pages.offering_from_form(data))
        except DomainError as exc:
            values = {**data, "community_ids": pages.as_list(data.get("community_ids"))}
            context = await pages.offering_form_context(
                request.user, provider_id, offering, values, _errors(exc)
            )
            return Template("providers/portal_offering.html", context=context, status_code=exc.status)
        return Redirect(f"/portal/{provider_id}/offerings")

    @get("/{provider_id:int}/staff")
    async def staff(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> Template:
        return Template(
            "providers/portal_staff.html", context=await pages.staff_context(request.user, provider_id)
        )

    @post("/{provider_id:int}/staff", status_code=200)
    async def add_staff(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], data: FormBody
    ) -> Template | Redirect:
        try:
            await services.add_staff(request.user, provider_id, data)
        except DomainError as exc:
            values = {k: v for k, v in data.items() if k != "password"}
            context = await pages.staff_context(request.user, provider_id, values, _errors(exc))
            return Template("providers/portal_staff.html", context=context, status_code=exc.status)
        return Redirect(f"/portal/{provider_id}/staff")

    @get("/{provider_id:int}/staff/{worker_id:int}/remove")
    async def confirm_remove_staff(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], worker_id: FromPath[int]
    ) -> Template:
        context = await pages.staff_context(request.user, provider_id)
        context["removing"] = next(
            (w for w in context["staff"] if w["id"] == worker_id and w["is_active"]), None
        )
        return Template("providers/portal_staff_remove.html", context=context)

    @post("/{provider_id:int}/staff/{worker_id:int}/remove", status_code=200)
    async def remove_staff(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], worker_id: FromPath[int]
    ) -> Template | Redirect:
        try:
            await services.remove_staff(request.user, provider_id, worker_id)
        except DomainError as exc:
            context = await pages.staff_context(request.user, provider_id, {}, _errors(exc))
            return Template("providers/portal_staff.html", context=context, status_code=exc.status)
        return Redirect(f"/portal/{provider_id}/staff")

    @get("/{provider_id:int}/hours")
    async def time_bank(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], page: PageNumber = 1
    ) -> Template:
        return Template(
            "providers/portal_hours.html", context=await pages.hours_context(request.user, provider_id, page)
        )


# -- admin -------------------------------------------------------------------------------------------


class ProvidersAdmin(Controller):
    path = "/admin/providers"
    guards = [requires(Role.ADMIN)]
    include_in_schema = False

    @get("/")
    async def list_page(
        self,
        *,
        request: Request[Any, Any, Any],
        status: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        search: FromQuery[str] = "",
        page: PageNumber = 1,
    ) -> Template:
        context = await pages.admin_list_context(request.user, status or None, kind or None, search, page)
        return Template("providers/admin_providers.html", context=context)

    @get("/{provider_id:int}")
    async def detail(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> Template:
        context = await pages.admin_detail_context(request.user, provider_id)
        return Template("providers/admin_provider.html", context=context)

    @post("/{provider_id:int}/decision", status_code=200)
    async def decide(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], data: FormBody
    ) -> Template | Redirect:
        try:
            await services.decide(
                request.user,
                provider_id,
                str(data.get("action") or ""),
                reason=str(data.get("reason") or ""),
                documents=pages.as_list(data.get("documents")),
                note=str(data.get("note") or ""),
            )
        except DomainError as exc:
            context = await pages.admin_detail_context(request.user, provider_id, data, _errors(exc))
            return Template("providers/admin_provider.html", context=context, status_code=exc.status)
        return Redirect(f"/admin/providers/{provider_id}")


# -- API models --------------------------------------------------------------------------------------


class ProviderOut(Struct, omit_defaults=True):
    """A provider as the caller may see it; contacts only for itself, stewards and administrators."""

    id: int
    public_id: str
    kind: str
    name: str
    name_en: str
    description: str
    credit_code: str
    address: str
    website: str
    latitude: float | None
    longitude: float | None
    team: int | None
    status: str
    is_active: bool
    verified_at: datetime | None
    can_manage: bool
    team_name: str = ""
    contact_name: str | None = None
    contact_phone: str | None = None
    status_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ProviderPage(Struct):
    items: list[ProviderOut]
    page: int
    per_page: int
    total: int
    pages: int


class RegistrationIn(Struct):
    """A provider signs up: what it is, its profile and its first account."""

    kind: str
    name: str
    phone: str
    password: str
    consent: bool
    contact_name: str = ""
    name_en: str = ""
    description: str = ""
    credit_code: str = ""
    address: str = ""
    website: str = ""
    latitude: float | None = None
    longitude: float | None = None
    team_id: int | None = None


class RegisteredOut(Struct):
    provider_id: int
    user_id: int
    status: str


class ProfileIn(Struct, omit_defaults=True):
    """Fields of the profile to change; absent fields stay as they are."""

    name: str | None = None
    name_en: str | None = None
    description: str | None = None
    credit_code: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    address: str | None = None
    website: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    is_active: bool | None = None


class DecisionIn(Struct):
    """An administrator's decision: verify, refuse, suspend or reinstate."""

    action: str
    reason: str = ""
    documents: list[str] = msgspec.field(default_factory=list)
    note: str = ""


class EventOut(Struct):
    action: str
    from_status: str
    to_status: str
    reason: str
    documents: list[str]
    note: str
    by_user: int | None
    at: datetime


class IntervalIn(Struct):
    weekday: int
    opens: str
    closes: str


class OfferingIn(Struct, omit_defaults=True):
    """An offering; on a change, absent fields stay as they are (areas and schedule are replaced whole)."""

    category_id: int | None = None
    title: str | None = None
    description: str | None = None
    unit: str | None = None
    duration_minutes: int | None = None
    credit_cost: int | None = None
    capacity: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    is_active: bool | None = None
    community_ids: list[int] | None = None
    schedule: list[IntervalIn] | None = None


class AreaOut(Struct):
    id: int
    name: str


class IntervalOut(Struct):
    weekday: int
    opens: str
    closes: str


class OfferingOut(Struct, omit_defaults=True):
    id: int
    public_id: str
    provider_id: int
    category_id: int
    category_code: str
    title: str
    description: str
    unit: str
    duration_minutes: int
    credit_cost: int
    capacity: int
    is_active: bool
    latitude: float | None
    longitude: float | None
    areas: list[AreaOut]
    schedule: list[IntervalOut]
    active_orders: int | None = None


class StaffIn(Struct):
    name: str
    phone: str
    job_title: str = ""
    login: bool = False
    password: str = ""


class StaffOut(Struct):
    id: int
    name: str
    phone: str
    job_title: str
    can_log_in: bool
    is_active: bool


class StatsOut(Struct):
    """Response figures; null means no data yet (nothing is estimated)."""

    acceptance_rate: float | None
    median_accept_seconds: int | None
    completion_rate: float | None
    no_shows: int | None
    average_rating: float | None
    rating_count: int


class HoursOut(Struct):
    id: int
    user_id: int | None
    order_id: int | None
    category_id: int | None
    minutes: int
    served_at: datetime
    note: str


class HoursPage(Struct):
    items: list[HoursOut]
    total_minutes: int
    page: int
    per_page: int
    total: int
    pages: int


class CandidateOut(Struct):
    provider_id: int
    offering_id: int
    kind: str
    credit_cost: int
    capacity: int
    active_orders: int
    latitude: float | None
    longitude: float | None
    stats: StatsOut


def provider_out(view: dict[str, Any]) -> ProviderOut:
    return msgspec.convert(view, ProviderOut, strict=False)


def offering_out(row: dict[str, Any]) -> OfferingOut:
    return OfferingOut(
        id=row["id"],
        public_id=str(row["public_id"]),
        provider_id=row["provider"],
        category_id=row["category"],
        category_code=row["category_row"].get("code", ""),
        title=row["title"],
        description=row["description"],
        unit=row["unit"],
        duration_minutes=row["duration_minutes"],
        credit_cost=row["credit_cost"],
        capacity=row["capacity"],
        is_active=bool(row["is_active"]),
        latitude=row["latitude"],
        longitude=row["longitude"],
        areas=[AreaOut(id=a["id"], name=a["name"]) for a in row["areas"]],
        schedule=[
            IntervalOut(
                weekday=i.weekday, opens=format_minutes(i.opens_at), closes=format_minutes(i.closes_at)
            )
            for i in row["schedule"]
        ],
        active_orders=row.get("active_orders"),
    )


def stats_out(stats: Stats) -> StatsOut:
    return StatsOut(
        acceptance_rate=stats.acceptance_rate,
        median_accept_seconds=stats.median_accept_seconds,
        completion_rate=stats.completion_rate,
        no_shows=stats.no_shows,
        average_rating=stats.average_rating,
        rating_count=stats.rating_count,
    )


def _staff_out(row: dict[str, Any]) -> StaffOut:
    return StaffOut(
        id=row["id"],
        name=row["name"],
        phone=row["phone"],
        job_title=row["job_title"],
        can_log_in=row["user"] is not None,
        is_active=bool(row["is_active"]),
    )


def _offering_body(data: JSONBody[OfferingIn]) -> dict[str, Any]:
    body = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
    if data.schedule is not None:
        body["schedule"] = [msgspec.structs.asdict(i) for i in data.schedule]
    return body


# -- JSON API ----------------------------------------------------------------------------------------


@post("/api/v1/providers/register", tags=["providers"], summary="Register as a provider", status_code=201)
async def register_api(data: JSONBody[RegistrationIn]) -> RegisteredOut:
    """Anyone may register; the provider waits for verification. Rate-limited per address."""
    done = await services.register(msgspec.structs.asdict(data))
    return RegisteredOut(provider_id=done.provider_id, user_id=done.user_id, status="pending")


class ProvidersApi(Controller):
    path = "/api/v1"
    tags = ["providers"]
    guards = [logged_in]

    @get("/providers", summary="List providers")
    async def list_providers(
        self,
        *,
        request: Request[Any, Any, Any],
        status: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        search: FromQuery[str] = "",
        community_id: FromQuery[int | None] = None,
        category_id: FromQuery[int | None] = None,
        page: PageNumber = 1,
        per_page: PerPage = 50,
    ) -> ProviderPage:
        """Administrators see every status; everyone else sees verified providers."""
        found: Page = await services.list_providers(
            request.user,
            status=status,
            kind=kind,
            search=search,
            community_id=community_id,
            category_id=category_id,
            page=page,
            per_page=per_page,
        )
        return ProviderPage(
            items=[provider_out(v) for v in found.items],
            page=found.page,
            per_page=found.per_page,
            total=found.total,
            pages=found.pages,
        )

    @get("/providers/mine", summary="The providers I act for")
    async def mine(self, request: Request[Any, Any, Any]) -> list[ProviderOut]:
        return [provider_out(v) for v in await services.my_providers(request.user)]

    @get("/providers/{provider_id:int}", summary="One provider")
    async def get_provider(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> ProviderOut:
        return provider_out(await services.get_provider(request.user, provider_id))

    @patch("/providers/{provider_id:int}", summary="Change a provider's profile (itself or an administrator)")
    async def update_provider(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], data: JSONBody[ProfileIn]
    ) -> ProviderOut:
        body = msgspec.structs.asdict(data)
        return provider_out(await services.update_profile(request.user, provider_id, body))

    @post(
        "/providers/{provider_id:int}/decisions",
        summary="Verify, refuse, suspend or reinstate (administrators)",
        guards=[requires(Role.ADMIN)],
    )
    async def decide(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], data: JSONBody[DecisionIn]
    ) -> ProviderOut:
        view = await services.decide(
            request.user,
            provider_id,
            data.action,
            reason=data.reason,
            documents=data.documents,
            note=data.note,
        )
        return provider_out(view)

    @post("/providers/{provider_id:int}/resubmit", summary="Ask to be verified again after a refusal")
    async def resubmit(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> ProviderOut:
        return provider_out(await services.resubmit(request.user, provider_id))

    @get("/providers/{provider_id:int}/history", summary="Verification history (itself or an administrator)")
    async def history(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> list[EventOut]:
        return [
            msgspec.convert(e, EventOut, strict=False)
            for e in await services.history(request.user, provider_id)
        ]

    @get("/providers/{provider_id:int}/offerings", summary="A provider's offerings")
    async def offerings(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int]
    ) -> list[OfferingOut]:
        return [offering_out(o) for o in await services.list_offerings(request.user, provider_id)]

    @post("/providers/{provider_id:int}/offerings", summary="Offer a category")
    async def create_offering(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], data: JSONBody[OfferingIn]
    ) -> OfferingOut:
        return offering_out(await services.create_offering(request.user, provider_id, _offering_body(data)))

    @get("/offerings/{offering_id:int}", summary="One offering")
    async def get_offering(self, request: Request[Any, Any, Any], offering_id: FromPath[int]) -> OfferingOut:
        return offering_out(await services.get_offering(request.user, offering_id))

    @patch("/offerings/{offering_id:int}", summary="Change an offering (its provider or an administrator)")
    async def update_offering(
        self, request: Request[Any, Any, Any], offering_id: FromPath[int], data: JSONBody[OfferingIn]
    ) -> OfferingOut:
        return offering_out(await services.update_offering(request.user, offering_id, _offering_body(data)))

    @get("/providers/{provider_id:int}/staff", summary="A provider's people")
    async def staff(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> list[StaffOut]:
        return [_staff_out(w) for w in await services.list_staff(request.user, provider_id)]

    @post("/providers/{provider_id:int}/staff", summary="Add a person, with a login if asked")
    async def add_staff(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], data: JSONBody[StaffIn]
    ) -> StaffOut:
        return _staff_out(await services.add_staff(request.user, provider_id, msgspec.structs.asdict(data)))

    @delete("/providers/{provider_id:int}/staff/{worker_id:int}", summary="A person leaves the provider")
    async def remove_staff(
        self, request: Request[Any, Any, Any], provider_id: FromPath[int], worker_id: FromPath[int]
    ) -> None:
        await services.remove_staff(request.user, provider_id, worker_id)

    @get("/providers/{provider_id:int}/stats", summary="Response figures (null: no data yet)")
    async def stats(self, request: Request[Any, Any, Any], provider_id: FromPath[int]) -> StatsOut:
        return stats_out(await services.stats(request.user, provider_id))

    @get("/providers/{provider_id:int}/hours", summary="The volunteer time bank of a provider")
    async def hours(
        self,
        request: Request[Any, Any, Any],
        provider_id: FromPath[int],
        page: PageNumber = 1,
        per_page: PerPage = 50,
    ) -> HoursPage:
        found = await services.hours(request.user, provider_id, page, per_page)
        entries: Page = found["entries"]
        return HoursPage(
            items=[
                HoursOut(
                    id=e["id"],
                    user_id=e["user"],
                    order_id=e["order_id"],
                    category_id=e["category"],
                    minutes=e["minutes"],
                    served_at=e["served_at"],
                    note=e["note"],
                )
                for e in entries.items
            ],
            total_minutes=found["total_minutes"],
            page=entries.page,
            per_page=entries.per_page,
            total=entries.total,
            pages=entries.pages,
        )

    @get(
        "/candidates",
        summary="Who could serve an order now (stewards and administrators)",
        guards=[requires(Role.STEWARD, Role.ADMIN)],
    )
    async def candidates(
        self,
        *,
        request: Request[Any, Any, Any],
        category_id: FromQuery[int],
        community_id: FromQuery[int],
        start: FromQuery[datetime],
        end: FromQuery[datetime],
    ) -> list[CandidateOut]:
        """The routing candidates for a category, community and service window (ISO times with zone)."""
        found = await services.candidates_for(request.user, category_id, community_id, start, end)
        return [
            CandidateOut(
                provider_id=c.provider_id,
                offering_id=c.offering_id,
                kind=c.kind,
                credit_cost=c.credit_cost,
                capacity=c.capacity,
                active_orders=c.active_orders,
                latitude=c.latitude,
                longitude=c.longitude,
                stats=stats_out(c.stats),
            )
            for c in found
        ]


ROUTES: list[Any] = [Registration, Portal, ProvidersAdmin, register_api, ProvidersApi, HsdsApi]
