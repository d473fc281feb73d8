"""What each role may see of orders: lists with filters, sorting and pages, and one order's detail.

Reach (who sees which orders) is decided here and only here:

- a resident: the orders of the household they act for;
- provider staff and volunteers: the orders their provider was offered or won — never the
  household's assistance category or ID numbers, and the address and phone only while their
  provider holds the accepted order;
- a steward: the orders of the communities they are linked to;
- an administrator: all orders.

An order beyond the caller's reach is answered as NotFound (404), never 403.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from households.services import category_label
from households.tables import Community, Household, Member
from marketplace import audit, clock
from marketplace.auth import LinkKind, Principal, Role
from marketplace.catalog import localized
from marketplace.errors import DomainError, NotFound
from marketplace.i18n import N_, current_locale, gettext
from marketplace.pagination import Page, paginate
from marketplace.tables import Category, User
from orders import lifecycle
from orders.lifecycle import State
from orders.tables import Offer, Order, OrderEvent
from providers.tables import Provider, Worker


class Reach(StrEnum):
    ALL = "all"
    HOUSEHOLD = "household"
    PROVIDER = "provider"
    COMMUNITY = "community"


@dataclass(frozen=True)
class Scope:
    """Which orders a caller reaches: all, or those of some households, providers or communities."""

    reach: Reach
    ids: frozenset[int] = frozenset()

    @property
    def empty(self) -> bool:
        return self.reach != Reach.ALL and not self.ids


def _ids(p: Principal, kind: LinkKind) -> frozenset[int]:
    return frozenset(int(ref) for ref in p.linked(kind) if ref.isdigit())


def scope_of(p: Principal) -> Scope:
    """The orders ``p`` reaches; integration clients reach none here."""
    if p.client_id is not None or p.role is None:
        return Scope(Reach.HOUSEHOLD)
    if p.role == Role.ADMIN:
        return Scope(Reach.ALL)
    if p.role == Role.RESIDENT:
        return Scope(Reach.HOUSEHOLD, _ids(p, LinkKind.HOUSEHOLD))
    if p.role in (Role.PROVIDER_STAFF, Role.VOLUNTEER):
        return Scope(Reach.PROVIDER, _ids(p, LinkKind.PROVIDER))
    return Scope(Reach.COMMUNITY, _ids(p, LinkKind.COMMUNITY))


def _scope_where(scope: Scope) -> Any:
    """The WHERE condition of a scope (None: everything)."""
    ids = sorted(scope.ids)
    if scope.reach == Reach.ALL:
        return None
    if scope.reach == Reach.HOUSEHOLD:
        return Order.household.is_in(ids)
    if scope.reach == Reach.COMMUNITY:
        return Order.community.is_in(ids)
    offered = Offer.select(Offer.order).where(Offer.provider.is_in(ids))
    return Order.provider.is_in(ids) | Order.id.is_in(offered)


# -- lists ---------------------------------------------------------------------------------------

# State filters beyond single states: what is still under way, and what needs a steward.
OPEN = "open"
WAITING = "waiting"
STATE_FILTERS: dict[str, frozenset[State]] = {
    OPEN: frozenset(State) - lifecycle.FINAL,
    WAITING: frozenset({State.SUBMITTED, State.ROUTING, State.OFFERED}),
    **{s.value: frozenset({s}) for s in State},
}

SORTS: dict[str, Any] = {
    "submitted": Order.submitted_at,
    "window": Order.window_start,
    "level": Order.level,
    "updated": Order.updated_at,
    "number": Order.number,
}
SORT_LABELS = {
    "-submitted": N_("Newest first"),
    "window": N_("Service time, soonest first"),
    "level": N_("Most urgent first"),
    "-updated": N_("Recently changed"),
}


@dataclass
class OrderFilters:
    """What an order list is narrowed to; every field optional."""

    state: str | None = None
    category: str | None = None
    level: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    community_id: int | None = None
    q: str | None = None
    sort: str = "-submitted"

    @property
    def any_set(self) -> bool:
        return any(
            v not in (None, "")
            for v in (self.state, self.category, self.level, self.date_from, self.date_to, self.community_id)
        )


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=clock.local_zone())


def _conditions(filters: OrderFilters) -> list[Any]:
    conditions: list[Any] = []
    states = STATE_FILTERS.get(filters.state or "")
    if states is not None:
        conditions.append(Order.state.is_in(sorted(s.value for s in states)))
    if filters.category:
        conditions.append(Order.category.code == filters.category)
    if filters.level is not None:
        conditions.append(Order.level == filters.level)
    if filters.community_id is not None:
        conditions.append(Order.community == filters.community_id)
    # The day of service, in the service's time zone.
    if filters.date_from is not None:
        conditions.append(Order.window_start >= _local_midnight(filters.date_from))
    if filters.date_to is not None:
        conditions.append(Order.window_start < _local_midnight(filters.date_to + timedelta(days=1)))
    if filters.q and filters.q.strip():
        conditions.append(Order.number.ilike(f"%{filters.q.strip()}%"))
    return conditions


LIST_COLUMNS = (
    Order.id,
    Order.number,
    Order.state,
    Order.level,
    Order.household,
    Order.community,
    Order.community.name.as_alias("community_name"),
    Order.category,
    Order.category.code.as_alias("category_code"),
    Order.category.name_zh.as_alias("category_name_zh"),
    Order.category.name_en.as_alias("category_name_en"),
    Order.category.icon.as_alias("category_icon"),
    Order.provider,
    Order.provider.name.as_alias("provider_name"),
    Order.window_start,
    Order.window_end,
    Order.submitted_at,
    Order.updated_at,
    Order.credits,
    Order.channel,
    Order.sla_missed,
    Order.accept_by,
    Order.escalation_reason,
    Order.dispute,
    Order.rating,
    Order.version,
)


async def list_orders(p: Principal, filters: OrderFilters, page: int = 1, per_page: int = 20) -> Page:
    """The orders in the caller's reach, filtered, sorted and one page at a time."""
    scope = scope_of(p)
    if scope.empty:
        return Page(items=[], page=1, per_page=per_page, total=0)
    conditions = _conditions(filters)
    where = _scope_where(scope)
    if where is not None:
        conditions.append(where)
    sort = filters.sort if filters.sort.lstrip("-") in SORTS else "-submitted"
    column = SORTS[sort.lstrip("-")]
    query = Order.select(*LIST_COLUMNS).order_by(column, ascending=not sort.startswith("-"))
    query = query.order_by(Order.id, ascending=not sort.startswith("-"))
    count = Order.count()
    for condition in conditions:
        query = query.where(condition)
        count = count.where(condition)
    result = await paginate(query, count, page, per_page)
    for row in result.items:
        _label(row)
    return result


