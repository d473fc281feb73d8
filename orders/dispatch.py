"""Routing an order to a provider: offers, acceptance, declines, expiry, escalation, dispatch by hand.

``submitted`` → the ``route_order`` actor (:func:`route`) ranks the candidates
(``providers.candidates`` less every provider offered this order before) and makes offers:

- **direct** (派单): the best candidate alone, until the offer times out (the level policy's
  offer timeout) or is declined; then the next one;
- **pool** (抢单): the top ``CLOUDMARKET_ROUTING_POOL_SIZE`` at once; the first to accept wins,
  the others' offers are marked lost.

:func:`accept` is atomic: the order's conditional move and the offering's capacity check are
one transaction, so of any number of simultaneous accepts exactly one wins and the others get
409 with a message that says what happened; capacity is never exceeded.  When nobody is left,
or after ``CLOUDMARKET_ROUTING_MAX_ATTEMPTS`` rounds, the order is escalated to the household's
steward, who sees every offering with its ranking (full and closed ones too) and dispatches the
order to one of them (:func:`dispatch_to`), overriding capacity with a written reason if need be.

Level 1 orders are routed on the ``routing_urgent`` queue, others on ``routing``
(:func:`request_routing`), so a level 1 order never waits behind a backlog of level 3 orders.
Every function here is safe to run twice for the same message: offers are keyed by order and
provider, moves are conditional, notifications carry dedupe keys.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from households.tables import Community, Household
from marketplace import catalog_services, clock, db, outbox
from marketplace.auth import LinkKind, Principal, Role
from marketplace.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from marketplace.i18n import N_
from marketplace.settings import get_settings
from marketplace.tables import Category, User, UserLink
from orders import booking, lifecycle, moves, routing, stats
from orders.lifecycle import IllegalMove, State
from orders.tables import Offer, Order, OrderEvent
from providers import load
from providers.candidates import Candidate, candidates
from providers.tables import Offering

log = logging.getLogger("cloudmarket.orders")

URGENT_LEVEL = 1
DEFAULT_OFFER_TIMEOUT = timedelta(minutes=30)

ESCALATION_REASONS = {
    "no_candidate": N_("No provider is available for this service, place and time"),
    "too_many_attempts": N_("Too many offers went unanswered"),
    "sla_accept": N_("Not accepted within the level's time to accept"),
}

OFFER_TAKEN = N_("Another provider accepted this order first.")
OFFER_MESSAGES = {
    "accepted": N_("This offer has been accepted already."),
    "declined": N_("This offer was declined."),
    "expired": N_("This offer has expired: it was passed on to another provider."),
    "lost": OFFER_TAKEN,
    "withdrawn": N_("This order no longer needs a provider."),
}


class OfferClosed(Conflict):
    """The offer cannot be answered any more (answered as 409 with what happened)."""

    code = "offer_closed"
    default_message = OFFER_TAKEN


class CapacityFull(Conflict):
    """The offering carries as many orders as its capacity allows (409)."""

    code = "capacity_full"
    default_message = N_(
        "You already carry as many orders of this service as your capacity allows. "
        "Finish one, or raise the capacity in the portal, before accepting another."
    )


# -- people to tell ----------------------------------------------------------------------------------


async def _active(user_ids: set[int], role: Role | None = None) -> list[int]:
    if not user_ids:
        return []
    where = User.id.is_in(sorted(user_ids)) & (User.is_active == True)  # noqa: E712
    if role is not None:
        where &= User.role == role.value
    return sorted(row["id"] for row in await User.select(User.id).where(where))


async def _linked_users(kind: LinkKind, target: int) -> set[int]:
    rows = await UserLink.select(UserLink.user).where(
        (UserLink.kind == kind.value) & (UserLink.target == str(target))
    )
    return {row["user"] for row in rows}


async def stewards_for(household_id: int) -> list[int]:
    """Who dispatches a household's orders: its steward, else the community's duty steward, else
    every steward of the community."""
    row = (
        await Household.select(
            Household.steward, Household.community, Household.community.duty_steward.as_alias("duty")
        )
        .where(Household.id == household_id)
        .first()
    )
    if row is None:
        return []
    for choice in (row["steward"], row["duty"]):
        if choice is not None and await _active({choice}, Role.STEWARD):
            return [choice]
    return await _active(await _linked_users(LinkKind.COMMUNITY, row["community"]), Role.STEWARD)


async def residents_for(household_id: int) -> list[int | str]:
    """Who hears about a household's orders: its resident accounts, else a mobile of the household
    (SMS only; a household with landlines alone hears through its steward)."""
    users = await _active(await _linked_users(LinkKind.HOUSEHOLD, household_id), Role.RESIDENT)
    if users:
        return list(users)
    mobile = await booking.household_mobile(household_id)
    return [mobile] if mobile else []


async def provider_users(provider_id: int) -> list[int]:
    """The provider's staff (or the volunteer) with an account."""
    return await _active(await _linked_users(LinkKind.PROVIDER, provider_id))


