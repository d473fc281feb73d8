"""Request and response bodies of the orders API (they document the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta, Struct, field

from marketplace.pagination import Page


class OrderSummary(Struct, kw_only=True):
    id: int
    number: str
    state: str
    state_label: str
    level: int
    category: str
    category_name: str
    community_id: int
    community_name: str
    provider_id: int | None
    provider_name: str
    window_start: datetime
    window_end: datetime
    submitted_at: datetime
    updated_at: datetime
    credits: int
    channel: str
    sla_missed: bool
    escalation_reason: str
    dispute: str
    rating: int | None
    version: int


class OrderPage(Struct, kw_only=True):
    items: list[OrderSummary]
    page: int
    per_page: int
    total: int
    pages: int


class StepOut(Struct, kw_only=True):
    label: str
    status: Annotated[str, Meta(description="done, current or todo")]
    at: datetime | None


class EventOut(Struct, kw_only=True):
    kind: str
    label: str
    at: datetime
    to_state: str
    note: str
    actor: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class OfferOut(Struct, kw_only=True):
    id: int
    provider_id: int
    provider_name: str
    round: int
    rank: int
    score: float
    reasons: list[dict[str, Any]]
    mode: str
    state: str
    state_label: str
    offered_at: datetime
    expires_at: datetime
    answered_at: datetime | None
    decline_reason: str


class HouseholdOnOrder(Struct, kw_only=True):
    """What the caller may see of the household: providers get the address only once they serve."""

    community_name: str
    address: str | None = None
    phone: str | None = None
    contact_name: str | None = None
    id: int | None = None
    code: str | None = None
    category: Annotated[str | None, Meta(description="Assistance category: stewards and admins only")] = None


class OrderOut(Struct, kw_only=True):
    order: OrderSummary
    notes: str
    worker_name: str
    consent_method: str
    accept_by: datetime | None
    serve_by: datetime | None
    accepted_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    confirmed_at: datetime | None
    cancel_reason: str
    rating_comment: str
    dispute_note: str
    household: HouseholdOnOrder
    steps: list[StepOut]
    events: list[EventOut]
    offers: list[OfferOut]


class OfferSummary(Struct, kw_only=True):
    id: int
    order_id: int
    number: str
    level: int
    order_state: str
    category: str
    category_name: str
    community_name: str
    window_start: datetime
    window_end: datetime
    credits: int
    mode: str
    state: str
    offered_at: datetime
    expires_at: datetime
    answered_at: datetime | None


class OfferPage(Struct, kw_only=True):
    items: list[OfferSummary]
    page: int
    per_page: int
    total: int
    pages: int


# -- writes ---------------------------------------------------------------------------------------


class BookIn(Struct, kw_only=True):
    """A booking: by a resident for their household, or by a steward for one of their households."""

    category: Annotated[str, Meta(description="Service category code, as on the catalog shelves")]
    window_start: datetime
    window_end: datetime
    notes: str = ""
    offering_id: Annotated[int | None, Meta(description="A provider's offering chosen on the shelves")] = None
    household_id: Annotated[int | None, Meta(description="Stewards: the household booked for")] = None
    consent_method: Annotated[str, Meta(description="Stewards: sms_code, attestation or visit")] = ""
    consent_code: Annotated[str, Meta(description="Stewards: the code texted to the resident")] = ""
    consent_note: Annotated[str, Meta(description="Stewards: how the resident agreed (attestation)")] = ""


class ConsentCodeIn(Struct, kw_only=True):
    household_id: int


class ReasonIn(Struct, kw_only=True):
    reason: str = ""


class AssignIn(Struct, kw_only=True):
    worker_id: int


class NoteIn(Struct, kw_only=True):
    note: str = ""


class ConfirmIn(Struct, kw_only=True):
    rating: Annotated[int, Meta(ge=1, le=5)] | None = None
    comment: str = ""


class CodeIn(Struct, kw_only=True):
    code: Annotated[str, Meta(description="The 6-digit code texted to the resident at check-out")]


class SmsInboundIn(Struct, kw_only=True):
    """A text a resident sent, as the SMS gateway forwards it (mirrors what we POST to it)."""

    id: Annotated[str, Meta(description="The gateway's message id: a message sent twice is handled once")] = (
        ""
    )
    sender: Annotated[str, Meta(description="The sender's mobile, e.g. +8613712345678")] = field(name="from")
    text: Annotated[
        str, Meta(description="What the resident wrote: the 6-digit code, then a rating 1–5 if any")
    ]
    received_at: Annotated[
        str | float | None,
        Meta(description="When the gateway got it (ISO 8601 or Unix seconds); informational"),
    ] = None


class SmsInboundOut(Struct, kw_only=True):
    id: Annotated[str, Meta(description="The gateway's message id")]
    outcome: Annotated[
        str,
        Meta(
            description="confirmed, not_understood, unknown_sender, no_order, wrong_code or rate_limited; "
            "nothing changes unless confirmed"
        ),
    ]
    order: Annotated[str | None, Meta(description="The number of the order confirmed")] = None
    reply: Annotated[str, Meta(description="A short text the gateway may send back to the resident")] = ""


class SettleIn(Struct, kw_only=True):
    upheld: Annotated[bool, Meta(description="True gives the credits back to the household")]
    note: str


class DispatchIn(Struct, kw_only=True):
    offering_id: int
    reason: str
    capacity_override: bool = False


class ActionOut(Struct, kw_only=True):
    """The order after an action."""

    id: int
    number: str
    state: str
    state_label: str
    version: int


class CreditEntryOut(Struct, kw_only=True):
    id: int
    at: datetime
    kind: str
    kind_label: str
    amount: int
    reserved_change: int
    order_id: int | None
    note: str


class CreditsOut(Struct, kw_only=True):
    household_id: int
    available: int
    reserved: int
    entries: list[CreditEntryOut]


class SettlementOut(Struct, kw_only=True):
    id: int
    month: str
    provider_id: int
    provider_name: str
    orders_count: int
    credits: int
    state: str
    closed_at: datetime | None


def summary_out(row: dict[str, Any]) -> OrderSummary:
    return OrderSummary(
        id=row["id"],
        number=row["number"],
        state=row["state"],
        state_label=row["state_label"],
        level=row["level"],
        category=row["category_code"],
        category_name=row["category_name"],
        community_id=row["community"],
        community_name=row["community_name"] or "",
        provider_id=row["provider"],
        provider_name=row.get("provider_name") or "",
        window_start=row["window_start"],
        window_end=row["window_end"],
        submitted_at=row["submitted_at"],
        updated_at=row["updated_at"],
        credits=row["credits"],
        channel=row["channel"],
        sla_missed=bool(row["sla_missed"]),
        escalation_reason=row["escalation_reason"],
        dispute=row["dispute"],
        rating=row["rating"],
        version=row["version"],
    )


def order_page(result: Page) -> OrderPage:
    return OrderPage(
        items=[summary_out(row) for row in result.items],
        page=result.page,
        per_page=result.per_page,
        total=result.total,
        pages=result.pages,
    )


def order_out(detail: dict[str, Any]) -> OrderOut:
    order = detail["order"]
    household = detail["household"]
    return OrderOut(
        order=summary_out(order),
        notes=order["notes"],
        worker_name=order.get("worker_name") or "",
        consent_method=order["consent_method"],
        accept_by=order["accept_by"],
        serve_by=order["serve_by"],
        accepted_at=order["accepted_at"],
        started_at=order["started_at"],
        completed_at=order["completed_at"],
        confirmed_at=order["confirmed_at"],
        cancel_reason=order["cancel_reason"],
        rating_comment=order["rating_comment"],
        dispute_note=order["dispute_note"],
        household=HouseholdOnOrder(**household),
        steps=[StepOut(label=s.label, status=s.status, at=s.at) for s in detail["steps"]],
        events=[
            EventOut(
                kind=e.kind,
                label=e.label,
                at=e.at,
                to_state=e.to_state,
                note=e.note,
                actor=e.actor,
                detail=e.detail,
            )
            for e in detail["events"]
        ],
        offers=[
            OfferOut(
                id=o["id"],
                provider_id=o["provider"],
                provider_name=o["provider_name"],
                round=o["round"],
                rank=o["rank"],
                score=o["score"],
                reasons=o["reasons"],
                mode=o["mode"],
                state=o["state"],
                state_label=o["state_label"],
                offered_at=o["offered_at"],
                expires_at=o["expires_at"],
                answered_at=o["answered_at"],
                decline_reason=o["decline_reason"],
            )
            for o in detail["offers"]
        ],
    )


def offer_page(result: Page) -> OfferPage:
    return OfferPage(
        items=[
            OfferSummary(
                id=r["id"],
                order_id=r["order"],
                number=r["number"],
                level=r["level"],
                order_state=r["order_state"],
                category=r["category_code"],
                category_name=r["category_name"],
                community_name=r["community_name"],
                window_start=r["window_start"],
                window_end=r["window_end"],
                credits=r["credits"],
                mode=r["mode"],
                state=r["state"],
                offered_at=r["offered_at"],
                expires_at=r["expires_at"],
                answered_at=r["answered_at"],
            )
            for r in result.items
        ],
        page=result.page,
        per_page=result.per_page,
        total=result.total,
        pages=result.pages,
    )


class ConsentOut(Struct, kw_only=True):
    """Where the consent code went (masked) and the id to book with."""

    consent_id: int
    phone: str
    minutes: int


class SettlementPage(Struct, kw_only=True):
    items: list[SettlementOut]
    page: int
    per_page: int
    total: int
    pages: int


def credits_out(context: dict[str, Any]) -> CreditsOut:
    balance = context["balance"]
    return CreditsOut(
        household_id=context["household_id"],
        available=balance.available,
        reserved=balance.reserved,
        entries=[
            CreditEntryOut(
                id=e["id"],
                at=e["at"],
                kind=e["kind"],
                kind_label=e["kind_label"],
                amount=e["amount"],
                reserved_change=e["reserved_change"],
                order_id=e["order"],
                note=e["note"],
            )
            for e in context["entries"]
        ],
    )


def settlement_page(result: Page) -> SettlementPage:
    return SettlementPage(
        items=[
            SettlementOut(
                id=r["id"],
                month=r["month"],
                provider_id=r["provider"],
                provider_name=r["provider_name"] or "",
                orders_count=r["orders_count"],
                credits=r["credits"],
                state=r["state"],
                closed_at=r["closed_at"],
            )
            for r in result.items
        ],
        page=result.page,
        per_page=result.per_page,
        total=result.total,
        pages=result.pages,
    )