def _label(row: dict[str, Any]) -> dict[str, Any]:
    """Add the texts a page shows: the state's and the category's names in the reader's language."""
    row["state_label"] = state_label(row["state"])
    row["category_name"] = localized(
        {"name_zh": row.get("category_name_zh"), "name_en": row.get("category_name_en")},
        "name",
        current_locale.get(),
    )
    return row


def state_label(state: str) -> str:
    try:
        return gettext(lifecycle.LABELS[State(state)])
    except ValueError:
        return state


async def offers_inbox(p: Principal, *, open_only: bool = True, page: int = 1, per_page: int = 20) -> Page:
    """A provider's offers, the open ones first by expiry; nothing of the household but its community."""
    providers = _ids(p, LinkKind.PROVIDER) if p.role in (Role.PROVIDER_STAFF, Role.VOLUNTEER) else frozenset()
    if not providers:
        return Page(items=[], page=1, per_page=per_page, total=0)
    query = Offer.select(
        Offer.id,
        Offer.order,
        Offer.provider,
        Offer.mode,
        Offer.state,
        Offer.offered_at,
        Offer.expires_at,
        Offer.answered_at,
        Offer.order.number.as_alias("number"),
        Offer.order.level.as_alias("level"),
        Offer.order.state.as_alias("order_state"),
        Offer.order.window_start.as_alias("window_start"),
        Offer.order.window_end.as_alias("window_end"),
        Offer.order.credits.as_alias("credits"),
        Offer.order._.community._.name.as_alias("community_name"),
        Offer.order._.category._.code.as_alias("category_code"),
        Offer.order._.category._.name_zh.as_alias("category_name_zh"),
        Offer.order._.category._.name_en.as_alias("category_name_en"),
        Offer.order._.category._.icon.as_alias("category_icon"),
    ).where(Offer.provider.is_in(sorted(providers)))
    count = Offer.count().where(Offer.provider.is_in(sorted(providers)))
    if open_only:
        query = query.where(Offer.state == "open")
        count = count.where(Offer.state == "open")
        query = query.order_by(Offer.expires_at).order_by(Offer.id)
    else:
        query = query.order_by(Offer.offered_at, ascending=False).order_by(Offer.id, ascending=False)
    result = await paginate(query, count, page, per_page)
    for row in result.items:
        row["order_state_label"] = state_label(row["order_state"])
        row["state_label"] = gettext(OFFER_STATE_LABELS.get(row["state"], row["state"]))
        row["category_name"] = localized(
            {"name_zh": row["category_name_zh"], "name_en": row["category_name_en"]},
            "name",
            current_locale.get(),
        )
    return result


