"""Booking: what a service costs a household, booking it (by the resident or a steward), cancelling it.

A resident books for their own household.  A steward books for a household of a community
they steward, with the household's consent: a one-time code texted to a member who uses a
phone (or the household's phone) and read back to the steward, or — only when nobody in the
household uses a phone — the steward's written attestation.  A booking writes the order, its
first event, the credit reservation and the message that starts routing in one transaction:
all there or nothing.  The reservation is one conditional UPDATE (:mod:`orders.credits`), so
bookings racing for the last credits never overdraw.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from households.tables import Household, Member
from households.validation import MOBILE_RE
from marketplace import audit, clock, crypto, db, outbox, ratelimit
from marketplace.auth import LinkKind, Principal, Role
from marketplace.catalog import NEED_LEVELS, credit_cost, localized
from marketplace.catalog_services import current_policy
from marketplace.errors import DomainError, FieldError, NotFound, PermissionDenied, ValidationFailed
from marketplace.i18n import N_, current_locale
from marketplace.settings import get_settings
from marketplace.tables import Category, User
from orders import credits, lifecycle, moves
from orders.tables import ConsentCode, Offer, Order
from providers import load
from providers.tables import Offering, ServiceArea

log = logging.getLogger("cloudmarket.orders")

URGENT_LEVEL = 1
MAX_WINDOW_HOURS = 12
MAX_NOTES = 1000
MIN_ATTESTATION = 10
MIN_REASON = 2
# Consent codes: like account activation codes (households.activation).
CODE_DIGITS = 6
CODE_MINUTES = 10
MAX_ATTEMPTS = 5
CODE_CONTEXT = "orders.consent"
CODES_PER_HOUSEHOLD = (3, 600)


class Channel:
    APP = "app"
    STEWARD = "steward"
    WARNING = "warning"


class Consent:
    SMS_CODE = "sms_code"
    ATTESTATION = "attestation"
    VISIT = "visit"


class NotCovered(DomainError):
    """The household's level policy does not pay for this service with credits."""

    status = 422
    code = "not_covered"
    default_message = N_("“%(service)s” is not covered by service credits at need level %(level)s.")


# -- numbers and windows (plain Python) ------------------------------------------------------------


def order_number(order_id: int, day: datetime) -> str:
    """The number people read and say: CS, the local booking date, the order id (CS20261206-000042)."""
    return f"CS{day.astimezone(clock.local_zone()):%Y%m%d}-{order_id:06d}"


def _as_datetime(raw: Any) -> datetime | None:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str) and raw.strip():
        try:
            value = datetime.fromisoformat(raw.strip())
        except ValueError:
            return None
    else:
        return None
    if value.tzinfo is None:
        # A form's datetime-local field: the service's zone.
        value = value.replace(tzinfo=clock.local_zone())
    return value


def check_window(
    raw_start: Any, raw_end: Any, *, now: datetime, days_ahead: int
) -> tuple[datetime, datetime]:
    """The service window from a form or a JSON body; every fault named next to its field."""
    errors: list[FieldError] = []
    start, end = _as_datetime(raw_start), _as_datetime(raw_end)
    if start is None:
        errors.append(FieldError("window_start", N_("Enter the date and time the service should start.")))
    elif start <= now:
        errors.append(FieldError("window_start", N_("Choose a start time in the future.")))
    elif start > now + timedelta(days=days_ahead):
        errors.append(
            FieldError(
                "window_start",
                N_("Services can be booked at most %(days)s days ahead."),
                {"days": days_ahead},
            )
        )
    if end is None:
        errors.append(FieldError("window_end", N_("Enter the date and time the service may end.")))
    elif start is not None and end <= start:
        errors.append(FieldError("window_end", N_("The end must be after the start.")))
    elif start is not None and end - start > timedelta(hours=MAX_WINDOW_HOURS):
        errors.append(
            FieldError(
                "window_end",
                N_("A service window can be at most %(hours)s hours long."),
                {"hours": MAX_WINDOW_HOURS},
            )
        )
    if errors or start is None or end is None:
        raise ValidationFailed(errors=errors)
    return start, end