async def order_context(order: dict[str, Any]) -> dict[str, Any]:
    """The keys every order notification carries: number and service, plus the community."""
    category = await Category.select(Category.name_zh).where(Category.id == order["category"]).first()
    community = await Community.select(Community.name).where(Community.id == order["community"]).first()
    return {
        "order_no": order["number"],
        "service": category["name_zh"] if category else "",
        "community": community["name"] if community else "",
    }


async def tell(event: str, recipients: list[Any], context: dict[str, Any], key: str, urgent: bool) -> None:
    """Notify ``recipients`` of an order event once per ``key`` (nobody to tell: nothing)."""
    from notifications.services import notify

    if recipients:
        await notify(event, recipients, context, dedupe_key=key, urgent=urgent)


# -- starting routing --------------------------------------------------------------------------------


async def request_routing(order_id: int, level: int, *, deliver_at: datetime | None = None) -> None:
    """Ask for the order to be routed (inside the caller's transaction): level 1 on the urgent queue."""
    from orders import tasks

    actor = tasks.route_order_urgent if level == URGENT_LEVEL else tasks.route_order
    await outbox.send(actor, order_id, deliver_at=deliver_at)


async def _schedule_expiry(offer_id: int, level: int, at: datetime) -> None:
    from orders import tasks

    actor = tasks.expire_offer_urgent if level == URGENT_LEVEL else tasks.expire_offer
    await outbox.send(actor, offer_id, deliver_at=at)


async def offer_timeout(level: int) -> timedelta:
    """How long a provider has to answer an offer, from the level's policy."""
    policy = await catalog_services.current_policy(level)
    if policy is None:
        return DEFAULT_OFFER_TIMEOUT
    return timedelta(minutes=policy.terms.offer_timeout_minutes)


# -- routing -----------------------------------------------------------------------------------------


async def _load_order(order_id: int) -> dict[str, Any] | None:
    row: dict[str, Any] | None = await Order.select().where(Order.id == order_id).first()
    return row


async def _home(household_id: int) -> routing.Point | None:
    row = (
        await Household.select(Household.latitude, Household.longitude)
        .where(Household.id == household_id)
        .first()
    )
    if row is None or row["latitude"] is None or row["longitude"] is None:
        return None
    return (row["latitude"], row["longitude"])


async def _offered_providers(order_id: int) -> set[int]:
    return {row["provider"] for row in await Offer.select(Offer.provider).where(Offer.order == order_id)}


async def ranked_candidates(
    order: dict[str, Any], *, include_unavailable: bool = False
) -> list[routing.Ranked]:
    """The order's candidates, best first, less the providers offered it before (unless all asked)."""
    excluded = set() if include_unavailable else await _offered_providers(order["id"])
    try:
        found = await candidates(
            order["category"],
            order["community"],
            order["window_start"],
            order["window_end"],
            exclude_provider_ids=excluded,
            include_unavailable=include_unavailable,
        )
    except ValueError:
        log.warning("order window cannot be routed", extra={"order_id": order["id"]})
        found = []
    ranked = routing.rank(found, await _home(order["household"]))
    wanted = order.get("requested_offering")
    if wanted is not None and not include_unavailable:
        # The offering the resident chose goes first when it can take the order.
        ranked.sort(key=lambda r: (r.candidate.offering_id != wanted, r.rank))
    return ranked