async def order_version(order_id: int) -> tuple[str, int] | None:
    """The state and version of an order now (for the live feed)."""
    row = await Order.select(Order.state, Order.version).where(Order.id == order_id).first()
    return (row["state"], row["version"]) if row else None


# -- one order -----------------------------------------------------------------------------------

# Where a provider may see the household's address and phone: while their provider serves it.
ADDRESS_STATES = frozenset({State.ACCEPTED, State.IN_SERVICE, State.COMPLETED})

EVENT_LABELS: dict[str, str] = {
    "submit": N_("Booked"),
    "book": N_("Booked"),
    "route": N_("Looking for a provider"),
    "offer": N_("Offered to a provider"),
    "escalate": N_("Passed to the steward"),
    "reroute": N_("Sent back to routing by the steward"),
    "dispatch": N_("Dispatched by the steward"),
    "accept": N_("Accepted by the provider"),
    "start": N_("Service started"),
    "complete": N_("Service completed"),
    "confirm": N_("Confirmed"),
    "cancel": N_("Cancelled"),
    "fail": N_("Not served"),
    "decline": N_("An offer was declined"),
    "offer_declined": N_("An offer was declined"),
    "offer_expired": N_("An offer timed out"),
    "expire": N_("An offer timed out"),
    "assign": N_("Worker assigned"),
    "worker_assigned": N_("Worker assigned"),
    "rate": N_("Rated"),
    "rated": N_("Rated"),
    "dispute": N_("Complaint raised"),
    "disputed": N_("Complaint raised"),
    "dispute_resolved": N_("Complaint settled"),
    "sla_missed": N_("Response target missed"),
    "sla_accept_missed": N_("Not accepted in time"),
    "sla_service_missed": N_("Not served in time"),
    "consent": N_("Resident's consent recorded"),
    "note": N_("Note"),
}
# What a resident's timeline leaves out: the machinery of routing, told once as "looking".
RESIDENT_HIDDEN = frozenset(
    {"offer_declined", "offer_expired", "decline", "expire", "offer", "sla_missed", "sla_accept_missed",
     "sla_service_missed"}
)  # fmt: skip
# What provider staff see of an order's history: its moves, not other providers' offers.
PROVIDER_KINDS = frozenset(
    {"accept", "start", "complete", "confirm", "cancel", "fail", "assign", "worker_assigned", "rate", "rated",
     "dispute", "disputed", "dispute_resolved", "dispatch"}
)  # fmt: skip

# The progress shown at the top of an order: the happy path, each step with the time it was reached.
STEPS: list[tuple[State, str, str]] = [
    (State.SUBMITTED, N_("Booked"), "submitted_at"),
    (State.ROUTING, N_("Finding a provider"), "offered_at"),
    (State.ACCEPTED, N_("Accepted"), "accepted_at"),
    (State.IN_SERVICE, N_("Being served"), "started_at"),
    (State.COMPLETED, N_("Done"), "completed_at"),
    (State.CONFIRMED, N_("Confirmed"), "confirmed_at"),
]
_STEP_OF = {
    State.SUBMITTED: 0,
    State.ROUTING: 1,
    State.OFFERED: 1,
    State.ESCALATED: 1,
    State.ACCEPTED: 2,
    State.IN_SERVICE: 3,
    State.COMPLETED: 4,
    State.CONFIRMED: 5,
}


@dataclass
class Step:
    label: str
    at: datetime | None
    status: str  # done, current, todo