# -- who books for which household -----------------------------------------------------------------


def _is_staff(p: Principal) -> bool:
    return p.role in (Role.STEWARD, Role.ADMIN) and p.client_id is None


async def _household(p: Principal, household_id: Any) -> dict[str, Any]:
    """The household the caller may book for; NotFound otherwise (no hint that it exists)."""
    from households import services as registry

    if p.role == Role.RESIDENT:
        if household_id in (None, ""):
            household_id = await registry.my_household_id(p)
        if not str(household_id).isdigit() or not p.is_linked(LinkKind.HOUSEHOLD, household_id):
            raise NotFound()
        row = await Household.select().where(Household.id == int(household_id)).first()
        if row is None:
            raise NotFound()
    elif _is_staff(p):
        if not str(household_id).isdigit():
            raise ValidationFailed.field("household_id", N_("Choose the household to book for."))
        row = await registry.staff_household(p, int(household_id))
    else:
        raise PermissionDenied()
    if row["erased_at"] is not None or row["status"] != "active":
        raise ValidationFailed.field("household_id", N_("This household is not receiving assistance now."))
    if row["level"] not in NEED_LEVELS:
        raise ValidationFailed.field(
            "household_id", N_("This household has no need level yet; its steward sets one first.")
        )
    return dict(row)


async def _category(raw: Any) -> dict[str, Any]:
    query = Category.select().where(Category.is_active == True)  # noqa: E712 - a SQL comparison
    if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
        row = await query.where(Category.id == int(raw)).first()
    else:
        row = await query.where(Category.code == str(raw or "")).first()
    if row is None:
        raise ValidationFailed.field("category", N_("Choose a service."))
    return dict(row)


async def _offering(raw: Any, category_id: int, community_id: int) -> dict[str, Any] | None:
    """The provider's offering the resident chose, if it serves this community; None for any."""
    if raw in (None, ""):
        return None
    if not str(raw).isdigit():
        raise ValidationFailed.field("offering_id", N_("Choose a provider from the list."))
    row = (
        await Offering.select(Offering.id, Offering.credit_cost, Offering.provider)
        .where(
            (Offering.id == int(str(raw)))
            & (Offering.category == category_id)
            & (Offering.is_active == True)  # noqa: E712
            & (Offering.provider.status == "verified")
            & (Offering.provider.is_active == True)  # noqa: E712
            & Offering.id.is_in(
                ServiceArea.select(ServiceArea.offering).where(ServiceArea.community == community_id)
            )
        )
        .first()
    )
    if row is None:
        raise ValidationFailed.field(
            "offering_id", N_("This provider does not offer this service in the household's community.")
        )
    return dict(row)


# -- quote -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """What a service costs a household now, and what it has to pay with."""

    household_id: int
    community_id: int
    level: int
    category_id: int
    category_code: str
    service: str
    routing: str
    offering_id: int | None
    credits: int
    available: int
    accept_minutes: int
    service_hours: int

    @property
    def affordable(self) -> bool:
        return self.credits <= self.available


async def _quote(household: Mapping[str, Any], category: Mapping[str, Any], offering_raw: Any) -> Quote:
    level = int(household["level"])
    policy = await current_policy(level)
    service = localized(category, "name", current_locale.get())
    if policy is None:
        raise NotCovered(service=service, level=level)
    offering = await _offering(offering_raw, category["id"], household["community"])
    standard = int(category["credit_cost"])
    if offering is not None and 0 < offering["credit_cost"] < standard:
        standard = int(offering["credit_cost"])  # the provider asks less than the standard cost
    cost = credit_cost(category["code"], standard, policy.terms.cost_rules)
    if cost is None:
        raise NotCovered(service=service, level=level)
    return Quote(
        household_id=household["id"],
        community_id=household["community"],
        level=level,
        category_id=category["id"],
        category_code=category["code"],
        service=service,
        routing=category["routing"],
        offering_id=offering["id"] if offering else None,
        credits=cost,
        available=(await credits.balance(household["id"])).available,
        accept_minutes=policy.terms.accept_minutes,
        service_hours=policy.terms.service_hours,
    )


