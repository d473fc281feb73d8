"""Use cases of `providers`: registering, verifying, profiles, offerings, staff and the time bank.

Each function takes the caller's Principal.  A provider acts only for itself: any record of
another provider answers NotFound, as if it did not exist.  Administrators act for all.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.query.functions.aggregate import Sum

from households.tables import Community
from marketplace import accounts, audit, clock, db, logs, ratelimit
from marketplace.auth import LinkKind, Principal, Role
from marketplace.catalog_services import contains, is_unique_violation
from marketplace.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from marketplace.i18n import N_
from marketplace.pagination import Page, paginate
from marketplace.tables import Category, User, UserLink
from providers.candidates import Candidate, candidates
from providers.rules import (
    Action,
    Interval,
    Kind,
    Stats,
    Status,
    check_decision,
    flag,
    next_status,
    stats_from_row,
    text,
    validate_offering,
    validate_profile,
    validate_registration,
)
from providers.tables import (
    Offering,
    OpeningHours,
    Provider,
    ProviderEvent,
    ProviderStats,
    ServiceArea,
    VolunteerHours,
    Worker,
)

log = logging.getLogger("cloudmarket.providers")

REGISTRATION_LIMIT_PER_HOUR = 10
PUBLIC_FIELDS = (
    "id",
    "public_id",
    "kind",
    "name",
    "name_en",
    "description",
    "credit_code",
    "address",
    "website",
    "latitude",
    "longitude",
    "team",
    "status",
    "is_active",
    "verified_at",
)
CONTACT_FIELDS = ("contact_name", "contact_phone")
OWNER_FIELDS = ("status_reason", "created_at", "updated_at")


# -- who sees what -----------------------------------------------------------------------------------


def is_own(principal: Principal, provider_id: int) -> bool:
    return principal.is_linked(LinkKind.PROVIDER, provider_id)


def can_manage(principal: Principal, provider_id: int) -> bool:
    """Administrators, and the provider's own accounts."""
    return (principal.role == Role.ADMIN and principal.client_id is None) or is_own(principal, provider_id)


def sees_contacts(principal: Principal, provider_id: int) -> bool:
    """Stewards dispatch orders and may have to call a provider; residents do not need to."""
    return can_manage(principal, provider_id) or principal.role == Role.STEWARD


def _view(principal: Principal, row: dict[str, Any]) -> dict[str, Any]:
    """The provider as this caller may see it; personal fields only for those who need them."""
    shown = {key: row[key] for key in PUBLIC_FIELDS}
    if row["kind"] == Kind.INDIVIDUAL_VOLUNTEER and not sees_contacts(principal, row["id"]):
        # A volunteer is a private person: others see the kind of provider, not the name.
        shown["name"] = ""
        shown["name_en"] = ""
    if sees_contacts(principal, row["id"]):
        shown.update({key: row[key] for key in CONTACT_FIELDS})
    if can_manage(principal, row["id"]):
        shown.update({key: row[key] for key in OWNER_FIELDS})
    shown["can_manage"] = can_manage(principal, row["id"])
    shown["public_id"] = str(row["public_id"])
    return shown


async def _provider_row(provider_id: int) -> dict[str, Any]:
    row = await Provider.select().where(Provider.id == provider_id).first()
    if row is None:
        raise NotFound()
    return row  # type: ignore[no-any-return]


async def _visible_row(principal: Principal, provider_id: int) -> dict[str, Any]:
    """The provider row if the caller may see it: its own, an admin, or a verified provider."""
    row = await _provider_row(provider_id)
    if not can_manage(principal, provider_id) and row["status"] != Status.VERIFIED:
        raise NotFound()
    return row


async def _managed_row(principal: Principal, provider_id: int) -> dict[str, Any]:
    """The provider row if the caller manages it; NotFound for anybody else's."""
    if not can_manage(principal, provider_id):
        raise NotFound()
    return await _provider_row(provider_id)


async def get_provider(principal: Principal, provider_id: int) -> dict[str, Any]:
    row = await _visible_row(principal, provider_id)
    view = _view(principal, row)
    if row["team"]:
        team = await Provider.select(Provider.id, Provider.name).where(Provider.id == row["team"]).first()
        view["team_name"] = team["name"] if team else ""
    else:
        view["team_name"] = ""
    return view