def steps_of(order: dict[str, Any]) -> list[Step]:
    """The progress steps of an order (empty for a cancelled or failed one)."""
    state = State(order["state"])
    if state not in _STEP_OF:
        return []
    current = _STEP_OF[state]
    steps = []
    for index, (_, label, column) in enumerate(STEPS):
        status = "done" if index < current else "current" if index == current else "todo"
        if state == State.CONFIRMED and index == current:
            status = "done"
        steps.append(Step(gettext(label), order.get(column) if index <= current else None, status))
    return steps


def is_provider_of(p: Principal, order: dict[str, Any]) -> bool:
    return p.role in (Role.PROVIDER_STAFF, Role.VOLUNTEER) and order["provider"] in _ids(p, LinkKind.PROVIDER)


def shows_address(p: Principal, order: dict[str, Any]) -> bool:
    """Whether the caller sees the household's address and phone on this order."""
    if p.role in (Role.PROVIDER_STAFF, Role.VOLUNTEER):
        return is_provider_of(p, order) and order["state"] in ADDRESS_STATES
    return True


async def visible_order(p: Principal, order_id: int) -> dict[str, Any]:
    """The order row if the caller reaches it; NotFound otherwise."""
    scope = scope_of(p)
    if scope.empty:
        raise NotFound()
    query = Order.select(
        *Order.all_columns(),
        Order.community.name.as_alias("community_name"),
        Order.category.code.as_alias("category_code"),
        Order.category.name_zh.as_alias("category_name_zh"),
        Order.category.name_en.as_alias("category_name_en"),
        Order.category.icon.as_alias("category_icon"),
        Order.category.unit.as_alias("category_unit"),
        Order.provider.name.as_alias("provider_name"),
        Order.provider.contact_phone.as_alias("provider_phone"),
        Order.worker.name.as_alias("worker_name"),
        Order.worker.phone.as_alias("worker_phone"),
    ).where(Order.id == order_id)
    where = _scope_where(scope)
    if where is not None:
        query = query.where(where)
    row = await query.first()
    if row is None:
        raise NotFound()
    return _label(row)


async def order_detail(p: Principal, order_id: int) -> dict[str, Any]:
    """One order as the caller may see it: the order, progress, timeline, offers and the household."""
    order = await visible_order(p, order_id)
    provider_view = p.role in (Role.PROVIDER_STAFF, Role.VOLUNTEER)
    mine = _ids(p, LinkKind.PROVIDER) if provider_view else frozenset()
    if provider_view and order["provider"] not in mine:
        # Offered, not (or not yet) theirs: no worker, no other provider's name.
        order.update(provider_name="", provider_phone="", worker_name="", worker_phone="")
    household = await household_for(p, order)
    offers = await _offers(order_id, mine if provider_view else None)
    events = await _events(p, order, offers)
    actions = actions_for(p, order, offers)
    workers = await worker_choices(p, order) if actions.assign else []
    return {
        "order": order,
        "worker_options": [(str(w["id"]), w["name"]) for w in workers],
        "steps": steps_of(order),
        "events": events,
        "offers": offers,
        "household": household,
        "shows_address": household.get("address") is not None,
        "actions": actions,
    }


async def household_for(p: Principal, order: dict[str, Any]) -> dict[str, Any]:
    """What of the household the caller may see on this order (never an ID number)."""
    row = (
        await Household.select(
            Household.id, Household.code, Household.address, Household.phone, Household.category
        )
        .where(Household.id == order["household"])
        .first()
    )
    if row is None:  # pragma: no cover - the foreign key keeps it
        raise NotFound()
    head = (
        await Member.select(Member.name)
        .where(Member.household == row["id"])
        .where(Member.relation == "head")
        .order_by(Member.id)
        .first()
    )
    name = head["name"] if head else ""
    if p.role in (Role.PROVIDER_STAFF, Role.VOLUNTEER):
        if not shows_address(p, order):
            return {"community_name": order["community_name"], "address": None}
        # The provider serving the order reads the address: a read of personal data by staff.
        await audit.record(
            "order.address_read", principal=p, target_type="household", target_id=row["id"], order=order["id"]
        )
        return {
            "community_name": order["community_name"],
            "address": row["address"],
            "phone": row["phone"],
            "contact_name": name,
        }
    result = {
        "community_name": order["community_name"],
        "address": row["address"],
        "phone": row["phone"],
        "contact_name": name,
    }
    if p.role in (Role.STEWARD, Role.ADMIN):
        result.update(id=row["id"], code=row["code"], category=category_label(row["category"]))
    return result