async def quote(p: Principal, *, category: Any, household_id: Any = None, offering_id: Any = None) -> Quote:
    """What ``category`` (a code or an id) costs the household by its level's cost rules.

    NotCovered when the level's policy excludes the category.
    """
    household = await _household(p, household_id)
    return await _quote(household, await _category(category), offering_id)


# -- consent codes ---------------------------------------------------------------------------------


def _hash(consent_id: int, code: str) -> str:
    return crypto.blind_index(f"{consent_id}:{code}", CODE_CONTEXT)


def _matches(consent_id: int, code: str, stored: str) -> bool:
    return bool(stored) and any(
        hmac.compare_digest(candidate, stored)
        for candidate in crypto.blind_indexes(f"{consent_id}:{code}", CODE_CONTEXT)
    )


async def consent_phone(household_id: int) -> str | None:
    """Where a consent code goes: the mobile of a member who uses a phone, else the household's
    mobile; None when nobody uses a phone or no mobile is on record."""
    members = await _phones(household_id)
    if not any(member["can_use_phone"] for member in members):
        return None
    return await _mobile_of(household_id, members)


async def household_mobile(household_id: int) -> str | None:
    """A mobile number that reaches the household by SMS: a member who uses a phone first, then
    the household's own number; None when only landlines are on record."""
    return await _mobile_of(household_id, await _phones(household_id))


async def _phones(household_id: int) -> list[dict[str, Any]]:
    return list(
        await Member.select(Member.phone, Member.can_use_phone)
        .where(Member.household == household_id)
        .order_by(Member.id)
    )


async def _mobile_of(household_id: int, members: list[dict[str, Any]]) -> str | None:
    for member in members:
        if member["can_use_phone"] and MOBILE_RE.match(member["phone"] or ""):
            return str(member["phone"])
    household = await Household.select(Household.phone).where(Household.id == household_id).first()
    phone = str(household["phone"]) if household and household["phone"] else ""
    return phone if MOBILE_RE.match(phone) else None


async def _uses_a_phone(household_id: int) -> bool:
    return bool(
        await Member.exists().where((Member.household == household_id) & (Member.can_use_phone == True))  # noqa: E712
    )


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


async def request_consent(p: Principal, household_id: int) -> dict[str, Any]:
    """Text the household a one-time code for a booking on its behalf; where it went (masked) and its id."""
    if not _is_staff(p):
        raise PermissionDenied()
    household = await _household(p, household_id)
    phone = await consent_phone(household["id"])
    if phone is None:
        raise ValidationFailed.field(
            "consent_method",
            N_("Nobody in this household uses a phone: write your attestation of their consent instead."),
        )
    await ratelimit.check("consent-household", str(household["id"]), *CODES_PER_HOUSEHOLD)
    from notifications.events import Event
    from notifications.services import notify

    steward = await User.select(User.display_name).where(User.id == p.user_id).first()
    now = clock.now()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    async with db.atomic():
        # A new code replaces this steward's earlier one for the household.
        await ConsentCode.update({ConsentCode.expires_at: now}).where(
            (ConsentCode.household == household["id"])
            & (ConsentCode.steward == p.user_id)
            & ConsentCode.used_at.is_null()
            & (ConsentCode.expires_at > now)
        )
        row = ConsentCode(
            household=household["id"],
            steward=p.user_id,
            phone=phone,
            code_hash="",
            expires_at=now + timedelta(minutes=CODE_MINUTES),
            created_at=now,
        )
        await ConsentCode.insert(row)
        await ConsentCode.update({ConsentCode.code_hash: _hash(row.id, code)}).where(ConsentCode.id == row.id)
        await notify(
            Event.CONSENT_CODE,
            [phone],
            {"code": code, "steward": steward["display_name"] if steward else "", "minutes": CODE_MINUTES},
            dedupe_key=f"consent:{row.id}",
            urgent=True,
        )
        await audit.record(
            "order.consent_requested", principal=p, target_type="household", target_id=household["id"]
        )
    return {"consent_id": row.id, "phone": mask_phone(phone), "minutes": CODE_MINUTES}