async def route(order_id: int) -> str:
    """Offer the order to its next candidate(s), or escalate it; returns offered, escalated or ''.

    Does nothing for an order that is not waiting for routing (a rerun, or a cancelled order).
    """
    settings = get_settings()
    async with db.atomic():
        await db.lock_row(Order, order_id)
        order = await _load_order(order_id)
        if order is None or order["state"] not in (State.SUBMITTED, State.ROUTING):
            return ""
        if order["state"] == State.SUBMITTED:
            order = await moves.move(order_id, "route")
        if order["attempts"] >= settings.routing_max_attempts:
            await escalate(order, "too_many_attempts")
            return "escalated"
        ranked = await ranked_candidates(order)
        if not ranked:
            await escalate(order, "no_candidate")
            return "escalated"
        pool = order["routing"] == "pool"
        chosen = ranked[: max(1, settings.routing_pool_size)] if pool else ranked[:1]
        now = clock.now()
        expires = now + await offer_timeout(order["level"])
        round_no = order["attempts"] + 1
        offer_ids: list[tuple[int, routing.Ranked]] = []
        for place, choice in enumerate(chosen, start=1):
            c = choice.candidate
            inserted = (
                await Offer.insert(
                    Offer(
                        order=order_id,
                        provider=c.provider_id,
                        offering=c.offering_id,
                        key=f"{order_id}:{c.provider_id}",
                        round=round_no,
                        rank=place,
                        score=choice.score,
                        reasons=json.dumps(choice.reasons_json(), ensure_ascii=False),
                        mode="pool" if pool else "direct",
                        state="open",
                        offered_at=now,
                        expires_at=expires,
                    )
                )
                .on_conflict(action="DO NOTHING")
                .returning(Offer.id)
            )
            if inserted:
                offer_ids.append((inserted[0]["id"], choice))
        moved = await moves.move(
            order_id,
            "offer",
            values={"attempts": round_no, "offered_at": order["offered_at"] or now},
            detail={"round": round_no, "offers": [oid for oid, _ in offer_ids], "mode": order["routing"]},
        )
        context = await order_context(moved)
        for offer_id, choice in offer_ids:
            provider_id = choice.candidate.provider_id
            await stats.offered(provider_id)
            await _schedule_expiry(offer_id, order["level"], expires)
            await tell(
                "new_offer",
                await provider_users(provider_id),
                {
                    **context,
                    "when": order["window_start"],
                    "respond_by": expires,
                    "link": f"/offers/{offer_id}",
                },
                f"offer:{offer_id}",
                urgent=order["level"] == URGENT_LEVEL,
            )
    return "offered"


async def escalate(
    order: dict[str, Any], reason: str, *, actor: int | None = None, tell_steward: bool = True
) -> dict[str, Any]:
    """Hand the order to its steward: open offers are withdrawn and the steward is told (unless
    the caller tells them otherwise, as the SLA watch does)."""
    moved = await moves.move(
        order["id"],
        "escalate",
        actor=actor,
        values={"escalation_reason": reason},
        detail={"reason": reason},
    )
    await Offer.update({Offer.state: "withdrawn"}).where(
        (Offer.order == order["id"]) & (Offer.state == "open")
    )
    if not tell_steward:
        log.info("order escalated", extra={"order_id": order["id"], "reason": reason})
        return moved
    context = await order_context(moved)
    await tell(
        "order_escalated",
        await stewards_for(order["household"]),
        {
            **context,
            "level": order["level"],
            "reason": ESCALATION_REASONS.get(reason, reason),
            "link": f"/orders/{order['id']}",
        },
        f"order:{order['id']}:escalated:{moved['version']}",
        urgent=order["level"] == URGENT_LEVEL,
    )
    log.info("order escalated", extra={"order_id": order["id"], "reason": reason})
    return moved