async def managed_provider(principal: Principal, provider_id: int) -> dict[str, Any]:
    """The provider as its own portal shows it; NotFound unless the caller manages it."""
    await _managed_row(principal, provider_id)
    return await get_provider(principal, provider_id)


async def my_providers(principal: Principal) -> list[dict[str, Any]]:
    """The providers this account acts for."""
    ids = [int(i) for i in principal.linked(LinkKind.PROVIDER)]
    if not ids:
        return []
    rows = await Provider.select().where(Provider.id.is_in(ids)).order_by(Provider.id)
    return [_view(principal, row) for row in rows]


async def list_providers(
    principal: Principal,
    *,
    status: str | None = None,
    kind: str | None = None,
    search: str = "",
    community_id: int | None = None,
    category_id: int | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """Providers, filtered; administrators see every status, others verified ones only."""
    conditions: list[Any] = []
    if principal.role == Role.ADMIN and principal.client_id is None:
        if status:
            conditions.append(Provider.status == status)
    else:
        conditions.append(Provider.status == Status.VERIFIED)
        if status and status != Status.VERIFIED:
            conditions.append(Provider.id == -1)
    if kind:
        conditions.append(Provider.kind == kind)
    if search.strip():
        word = search.strip()
        conditions.append(contains(Provider.name, word) | contains(Provider.name_en, word))
    if community_id is not None or category_id is not None:
        offers = Offering.select(Offering.provider).where(Offering.is_active == True)  # noqa: E712
        if category_id is not None:
            offers = offers.where(Offering.category == category_id)
        if community_id is not None:
            offers = offers.where(
                Offering.id.is_in(
                    ServiceArea.select(ServiceArea.offering).where(ServiceArea.community == community_id)
                )
            )
        conditions.append(Provider.id.is_in(offers))
    query = Provider.select().order_by(Provider.id, ascending=False)
    count = Provider.count()
    for condition in conditions:
        query = query.where(condition)
        count = count.where(condition)
    result = await paginate(query, count, page, per_page)
    result.items = [_view(principal, row) for row in result.items]
    return result


async def verified_teams() -> list[dict[str, Any]]:
    """Volunteer teams an individual volunteer may say they serve with."""
    return await (  # type: ignore[no-any-return]
        Provider.select(Provider.id, Provider.name)
        .where((Provider.kind == Kind.VOLUNTEER_TEAM) & (Provider.status == Status.VERIFIED))
        .order_by(Provider.name)
    )


# -- registration and verification -------------------------------------------------------------------


@dataclass
class Registered:
    provider_id: int
    user_id: int


def _collect(errors: list[FieldError], check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
        return None


async def register(data: dict[str, Any]) -> Registered:
    """A provider signs itself up: the provider (waiting for verification) and its first account.

    Organizations get a provider-staff account, individual volunteers a volunteer account.
    Rate-limited per address, as anyone may call it.
    """
    await ratelimit.check("provider-register", logs.client_ip.get() or "-", REGISTRATION_LIMIT_PER_HOUR, 3600)
    errors: list[FieldError] = []
    registration = _collect(errors, validate_registration, data)
    phone = _collect(errors, accounts.validate_phone, text(data, "phone", 30))
    _collect(errors, accounts.validate_password, str(data.get("password") or ""))
    if errors:
        raise ValidationFailed(errors=errors)
    assert registration is not None
    assert phone is not None
    if registration.team_id is not None:
        team_ok = await Provider.exists().where(
            (Provider.id == registration.team_id)
            & (Provider.kind == Kind.VOLUNTEER_TEAM)
            & (Provider.status == Status.VERIFIED)
        )
        if not team_ok:
            raise ValidationFailed.field("team_id", N_("Choose a team from the list."))
    kind: Kind = registration.kind
    role = Role.VOLUNTEER if kind is Kind.INDIVIDUAL_VOLUNTEER else Role.PROVIDER_STAFF
    try:
        return await _create_registered(registration, phone, role)
    except Exception as exc:
        if is_unique_violation(exc):  # the same phone registered twice at once
            raise ValidationFailed.field(
                "phone", N_("An account with this phone number already exists.")
            ) from exc
        raise


async def _create_registered(registration: Any, phone: str, role: Role) -> Registered:
    kind: Kind = registration.kind
    profile = registration.profile
    password: str = registration.password
    team_id: int | None = registration.team_id
    async with db.atomic():
        user = await accounts.create_user(
            phone=phone, display_name=profile.contact_name, role=role, password=password
        )
        provider = Provider(
            public_id=uuid.uuid4(),
            kind=kind.value,
            name=profile.name,
            name_en=profile.name_en,
            description=profile.description,
            credit_code=profile.credit_code,
            contact_name=profile.contact_name,
            contact_phone=phone,
            address=profile.address,
            website=profile.website,
            latitude=profile.latitude,
            longitude=profile.longitude,
            team=team_id,
            status=Status.PENDING.value,
        )
        await provider.save()
        await accounts.link(user.id, LinkKind.PROVIDER, provider.id)
        if kind.is_organization:
            await Worker.insert(
                Worker(provider=provider.id, name=profile.contact_name, phone=phone, user=user.id)
            )
        await ProviderEvent.insert(
            ProviderEvent(
                provider=provider.id,
                action=Action.REGISTER.value,
                to_status=Status.PENDING.value,
                by_user=user.id,
            )
        )
        await audit.record(
            "provider.registered",
            user_id=user.id,
            target_type="provider",
            target_id=provider.id,
            kind=kind.value,
        )
    log.info("provider registered", extra={"provider_id": provider.id, "kind": kind.value})
    return Registered(provider_id=provider.id, user_id=user.id)


async def decide(
    principal: Principal,
    provider_id: int,
    action: Action | str,
    *,
    reason: str = "",
    documents: list[str] | None = None,
    note: str = "",
) -> dict[str, Any]:
    """An administrator verifies, refuses, suspends or reinstates a provider, on the record."""
    if principal.role != Role.ADMIN:
        raise PermissionDenied()
    try:
        act = Action(action)
    except ValueError:
        raise ValidationFailed.field("action", N_("Choose what to do.")) from None
    if act not in (Action.VERIFY, Action.REFUSE, Action.SUSPEND, Action.REINSTATE):
        raise ValidationFailed.field("action", N_("Choose what to do."))
    docs = sorted(set(documents or []))
    check_decision(act, reason, docs)
    row = await _provider_row(provider_id)
    return await _move(principal, row, act, reason=reason.strip(), documents=docs, note=note.strip())


async def resubmit(principal: Principal, provider_id: int) -> dict[str, Any]:
    """A refused provider, having corrected its profile, asks to be checked again."""
    row = await _managed_row(principal, provider_id)
    return await _move(principal, row, Action.RESUBMIT)


async def _move(
    principal: Principal,
    row: dict[str, Any],
    action: Action,
    *,
    reason: str = "",
    documents: list[str] | None = None,
    note: str = "",
) -> dict[str, Any]:
    to = next_status(row["status"], action)
    now = clock.now()
    values: dict[Any, Any] = {
        Provider.status: to.value,
        Provider.status_reason: reason if to in (Status.REFUSED, Status.SUSPENDED) else "",
        Provider.updated_at: now,
    }
    if action is Action.VERIFY:
        values[Provider.verified_at] = now
    async with db.atomic():
        # Only from the status we read: two administrators deciding at once cannot both win.
        moved = (
            await Provider.update(values)
            .where((Provider.id == row["id"]) & (Provider.status == row["status"]))
            .returning(Provider.id)
        )
        if not moved:
            raise Conflict(N_("This provider's status has changed; reload the page to see where it stands."))
        await ProviderEvent.insert(
            ProviderEvent(
                provider=row["id"],
                action=action.value,
                from_status=row["status"],
                to_status=to.value,
                reason=reason,
                documents=documents or [],
                note=note,
                by_user=principal.user_id,
            )
        )
        await audit.record(
            f"provider.{action.value}",
            principal=principal,
            target_type="provider",
            target_id=row["id"],
            from_status=row["status"],
            to_status=to.value,
            documents=documents or [],
        )
    return await get_provider(principal, row["id"])


async def history(principal: Principal, provider_id: int) -> list[dict[str, Any]]:
    """The provider's verification steps, newest first, with the name of who took each."""
    await _managed_row(principal, provider_id)
    rows = (
        await ProviderEvent.select()
        .where(ProviderEvent.provider == provider_id)
        .order_by(ProviderEvent.id, ascending=False)
        .output(load_json=True)
    )
    user_ids = {r["by_user"] for r in rows if r["by_user"]}
    names = {}
    if user_ids:
        names = {
            u["id"]: u["display_name"]
            for u in await User.select(User.id, User.display_name).where(User.id.is_in(list(user_ids)))
        }
    for r in rows:
        r["by_name"] = names.get(r["by_user"], "")
    return rows  # type: ignore[no-any-return]


# -- profile -----------------------------------------------------------------------------------------


async def update_profile(principal: Principal, provider_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """A provider (or an administrator) corrects its profile and switches order-taking on or off.

    The credit code is the provider's legal identity: it cannot change once verified.
    """
    row = await _managed_row(principal, provider_id)
    kind = Kind(row["kind"])
    merged = {**row, **{k: v for k, v in data.items() if v is not None}}
    profile = validate_profile(merged, kind)
    if row["status"] in (Status.VERIFIED, Status.SUSPENDED) and profile.credit_code != row["credit_code"]:
        raise ValidationFailed.field(
            "credit_code", N_("The credit code of a verified provider can only be changed by the bureau.")
        )
    values: dict[Any, Any] = {
        Provider.name: profile.name,
        Provider.name_en: profile.name_en,
        Provider.description: profile.description,
        Provider.credit_code: profile.credit_code,
        Provider.contact_name: profile.contact_name,
        Provider.address: profile.address,
        Provider.website: profile.website,
        Provider.latitude: profile.latitude,
        Provider.longitude: profile.longitude,
        Provider.is_active: flag(merged.get("is_active"), row["is_active"]),
        Provider.updated_at: clock.now(),
    }
    if "contact_phone" in data and data["contact_phone"] is not None:
        values[Provider.contact_phone] = accounts.validate_phone(str(data["contact_phone"]), "contact_phone")
    changed = sorted(
        c._meta.name for c, v in values.items() if c is not Provider.updated_at and row[c._meta.name] != v
    )
    async with db.atomic():
        await Provider.update(values).where(Provider.id == provider_id)
        await audit.record(
            "provider.updated",
            principal=principal,
            target_type="provider",
            target_id=provider_id,
            fields=changed,
        )
    return await get_provider(principal, provider_id)


# -- offerings ---------------------------------------------------------------------------------------


async def community_choices() -> list[dict[str, Any]]:
    """Every community with its street, in street order, for choosing service areas."""
    return await (  # type: ignore[no-any-return]
        Community.select(Community.id, Community.name, Community.street.name.as_alias("street_name"))
        .order_by(Community.street)
        .order_by(Community.id)
    )


def group_by_street(communities: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Communities grouped under their street, keeping the order they came in."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for community in communities:
        groups.setdefault(community["street_name"], []).append(community)
    return list(groups.items())


async def _community_ids() -> set[int]:
    return {row["id"] for row in await Community.select(Community.id)}


async def _offering_row(offering_id: int) -> dict[str, Any]:
    row = await Offering.select().where(Offering.id == offering_id).first()
    if row is None:
        raise NotFound()
    return row  # type: ignore[no-any-return]


async def with_details(offerings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Offerings with their category, areas and hours, in three queries for any number of rows."""
    if not offerings:
        return []
    ids = [o["id"] for o in offerings]
    categories = {
        c["id"]: c
        for c in await Category.select(
            Category.id,
            Category.code,
            Category.name_zh,
            Category.name_en,
            Category.icon,
            Category.credit_cost,
        ).where(Category.id.is_in(list({o["category"] for o in offerings})))
    }
    areas: dict[int, list[dict[str, Any]]] = {}
    for a in (
        await ServiceArea.select(
            ServiceArea.offering, ServiceArea.community, ServiceArea.community.name.as_alias("community_name")
        )
        .where(ServiceArea.offering.is_in(ids))
        .order_by(ServiceArea.community)
    ):
        areas.setdefault(a["offering"], []).append({"id": a["community"], "name": a["community_name"]})
    hours: dict[int, list[Interval]] = {}
    for h in (
        await OpeningHours.select()
        .where(OpeningHours.offering.is_in(ids))
        .order_by(OpeningHours.weekday)
        .order_by(OpeningHours.opens_at)
    ):
        hours.setdefault(h["offering"], []).append(Interval(h["weekday"], h["opens_at"], h["closes_at"]))
    for o in offerings:
        o["category_row"] = categories.get(o["category"], {})
        o["areas"] = areas.get(o["id"], [])
        o["schedule"] = hours.get(o["id"], [])
        o["public_id"] = str(o["public_id"])
    return offerings


def _offering_view(principal: Principal, provider: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """An offering as this caller may see it: load only for its own people, and an individual
    volunteer's starting point (in practice their home) only for those who see contacts."""
    if not can_manage(principal, provider["id"]):
        row.pop("active_orders", None)
    if provider["kind"] == Kind.INDIVIDUAL_VOLUNTEER and not sees_contacts(principal, provider["id"]):
        row["latitude"] = row["longitude"] = None
    return row


async def list_offerings(principal: Principal, provider_id: int) -> list[dict[str, Any]]:
    """A provider's offerings: all of them for itself, the active ones for others."""
    provider = await _visible_row(principal, provider_id)
    query = Offering.select().where(Offering.provider == provider_id).order_by(Offering.id)
    if not can_manage(principal, provider_id):
        query = query.where(Offering.is_active == True)  # noqa: E712
    return [_offering_view(principal, provider, row) for row in await with_details(await query)]


async def get_offering(principal: Principal, offering_id: int) -> dict[str, Any]:
    row = await _offering_row(offering_id)
    provider = await _visible_row(principal, row["provider"])
    if not can_manage(principal, row["provider"]) and not row["is_active"]:
        raise NotFound()
    return _offering_view(principal, provider, (await with_details([row]))[0])


async def get_offering_of(principal: Principal, provider_id: int, offering_id: int) -> dict[str, Any]:
    """An offering of a provider the caller manages; NotFound if it belongs to another."""
    await _managed_row(principal, provider_id)
    row = await _offering_row(offering_id)
    if row["provider"] != provider_id:
        raise NotFound()
    return (await with_details([row]))[0]


async def _checked_fields(category: dict[str, Any], data: dict[str, Any]) -> Any:
    data = dict(data)
    if data.get("credit_cost") in (None, ""):
        data["credit_cost"] = category["credit_cost"]
    if data.get("unit") in (None, ""):
        data["unit"] = category["unit"]
    fields = validate_offering(data, await _community_ids())
    if fields.credit_cost > category["credit_cost"]:
        raise ValidationFailed.field(
            "credit_cost",
            N_("At most %(n)s credits: the standard cost the bureau set for this category."),
            n=category["credit_cost"],
        )
    return fields


async def _write_areas_and_hours(offering_id: int, category_id: int, fields: Any) -> None:
    await ServiceArea.delete().where(ServiceArea.offering == offering_id)
    await OpeningHours.delete().where(OpeningHours.offering == offering_id)
    if fields.community_ids:
        await ServiceArea.insert(
            *[
                ServiceArea(offering=offering_id, community=c, category=category_id, key=f"{offering_id}:{c}")
                for c in fields.community_ids
            ]
        )
    if fields.schedule:
        await OpeningHours.insert(
            *[
                OpeningHours(
                    offering=offering_id, weekday=i.weekday, opens_at=i.opens_at, closes_at=i.closes_at
                )
                for i in fields.schedule
            ]
        )


async def create_offering(principal: Principal, provider_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """A provider starts offering a category: its unit, cost, capacity, areas and hours."""
    await _managed_row(principal, provider_id)
    try:
        category_id = int(data.get("category_id") or 0)
    except (TypeError, ValueError):
        category_id = 0
    category = (
        await Category.select()
        .where((Category.id == category_id) & (Category.is_active == True))  # noqa: E712
        .first()
    )
    if category is None:
        raise ValidationFailed.field("category_id", N_("Choose a category from the list."))
    fields = await _checked_fields(category, data)
    if await Offering.exists().where(Offering.key == f"{provider_id}:{category_id}"):
        raise ValidationFailed.field(
            "category_id", N_("You offer this category already; change that offering instead.")
        )
    try:
        async with db.atomic():
            offering = Offering(
                public_id=uuid.uuid4(),
                provider=provider_id,
                category=category_id,
                key=f"{provider_id}:{category_id}",
                title=fields.title,
                description=fields.description,
                unit=fields.unit.value,
                duration_minutes=fields.duration_minutes,
                credit_cost=fields.credit_cost,
                capacity=fields.capacity,
                latitude=fields.latitude,
                longitude=fields.longitude,
                is_active=fields.is_active,
            )
            await offering.save()
            await _write_areas_and_hours(offering.id, category_id, fields)
            await audit.record(
                "offering.created", principal=principal, target_type="offering", target_id=offering.id
            )
    except Exception as exc:
        if is_unique_violation(exc):
            raise ValidationFailed.field(
                "category_id", N_("You offer this category already; change that offering instead.")
            ) from exc
        raise
    return await get_offering(principal, offering.id)


async def update_offering(principal: Principal, offering_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """A provider changes an offering; its category stays (start a new offering for another)."""
    current = await _offering_row(offering_id)
    await _managed_row(principal, current["provider"])
    category: Any = await Category.select().where(Category.id == current["category"]).first()
    existing = (await with_details([dict(current)]))[0]
    base: dict[str, Any] = {
        **current,
        "community_ids": [a["id"] for a in existing["areas"]],
        "schedule": [
            {"weekday": i.weekday, "opens": _hhmm(i.opens_at), "closes": _hhmm(i.closes_at)}
            for i in existing["schedule"]
        ],
    }
    fields = await _checked_fields(category, {**base, **{k: v for k, v in data.items() if v is not None}})
    async with db.atomic():
        await Offering.update(
            {
                Offering.title: fields.title,
                Offering.description: fields.description,
                Offering.unit: fields.unit.value,
                Offering.duration_minutes: fields.duration_minutes,
                Offering.credit_cost: fields.credit_cost,
                Offering.capacity: fields.capacity,
                Offering.latitude: fields.latitude,
                Offering.longitude: fields.longitude,
                Offering.is_active: fields.is_active,
                Offering.updated_at: clock.now(),
            }
        ).where(Offering.id == offering_id)
        await _write_areas_and_hours(offering_id, current["category"], fields)
        await audit.record(
            "offering.updated", principal=principal, target_type="offering", target_id=offering_id
        )
    return await get_offering(principal, offering_id)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# -- staff -------------------------------------------------------------------------------------------


async def list_staff(principal: Principal, provider_id: int) -> list[dict[str, Any]]:
    """The provider's people, active first; whether each can log in."""
    await _managed_row(principal, provider_id)
    return await (  # type: ignore[no-any-return]
        Worker.select()
        .where(Worker.provider == provider_id)
        .order_by(Worker.is_active, ascending=False)
        .order_by(Worker.id)
    )


async def add_staff(principal: Principal, provider_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """A person joins a provider: a worker, and with ``login`` an account linked to the provider."""
    row = await _managed_row(principal, provider_id)
    kind = Kind(row["kind"])
    if not kind.is_organization:
        raise ValidationFailed.field("name", N_("An individual volunteer serves in person and has no staff."))
    errors: list[FieldError] = []
    name = text(data, "name", 50)
    if not name:
        errors.append(FieldError("name", N_("Enter a name.")))
    phone = _collect(errors, accounts.validate_phone, text(data, "phone", 30))
    login = flag(data.get("login"))
    if login:
        _collect(errors, accounts.validate_password, str(data.get("password") or ""))
    if errors:
        raise ValidationFailed(errors=errors)
    role = Role.VOLUNTEER if kind is Kind.VOLUNTEER_TEAM else Role.PROVIDER_STAFF
    async with db.atomic():
        user_id = None
        if login:
            user = await accounts.create_user(
                phone=phone, display_name=name, role=role, password=str(data.get("password"))
            )
            user_id = user.id
            await accounts.link(user.id, LinkKind.PROVIDER, provider_id)
        worker = Worker(
            provider=provider_id, name=name, phone=phone, job_title=text(data, "job_title", 50), user=user_id
        )
        await worker.save()
        await audit.record(
            "provider.staff_added",
            principal=principal,
            target_type="provider",
            target_id=provider_id,
            worker_id=worker.id,
            login=login,
        )
    added: Any = await Worker.select().where(Worker.id == worker.id).first()
    return added  # type: ignore[no-any-return]


async def remove_staff(principal: Principal, provider_id: int, worker_id: int) -> None:
    """A person leaves: the worker is kept for the record, inactive, and their login unlinked.

    The last person who can log in for a provider cannot be removed: nobody could manage it.
    """
    await _managed_row(principal, provider_id)
    worker = await Worker.select().where((Worker.id == worker_id) & (Worker.provider == provider_id)).first()
    if worker is None or not worker["is_active"]:
        raise NotFound()
    async with db.atomic():
        # Two removals at once must not both see a second login and leave none.
        await db.lock_row(Provider, provider_id)
        if worker["user"] is not None:
            logins = await UserLink.count().where(
                (UserLink.kind == LinkKind.PROVIDER.value) & (UserLink.target == str(provider_id))
            )
            if logins <= 1:
                raise ValidationFailed.field(
                    "worker", N_("This is the last account that can manage the provider; add another first.")
                )
            await accounts.unlink(worker["user"], LinkKind.PROVIDER, provider_id)
        await Worker.update({Worker.is_active: False}).where(Worker.id == worker_id)
        await audit.record(
            "provider.staff_removed",
            principal=principal,
            target_type="provider",
            target_id=provider_id,
            worker_id=worker_id,
        )


# -- statistics and the time bank --------------------------------------------------------------------


async def stats(principal: Principal, provider_id: int) -> Stats:
    await _visible_row(principal, provider_id)
    row = await ProviderStats.select().where(ProviderStats.provider == provider_id).first()
    return stats_from_row(row)


async def stats_for(provider_ids: list[int]) -> dict[int, Stats]:
    """Figures of many providers in one query (for lists)."""
    if not provider_ids:
        return {}
    rows = await ProviderStats.select().where(ProviderStats.provider.is_in(provider_ids))
    found = {row["provider"]: stats_from_row(row) for row in rows}
    return {pid: found.get(pid, stats_from_row(None)) for pid in provider_ids}


async def hours(principal: Principal, provider_id: int, page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """The provider's time bank: entries newest first and the total minutes."""
    await _managed_row(principal, provider_id)
    condition = VolunteerHours.provider == provider_id
    entries = await paginate(
        VolunteerHours.select(
            *VolunteerHours.all_columns(),
            VolunteerHours.user.display_name.as_alias("user_name"),
            VolunteerHours.category.name_zh.as_alias("category_zh"),
            VolunteerHours.category.name_en.as_alias("category_en"),
        )
        .where(condition)
        .order_by(VolunteerHours.served_at, ascending=False),
        VolunteerHours.count().where(condition),
        page,
        per_page,
    )
    total = (
        await VolunteerHours.select(Sum(VolunteerHours.minutes).as_alias("total")).where(condition).first()
    )
    return {"entries": entries, "total_minutes": int((total or {}).get("total") or 0)}


async def candidates_for(
    principal: Principal, category_id: int, community_id: int, start: datetime, end: datetime
) -> list[Candidate]:
    """The routing candidates, for a steward or an administrator checking who could serve."""
    if principal.role not in (Role.STEWARD, Role.ADMIN):
        raise PermissionDenied()
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed.field(
            "start", N_("Give the times with their zone, e.g. 2025-01-06T09:00+08:00.")
        )
    try:
        return await candidates(category_id, community_id, start, end)
    except ValueError:
        raise ValidationFailed.field(
            "end", N_("The window must end after it starts and last at most a day.")
        ) from None