async def _check_code(p: Principal, household_id: int, raw_id: Any, raw_code: Any) -> int:
    """The consent row the code opens; a wrong code uses up one try (committed on its own)."""
    code = "".join(str(raw_code or "").split())
    if not (code.isdigit() and len(code) == CODE_DIGITS):
        raise ValidationFailed.field("consent_code", N_("Enter the 6-digit code the resident reads to you."))
    if not str(raw_id or "").isdigit():
        raise ValidationFailed.field("consent_code", N_("Send a code to the household first."))
    row = (
        await ConsentCode.select()
        .where(
            (ConsentCode.id == int(str(raw_id)))
            & (ConsentCode.household == household_id)
            & (ConsentCode.steward == p.user_id)
        )
        .first()
    )
    if row is None or row["used_at"] is not None:
        raise ValidationFailed.field("consent_code", N_("This code is no longer valid. Send a new code."))
    if row["expires_at"] <= clock.now():
        raise ValidationFailed.field("consent_code", N_("This code has expired. Send a new code."))
    counted = (
        await ConsentCode.update({ConsentCode.attempts: ConsentCode.attempts + 1})
        .where((ConsentCode.id == row["id"]) & (ConsentCode.attempts < MAX_ATTEMPTS))
        .returning(ConsentCode.attempts)
    )
    if not counted:
        raise ValidationFailed.field("consent_code", N_("Too many wrong codes. Send a new code."))
    if not _matches(row["id"], code, row["code_hash"]):
        left = MAX_ATTEMPTS - counted[0]["attempts"]
        if left <= 0:
            raise ValidationFailed.field("consent_code", N_("Too many wrong codes. Send a new code."))
        raise ValidationFailed.field("consent_code", N_("This code is not right. Tries left: %(n)s."), n=left)
    return int(row["id"])


# -- booking ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placement:
    quote: Quote
    start: datetime
    end: datetime
    notes: str
    channel: str
    booked_by: int | None
    consent_method: str = ""
    consent_note: str = ""
    consent_id: int | None = None
    source_key: str | None = None


def _notes(data: Mapping[str, Any]) -> str:
    notes = str(data.get("notes") or "").strip()
    if len(notes) > MAX_NOTES:
        raise ValidationFailed.field("notes", N_("Write at most %(n)s characters."), n=MAX_NOTES)
    return notes