async def _offers(order_id: int, providers: frozenset[int] | None) -> list[dict[str, Any]]:
    """The order's offers: all with their ranking reasons for staff, only their own for a provider."""
    query = (
        Offer.select(
            Offer.id,
            Offer.provider,
            Offer.provider.name.as_alias("provider_name"),
            Offer.round,
            Offer.rank,
            Offer.score,
            Offer.reasons,
            Offer.mode,
            Offer.state,
            Offer.offered_at,
            Offer.expires_at,
            Offer.answered_at,
            Offer.decline_reason,
        )
        .where(Offer.order == order_id)
        .order_by(Offer.offered_at)
        .order_by(Offer.id)
    )
    if providers is not None:
        if not providers:
            return []
        query = query.where(Offer.provider.is_in(sorted(providers)))
    rows = await query
    for row in rows:
        row["reasons"] = [_reason(r) for r in _json(row["reasons"], [])]
        row["state_label"] = gettext(OFFER_STATE_LABELS.get(row["state"], row["state"]))
    return rows


def _reason(reason: dict[str, Any]) -> dict[str, Any]:
    """A ranking reason with its sentence in the reader's language."""
    text = str(reason.get("text") or reason.get("factor") or "")
    params = reason.get("params") or {}
    try:
        reason["text"] = gettext(text, **params) if params else gettext(text)
    except (KeyError, TypeError, ValueError):
        reason["text"] = text
    return reason


OFFER_STATE_LABELS = {
    "open": N_("Waiting for an answer"),
    "accepted": N_("Accepted"),
    "declined": N_("Declined"),
    "expired": N_("Timed out"),
    "lost": N_("Taken by another provider"),
    "withdrawn": N_("Withdrawn"),
}