async def _pass_on_if_unanswered(order_id: int) -> None:
    """After a decline or an expiry: when no offer of the order is open any more, route it on."""
    order = await _load_order(order_id)
    if order is None or order["state"] != State.OFFERED:
        return
    if await Offer.exists().where((Offer.order == order_id) & (Offer.state == "open")):
        return
    await moves.move(order_id, "route")
    await request_routing(order_id, order["level"])


# -- answering offers --------------------------------------------------------------------------------


def _closed(state: str) -> OfferClosed:
    return OfferClosed(OFFER_MESSAGES.get(state, OFFER_TAKEN))


async def _offer_for(offer_id: int, principal: Principal | None) -> dict[str, Any]:
    offer: dict[str, Any] | None = await Offer.select().where(Offer.id == offer_id).first()
    if offer is None:
        raise NotFound()
    if principal is not None:
        principal.ensure_linked(LinkKind.PROVIDER, offer["provider"])
    return offer


async def accept(offer_id: int, principal: Principal | None = None) -> dict[str, Any]:
    """Accept an offer for its provider: returns the order; OfferClosed or CapacityFull (409) otherwise.

    The order's move is conditional on the state and version read, so of simultaneous accepts
    only one moves it; the others roll back and are told another provider was first.
    """
    user_id = principal.user_id if principal is not None else None
    now = clock.now()
    async with db.atomic():
        offer = await _offer_for(offer_id, principal)
        if offer["state"] != "open":
            raise _closed(offer["state"])
        if offer["expires_at"] <= now:
            raise _closed("expired")
        try:
            order = await moves.move(
                offer["order"],
                "accept",
                actor=user_id,
                values={"provider": offer["provider"], "offering": offer["offering"], "accepted_at": now},
                detail={"offer": offer_id, "provider": offer["provider"]},
            )
        except IllegalMove:
            raise OfferClosed(OFFER_TAKEN) from None
        if order["state"] != State.ACCEPTED:
            raise OfferClosed(OFFER_TAKEN)
        taken = (
            await Offer.update({Offer.state: "accepted", Offer.answered_at: now, Offer.answered_by: user_id})
            .where((Offer.id == offer_id) & (Offer.state == "open"))
            .returning(Offer.id)
        )
        if not taken:
            current = await Offer.select(Offer.state).where(Offer.id == offer_id).first()
            raise _closed(current["state"] if current else "withdrawn")
        if not await load.take(offer["offering"]):
            raise CapacityFull()
        await Offer.update({Offer.state: "lost"}).where(
            (Offer.order == order["id"]) & (Offer.state == "open") & (Offer.id != offer_id)
        )
        await stats.accepted(offer["provider"])
        await _tell_accepted(order)
    return order


async def _tell_accepted(order: dict[str, Any]) -> None:
    from providers.tables import Provider

    provider = await Provider.select(Provider.name).where(Provider.id == order["provider"]).first()
    context = await order_context(order)
    context.pop("community")
    await tell(
        "order_accepted",
        await residents_for(order["household"]),
        {**context, "provider": provider["name"] if provider else "", "when": order["window_start"]},
        f"order:{order['id']}:accepted",
        urgent=order["level"] == URGENT_LEVEL,
    )