async def book(p: Principal, data: Mapping[str, Any]) -> dict[str, Any]:
    """Book a service; returns the new order row.

    ``data``: ``category`` (code or id), ``window_start``, ``window_end`` (ISO datetimes or
    datetimes; naive ones are local time), ``notes``, optionally ``offering_id``; a steward adds
    ``household_id`` and the consent: ``consent_method`` ``sms_code`` with ``consent_id`` and
    ``consent_code``, or ``attestation`` with ``consent_note``.  Field errors come together;
    CreditsExhausted says the cost and the balance.
    """
    household = await _household(p, data.get("household_id"))
    errors: list[FieldError] = []
    category: dict[str, Any] | None = None
    window: tuple[datetime, datetime] | None = None
    notes = ""
    try:
        category = await _category(data.get("category"))
    except ValidationFailed as exc:
        errors += exc.errors
    try:
        window = check_window(
            data.get("window_start"),
            data.get("window_end"),
            now=clock.now(),
            days_ahead=get_settings().booking_days_ahead,
        )
    except ValidationFailed as exc:
        errors += exc.errors
    try:
        notes = _notes(data)
    except ValidationFailed as exc:
        errors += exc.errors
    if errors or category is None or window is None:
        raise ValidationFailed(errors=errors)
    price = await _quote(household, category, data.get("offering_id"))
    if price.credits > price.available:
        raise credits.CreditsExhausted(cost=price.credits, balance=price.available)
    consent_method, consent_note, consent_id = "", "", None
    channel = Channel.APP
    if p.role != Role.RESIDENT:
        channel = Channel.STEWARD
        consent_method = str(data.get("consent_method") or "")
        if consent_method == Consent.SMS_CODE:
            consent_id = await _check_code(
                p, household["id"], data.get("consent_id"), data.get("consent_code")
            )
        elif consent_method == Consent.ATTESTATION:
            consent_note = str(data.get("consent_note") or "").strip()[:2000]
            if await _uses_a_phone(household["id"]):
                raise ValidationFailed.field(
                    "consent_method",
                    N_("Someone in this household uses a phone: send them a code to confirm instead."),
                )
            if len(consent_note) < MIN_ATTESTATION:
                raise ValidationFailed.field(
                    "consent_note",
                    N_("Write who agreed, when and how (at least %(n)s characters)."),
                    n=MIN_ATTESTATION,
                )
        else:
            raise ValidationFailed.field(
                "consent_method", N_("Record how the household agreed: a texted code or your attestation.")
            )
    return await _place(
        p,
        _Placement(
            quote=price,
            start=window[0],
            end=window[1],
            notes=notes,
            channel=channel,
            booked_by=p.user_id,
            consent_method=consent_method,
            consent_note=consent_note,
            consent_id=consent_id,
        ),
    )


async def _place(p: Principal | None, placement: _Placement) -> dict[str, Any]:
    """Write the order, its first event, the reservation and the routing message, in one transaction."""
    from orders import tasks

    price = placement.quote
    now = clock.now()
    async with db.atomic():
        if placement.consent_id is not None:
            used = (
                await ConsentCode.update({ConsentCode.used_at: now})
                .where((ConsentCode.id == placement.consent_id) & ConsentCode.used_at.is_null())
                .returning(ConsentCode.id)
            )
            if not used:
                raise ValidationFailed.field(
                    "consent_code", N_("This code is no longer valid. Send a new code.")
                )
        order = Order(
            number=f"new-{uuid.uuid4().hex[:20]}",
            household=price.household_id,
            community=price.community_id,
            level=price.level,
            category=price.category_id,
            requested_offering=price.offering_id,
            routing=price.routing,
            state=lifecycle.State.SUBMITTED.value,
            window_start=placement.start,
            window_end=placement.end,
            notes=placement.notes,
            channel=placement.channel,
            source_key=placement.source_key,
            booked_by=placement.booked_by,
            consent_method=placement.consent_method,
            consent_note=placement.consent_note,
            credits=price.credits,
            accept_by=now + timedelta(minutes=price.accept_minutes),
            serve_by=max(now + timedelta(hours=price.service_hours), placement.end),
            submitted_at=now,
            updated_at=now,
        )
        await Order.insert(order)
        number = order_number(order.id, now)
        await Order.update({Order.number: number}).where(Order.id == order.id)
        if placement.consent_id is not None:
            await ConsentCode.update({ConsentCode.order: order.id}).where(
                ConsentCode.id == placement.consent_id
            )
        await credits.reserve(price.household_id, order.id, price.credits, by_user=placement.booked_by)
        await moves.record(
            order.id,
            "submit",
            actor=placement.booked_by,
            to_state=lifecycle.State.SUBMITTED.value,
            note=placement.notes,
            detail={
                "channel": placement.channel,
                "credits": price.credits,
                "consent": placement.consent_method,
            },
        )
        # Level 1 orders are routed on a queue of their own, never behind a backlog of others.
        router = tasks.route_order_urgent if price.level == URGENT_LEVEL else tasks.route_order
        await outbox.send(router, order.id)
        await audit.record(
            "order.booked",
            principal=p,
            user_id=placement.booked_by,
            target_type="order",
            target_id=order.id,
            household=price.household_id,
            channel=placement.channel,
            credits=price.credits,
        )
        row = await Order.select().where(Order.id == order.id).first()
        if row is None:
            raise RuntimeError("the order just written is missing")
    log.info(
        "order booked",
        extra={
            "order_id": order.id,
            "level": price.level,
            "channel": placement.channel,
            "credits": price.credits,
        },
    )
    return dict(row)