def _json(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value if value is not None else default


@dataclass
class TimelineItem:
    kind: str
    label: str
    at: datetime
    note: str = ""
    actor: str = ""
    to_state: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


async def _events(p: Principal, order: dict[str, Any], offers: list[dict[str, Any]]) -> list[TimelineItem]:
    rows = await (
        OrderEvent.select(
            OrderEvent.kind,
            OrderEvent.at,
            OrderEvent.note,
            OrderEvent.to_state,
            OrderEvent.detail,
            OrderEvent.actor.display_name.as_alias("actor_name"),
            OrderEvent.actor.role.as_alias("actor_role"),
        )
        .where(OrderEvent.order == order["id"])
        .order_by(OrderEvent.at)
        .order_by(OrderEvent.id)
    )
    staff = p.role in (Role.STEWARD, Role.ADMIN)
    provider_view = p.role in (Role.PROVIDER_STAFF, Role.VOLUNTEER)
    since = min((o["offered_at"] for o in offers), default=None) if provider_view else None
    items = []
    for row in rows:
        kind = row["kind"]
        if p.role == Role.RESIDENT and kind in RESIDENT_HIDDEN:
            continue
        if provider_view and (kind not in PROVIDER_KINDS or since is None or row["at"] < since):
            continue
        if provider_view and not is_provider_of(p, order) and kind != "cancel":
            continue
        items.append(
            TimelineItem(
                kind=kind,
                label=gettext(EVENT_LABELS.get(kind, kind)),
                at=row["at"],
                # A provider's people are named to the household; staff see who did what.
                note=row["note"]
                if (staff or kind in ("cancel", "fail", "dispute", "disputed", "complete"))
                else "",
                actor=row["actor_name"] or "" if staff else "",
                to_state=row["to_state"],
                detail=_json(row["detail"], {}) if staff else {},
            )
        )
    return items


# -- options for filter forms ------------------------------------------------------------------


async def filter_options(p: Principal) -> dict[str, Any]:
    """The choices of the list filters: states, categories, levels, the caller's communities, sorts."""
    categories = await Category.select(Category.code, Category.name_zh, Category.name_en).order_by(
        Category.sort_order
    )
    locale = current_locale.get()
    scope = scope_of(p)
    communities: list[dict[str, Any]] = []
    if scope.reach == Reach.ALL:
        communities = await Community.select(Community.id, Community.name).order_by(Community.name)
    elif scope.reach == Reach.COMMUNITY and scope.ids:
        communities = (
            await Community.select(Community.id, Community.name)
            .where(Community.id.is_in(sorted(scope.ids)))
            .order_by(Community.name)
        )
    return {
        "state_options": [(OPEN, gettext(N_("Under way"))), (WAITING, gettext(N_("Waiting for a provider")))]
        + [(s.value, gettext(lifecycle.LABELS[s])) for s in State],
        "category_options": [(c["code"], localized(c, "name", locale)) for c in categories],
        "level_options": [
            ("1", gettext(N_("Level 1"))),
            ("2", gettext(N_("Level 2"))),
            ("3", gettext(N_("Level 3"))),
        ],
        "community_options": [(str(c["id"]), c["name"]) for c in communities],
        "sort_options": [(key, gettext(label)) for key, label in SORT_LABELS.items()],
    }


async def worker_choices(p: Principal, order: dict[str, Any]) -> list[dict[str, Any]]:
    """The active workers of the provider holding the order (for the assign form)."""
    if order["provider"] is None:
        return []
    rows: list[dict[str, Any]] = await (
        Worker.select(Worker.id, Worker.name, Worker.job_title)
        .where((Worker.provider == order["provider"]) & (Worker.is_active == True))  # noqa: E712
        .order_by(Worker.name)
    )
    return rows


async def names_of_users(user_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await User.select(User.id, User.display_name).where(User.id.is_in(ids))
    return {r["id"]: r["display_name"] for r in rows}


async def provider_names(provider_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(provider_ids))
    if not ids:
        return {}
    rows = await Provider.select(Provider.id, Provider.name).where(Provider.id.is_in(ids))
    return {r["id"]: r["name"] for r in rows}


# -- what the caller may do on an order page ---------------------------------------------------


@dataclass
class Actions:
    """The actions an order's page offers its reader (the services check again when they are used)."""

    cancel: bool = False
    accept_offer: int | None = None  # the open offer of the reader's provider
    assign: bool = False
    start: bool = False
    complete: bool = False
    confirm: bool = False
    dispute: bool = False
    dispatch: bool = False
    code: bool = False  # the provider enters the code the resident was texted
    settle: bool = False  # a steward settles an open complaint
    fail: bool = False  # nobody could serve: a no-show

    @property
    def any(self) -> bool:
        return any(
            (self.cancel, self.accept_offer, self.assign, self.start, self.complete, self.confirm,
             self.dispute, self.dispatch, self.code, self.settle, self.fail)
        )  # fmt: skip


def actions_for(p: Principal, order: dict[str, Any], offers: list[dict[str, Any]]) -> Actions:
    state = order["state"]
    actions = Actions()
    disputed = order["dispute"] == "open"
    if p.role == Role.RESIDENT:
        actions.cancel = lifecycle.can("cancel", state)
        actions.confirm = state == State.COMPLETED and not disputed
        actions.dispute = state == State.COMPLETED and not order["dispute"]
    elif p.role in (Role.PROVIDER_STAFF, Role.VOLUNTEER):
        if state in (State.OFFERED, State.ROUTING):
            actions.accept_offer = next((o["id"] for o in offers if o["state"] == "open"), None)
        if is_provider_of(p, order):
            actions.assign = state in (State.ACCEPTED, State.IN_SERVICE)
            actions.start = state == State.ACCEPTED
            actions.complete = state == State.IN_SERVICE
            actions.code = state == State.COMPLETED and not disputed
            actions.fail = lifecycle.can("fail", state)
    elif p.role in (Role.STEWARD, Role.ADMIN):
        actions.cancel = lifecycle.can("cancel", state)
        actions.dispatch = state == State.ESCALATED
        actions.confirm = state == State.COMPLETED and not disputed
        actions.settle = disputed
        actions.fail = lifecycle.can("fail", state)
    return actions


async def credits_page(p: Principal, household_id: int | None) -> dict[str, Any]:
    """A household's balance and ledger: a resident's own, or one of a steward's households."""
    from households import services as registry
    from orders import credits

    if p.role == Role.RESIDENT:
        household_id = await registry.my_household_id(p)
    elif household_id is None:
        raise NotFound()
    else:
        await registry.staff_household(p, household_id)
    balance = await credits.balance(household_id)
    entries = await credits.entries(household_id, limit=200)
    for entry in entries:
        entry["kind_label"] = gettext(credits.KIND_LABELS.get(entry["kind"], entry["kind"]))
    return {"household_id": household_id, "balance": balance, "entries": entries}


async def settlements(
    month: str | None, page: int = 1, per_page: int = 50, *, provider_id: int | None = None
) -> Page:
    """Settlements per provider and month, newest month first (administrators; with
    ``provider_id``, one provider's, for its portal)."""
    from orders.tables import Settlement

    query = Settlement.select(
        Settlement.id,
        Settlement.month,
        Settlement.provider,
        Settlement.provider.name.as_alias("provider_name"),
        Settlement.orders_count,
        Settlement.credits,
        Settlement.state,
        Settlement.closed_at,
    ).order_by(Settlement.month, ascending=False)
    query = query.order_by(Settlement.provider.name)
    count = Settlement.count()
    if month:
        query = query.where(Settlement.month == month)
        count = count.where(Settlement.month == month)
    if provider_id is not None:
        query = query.where(Settlement.provider == provider_id)
        count = count.where(Settlement.provider == provider_id)
    return await paginate(query, count, page, per_page)


async def booking_form(p: Principal, values: dict[str, Any], q: str | None) -> dict[str, Any]:
    """What the booking form offers: the services with their cost here, the steward's households,
    the price of the chosen service, and where a consent code would go."""
    from households import services as registry
    from marketplace import shelves
    from orders import booking

    staff = p.role in (Role.STEWARD, Role.ADMIN)
    households: list[tuple[str, str]] = []
    household_id = _int(values.get("household_id"))
    community_id: int | None = None
    level: int | None = None
    if staff:
        found = await registry.list_households(p, registry.ListFilters(status="active", q=q or None), 1, 100)
        households = [
            (str(h["id"]), f"{h['head_name'] or h['code']} · {h['code']} · {h['community_name']}")
            for h in found.items
            if h["level"] is not None
        ]
        if household_id is not None and registry.in_scope(p, await _community_of(household_id)):
            row = (
                await Household.select(Household.community, Household.level)
                .where(Household.id == household_id)
                .first()
            )
            community_id, level = (row["community"], row["level"]) if row else (None, None)
        else:
            household_id = None
    offered = await shelves.shelves(p, community_id, level)
    quote: Any = None
    quote_error = ""
    category = str(values.get("category") or "")
    if category and (not staff or household_id is not None):
        try:
            quote = await booking.quote(p, category=category, household_id=household_id)
        except DomainError as exc:
            quote_error = exc.text()
    consent_phone = None
    if staff and household_id is not None:
        phone = await booking.consent_phone(household_id)
        consent_phone = booking.mask_phone(phone) if phone else None
    start = (clock.local_now() + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    return {
        "staff": staff,
        "households": households,
        "household_id": household_id,
        "shelves": offered["shelves"],
        "quote": quote,
        "quote_error": quote_error,
        "consent_phone": consent_phone,
        "default_start": start.strftime("%Y-%m-%dT%H:%M"),
        "default_end": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "q": q or "",
    }


def _int(raw: Any) -> int | None:
    return int(str(raw)) if str(raw or "").isdigit() else None


async def _community_of(household_id: int) -> int:
    row = await Household.select(Household.community).where(Household.id == household_id).first()
    if row is None:
        raise NotFound()
    return int(row["community"])


async def dispatch_choices(p: Principal, order_id: int) -> list[dict[str, Any]]:
    """The offerings a steward may give an escalated order to, best first, with why and whether full."""
    from orders import dispatch

    options = await dispatch.dispatch_options(p, order_id)
    names = await provider_names(o.candidate.provider_id for o in options)
    return [
        {
            "offering_id": o.candidate.offering_id,
            "provider_name": names.get(o.candidate.provider_id, ""),
            "rank": o.ranked.rank,
            "reasons": [_reason(r) for r in o.ranked.reasons_json()],
            "full": o.full,
            "open": o.open,
            "earlier": gettext(OFFER_STATE_LABELS[o.earlier]) if o.earlier in OFFER_STATE_LABELS else "",
            "needs_override": o.needs_override,
        }
        for o in options
    ]