async def decline(offer_id: int, principal: Principal | None = None, *, reason: str = "") -> None:
    """Decline an offer; the order goes to the next candidate once no offer of it is open."""
    user_id = principal.user_id if principal is not None else None
    async with db.atomic():
        offer = await _offer_for(offer_id, principal)
        await db.lock_row(Order, offer["order"])
        declined = (
            await Offer.update(
                {
                    Offer.state: "declined",
                    Offer.answered_at: clock.now(),
                    Offer.answered_by: user_id,
                    Offer.decline_reason: reason.strip()[:2000],
                }
            )
            .where((Offer.id == offer_id) & (Offer.state == "open"))
            .returning(Offer.id)
        )
        if not declined:
            current = await Offer.select(Offer.state).where(Offer.id == offer_id).first()
            if current and current["state"] == "declined":
                return  # declined twice: nothing more to do
            raise _closed(current["state"] if current else "withdrawn")
        await moves.record(
            offer["order"],
            "offer_declined",
            actor=user_id,
            note=reason.strip()[:2000],
            detail={"offer": offer_id, "provider": offer["provider"]},
        )
        await _pass_on_if_unanswered(offer["order"])


async def expire(offer_id: int) -> bool:
    """Time out one offer if it is still open at its expiry; True when it expired now."""
    async with db.atomic():
        offer = await Offer.select().where(Offer.id == offer_id).first()
        if offer is None or offer["state"] != "open":
            return False
        await db.lock_row(Order, offer["order"])
        if offer["expires_at"] > clock.now():
            # Early (clocks of two processes differ): look again when it is due.
            order = await _load_order(offer["order"])
            await _schedule_expiry(offer_id, order["level"] if order else 3, offer["expires_at"])
            return False
        expired = (
            await Offer.update({Offer.state: "expired", Offer.answered_at: clock.now()})
            .where((Offer.id == offer_id) & (Offer.state == "open"))
            .returning(Offer.id)
        )
        if not expired:
            return False
        await moves.record(
            offer["order"], "offer_expired", detail={"offer": offer_id, "provider": offer["provider"]}
        )
        await _pass_on_if_unanswered(offer["order"])
    return True


# -- a steward's dispatch ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """An offering a steward may dispatch an escalated order to, with its ranking and its state."""

    ranked: routing.Ranked
    full: bool
    open: bool
    earlier: str
    """What became of an earlier offer of this order to the provider ('' when none)."""

    @property
    def candidate(self) -> Candidate:
        return self.ranked.candidate

    @property
    def needs_override(self) -> bool:
        return self.full or not self.open


async def _steward_order(principal: Principal, order_id: int) -> dict[str, Any]:
    if not principal.has_role(Role.STEWARD, Role.ADMIN):
        raise PermissionDenied()
    order = await _load_order(order_id)
    if order is None:
        raise NotFound()
    principal.ensure_linked(LinkKind.COMMUNITY, order["community"])
    return order


async def dispatch_options(principal: Principal, order_id: int) -> list[Option]:
    """Every offering that serves the order's category in its community, best first, with reasons."""
    order = await _steward_order(principal, order_id)
    earlier = {
        row["provider"]: row["state"]
        for row in await Offer.select(Offer.provider, Offer.state).where(Offer.order == order_id)
    }
    ranked = await ranked_candidates(order, include_unavailable=True)
    return [
        Option(
            ranked=r,
            full=r.candidate.is_full,
            open=r.candidate.is_open,
            earlier=earlier.get(r.candidate.provider_id, ""),
        )
        for r in ranked
    ]