async def book_for_warning(
    household_id: int,
    category_code: str,
    *,
    start: datetime,
    end: datetime,
    note: str,
    key: str,
    by_user: int | None,
) -> dict[str, Any]:
    """Book a service a steward decided on when handling a warning (consent was the home visit).

    Keyed by ``key``: a second call returns the order the first one made.
    """
    existing = await Order.select().where(Order.source_key == key).first()
    if existing is not None:
        return dict(existing)
    household = await Household.select().where(Household.id == household_id).first()
    if household is None:
        raise NotFound()
    if household["level"] not in NEED_LEVELS:
        raise ValidationFailed.field(
            "household_id", N_("This household has no need level yet; its steward sets one first.")
        )
    price = await _quote(household, await _category(category_code), None)
    if price.credits > price.available:
        raise credits.CreditsExhausted(cost=price.credits, balance=price.available)
    return await _place(
        None,
        _Placement(
            quote=price,
            start=start,
            end=end,
            notes=note[:MAX_NOTES],
            channel=Channel.WARNING,
            booked_by=by_user,
            consent_method=Consent.VISIT,
            source_key=key[:80],
        ),
    )


# -- cancelling ------------------------------------------------------------------------------------


async def _may_change(p: Principal, order: Mapping[str, Any]) -> None:
    """Residents of the household and staff of its community; NotFound for anyone else."""
    from households import services as registry

    if p.role == Role.RESIDENT and p.is_linked(LinkKind.HOUSEHOLD, order["household"]):
        return
    if _is_staff(p) and registry.in_scope(p, order["community"]):
        return
    raise NotFound()


async def cancel(p: Principal, order_id: int, *, reason: str, version: int | None = None) -> dict[str, Any]:
    """Cancel an order before its service starts: credits released, a provider's slot given back."""
    order = await Order.select().where(Order.id == order_id).first()
    if order is None:
        raise NotFound()
    await _may_change(p, order)
    reason = (reason or "").strip()[:1000]
    if len(reason) < MIN_REASON:
        raise ValidationFailed.field("reason", N_("Say why the order is cancelled."))
    now = clock.now()
    async with db.atomic():
        current = (
            await Order.select(Order.state, Order.version, Order.offering).where(Order.id == order_id).first()
        )
        if current is None:
            raise NotFound()
        if version is not None and current["version"] != version:
            raise lifecycle.IllegalMove(moves.CHANGED_MEANWHILE)
        row = await moves.move(
            order_id,
            "cancel",
            actor=p.user_id,
            note=reason,
            detail={"by_role": str(p.role)},
            values={"cancel_reason": reason, "closed_at": now},
            version=current["version"],
        )
        await credits.release(order_id, note=reason, by_user=p.user_id)
        if current["state"] in lifecycle.HOLDS_CAPACITY and current["offering"] is not None:
            await load.release(current["offering"])
        await Offer.update({Offer.state: "withdrawn", Offer.answered_at: now}).where(
            (Offer.order == order_id) & (Offer.state == "open")
        )
        await audit.record("order.cancelled", principal=p, target_type="order", target_id=order_id)
    return row