async def dispatch_to(
    principal: Principal, order_id: int, offering_id: int, *, override: bool = False, reason: str = ""
) -> dict[str, Any]:
    """A steward gives an escalated order to a chosen offering; a full or closed one needs
    ``override`` and a written ``reason``.  Returns the order."""
    options = {o.candidate.offering_id: o for o in await dispatch_options(principal, order_id)}
    choice = options.get(offering_id)
    if choice is None:
        raise ValidationFailed.field("offering", N_("Choose one of the providers listed."))
    reason = reason.strip()
    if choice.needs_override and not override:
        raise ValidationFailed.field(
            "override",
            N_(
                "This provider is full or closed at that time. "
                "Tick “override” and write why to send it anyway."
            ),
        )
    if override and not reason:
        raise ValidationFailed.field("reason", N_("Write why the order is sent to this provider anyway."))
    now = clock.now()
    c = choice.candidate
    async with db.atomic():
        order = await moves.move(
            order_id,
            "accept",
            actor=principal.user_id,
            note=reason,
            values={"provider": c.provider_id, "offering": c.offering_id, "accepted_at": now},
            detail={"dispatched": True, "offering": c.offering_id, "override": override, "reason": reason},
        )
        if order["state"] != State.ACCEPTED:
            raise IllegalMove()
        await Offer.insert(
            Offer(
                order=order_id,
                provider=c.provider_id,
                offering=c.offering_id,
                key=f"{order_id}:{c.provider_id}:{order['version']}",
                round=order["attempts"] + 1,
                rank=choice.ranked.rank,
                score=choice.ranked.score,
                reasons=json.dumps(choice.ranked.reasons_json(), ensure_ascii=False),
                mode="steward",
                state="accepted",
                offered_at=now,
                expires_at=now,
                answered_at=now,
                answered_by=principal.user_id,
                decline_reason="",
            )
        ).on_conflict(action="DO NOTHING")
        if not await load.take(c.offering_id):
            if not override:
                raise CapacityFull()
            await Offering.update({Offering.active_orders: Offering.active_orders + 1}).where(
                Offering.id == c.offering_id
            )
        context = await order_context(order)
        await tell(
            "new_offer",
            await provider_users(c.provider_id),
            {**context, "when": order["window_start"], "link": f"/orders/{order_id}"},
            f"order:{order_id}:dispatched:{order['version']}",
            urgent=order["level"] == URGENT_LEVEL,
        )
        await _tell_accepted(order)
    log.info("order dispatched by a steward", extra={"order_id": order_id, "override": override})
    return order


# -- the SLA watch -----------------------------------------------------------------------------------

WAITING_FOR_ACCEPT = (State.SUBMITTED, State.ROUTING, State.OFFERED, State.ESCALATED)
WAITING_FOR_SERVICE = (*WAITING_FOR_ACCEPT, State.ACCEPTED)


async def _sla_missed(order: dict[str, Any], target: str, due_at: datetime) -> None:
    await moves.record(order["id"], "sla_missed", detail={"target": target, "due_at": due_at.isoformat()})
    context = await order_context(order)
    await tell(
        "sla_missed",
        await stewards_for(order["household"]),
        {
            **context,
            "level": order["level"],
            "target": target,
            "due_at": due_at,
            "link": f"/orders/{order['id']}",
        },
        f"order:{order['id']}:sla:{target}",
        urgent=order["level"] == URGENT_LEVEL,
    )


def _detail(raw: Any) -> dict[str, Any]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else {}


async def watch_sla() -> int:
    """Tell the steward, once per target, of orders past their time to accept or to service; an
    order not accepted in time also goes to the steward's dispatch board (escalated)."""
    now = clock.now()
    told = 0
    async with db.atomic():
        late = (
            await Order.update({Order.sla_missed: True})
            .where(
                (Order.accept_by < now)
                & (Order.sla_missed == False)  # noqa: E712
                & Order.state.is_in([s.value for s in WAITING_FOR_ACCEPT])
            )
            .returning(*Order.all_columns())
        )
        for order in late:
            await _sla_missed(order, "acceptance", order["accept_by"])
            told += 1
            if lifecycle.can("escalate", order["state"]):
                await escalate(order, "sla_accept", tell_steward=False)
    async with db.atomic():
        overdue = await Order.select().where(
            (Order.serve_by < now) & Order.state.is_in([s.value for s in WAITING_FOR_SERVICE])
        )
        ids = [order["id"] for order in overdue]
        notified = {
            row["order"]
            for row in await OrderEvent.select(OrderEvent.order, OrderEvent.detail).where(
                OrderEvent.order.is_in(ids or [0]) & (OrderEvent.kind == "sla_missed")
            )
            if _detail(row["detail"]).get("target") == "service"
        }
        for order in overdue:
            if order["id"] in notified:
                continue
            await _sla_missed(order, "service", order["serve_by"])
            told += 1
    return told
