"""Serving an accepted order: worker, check-in, check-out, confirmation and rating, disputes, no-shows.

``accepted`` → the provider assigns a worker → check-in (:func:`check_in`, ``in_service``; the
resident hears the worker is on the way) → check-out (:func:`check_out`, ``completed``): the
reserved credits are consumed, the offering's slot is freed, the provider's figures and a
volunteer's time bank are updated, and the resident gets a one-time confirmation code by SMS.
The order is then confirmed (and rated) by the resident on the web, by that code (told to the
worker, or sent back by SMS), by a steward for residents without a phone, or automatically after
``CLOUDMARKET_AUTO_CONFIRM_DAYS`` unless disputed.  :func:`fail` records a no-show: credits
are released and the provider's ranking suffers.  Each effect rides on the order's conditional
move, so it happens once however often a request or an actor is repeated.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import timedelta
from typing import Any

from marketplace import clock, crypto, db, ratelimit
from marketplace.auth import LinkKind, Principal, Role
from marketplace.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from marketplace.i18n import N_
from marketplace.settings import get_settings
from orders import dispatch, moves, stats
from orders.lifecycle import State
from orders.tables import Order
from providers import load, timebank
from providers.tables import Offering, Provider, Worker

log = logging.getLogger("cloudmarket.orders")

CODE_DIGITS = 6
CODE_CONTEXT = "orders.confirm"
# Tries at a confirmation code per order: 5 an hour.
CODE_TRIES = (5, 3600)
VOLUNTEER_KINDS = frozenset({"individual_volunteer", "volunteer_team"})
AUTO_CONFIRM_BATCH = 200
PROVIDER_ROLES = (Role.PROVIDER_STAFF, Role.VOLUNTEER, Role.ADMIN)


class WrongCode(Conflict):
    status = 422
    code = "wrong_code"
    default_message = N_("This confirmation code is not right. Check the text message and try again.")


# -- who may act ---------------------------------------------------------------------------------------


async def _order(order_id: int) -> dict[str, Any]:
    row: dict[str, Any] | None = await Order.select().where(Order.id == order_id).first()
    if row is None:
        raise NotFound()
    return row


async def _for_provider(principal: Principal, order_id: int) -> dict[str, Any]:
    """The order, if the caller works for the provider serving it (404 otherwise)."""
    if not principal.has_role(*PROVIDER_ROLES):
        raise PermissionDenied()
    order = await _order(order_id)
    if order["provider"] is None:
        raise NotFound()
    principal.ensure_linked(LinkKind.PROVIDER, order["provider"])
    return order


async def _for_household(principal: Principal, order_id: int) -> dict[str, Any]:
    """The order, if the caller is its resident or a steward of its community (404 otherwise)."""
    order = await _order(order_id)
    if principal.has_role(Role.RESIDENT):
        principal.ensure_linked(LinkKind.HOUSEHOLD, order["household"])
    elif principal.has_role(Role.STEWARD, Role.ADMIN):
        principal.ensure_linked(LinkKind.COMMUNITY, order["community"])
    else:
        raise PermissionDenied()
    return order


def _note(text: str) -> str:
    return text.strip()[:2000]


# -- the visit -----------------------------------------------------------------------------------------


async def assign_worker(principal: Principal, order_id: int, worker_id: int) -> dict[str, Any]:
    """Name the worker who goes to the home (an accepted order, a worker of the provider)."""
    order = await _for_provider(principal, order_id)
    worker = (
        await Worker.select(Worker.id, Worker.name)
        .where(
            (Worker.id == worker_id) & (Worker.provider == order["provider"]) & (Worker.is_active == True)  # noqa: E712
        )
        .first()
    )
    if worker is None:
        raise ValidationFailed.field("worker", N_("Choose one of your organization's workers."))
    async with db.atomic():
        changed = (
            await Order.update({Order.worker: worker_id, Order.updated_at: clock.now()})
            .where((Order.id == order_id) & Order.state.is_in([State.ACCEPTED.value, State.IN_SERVICE.value]))
            .returning(*Order.all_columns())
        )
        if not changed:
            raise Conflict(N_("A worker can be assigned only to an accepted order that is not finished."))
        await moves.record(order_id, "worker_assigned", actor=principal.user_id, detail={"worker": worker_id})
    return dict(changed[0])


async def _worker_name(order: dict[str, Any]) -> str:
    if order["worker"] is not None:
        row = await Worker.select(Worker.name).where(Worker.id == order["worker"]).first()
        if row:
            return str(row["name"])
    row = await Provider.select(Provider.name).where(Provider.id == order["provider"]).first()
    return str(row["name"]) if row else "-"


async def check_in(principal: Principal, order_id: int, *, note: str = "") -> dict[str, Any]:
    """The worker sets off / arrives: the order is in service and the resident is told."""
    await _for_provider(principal, order_id)
    async with db.atomic():
        order = await moves.move(
            order_id, "start", actor=principal.user_id, note=_note(note), values={"started_at": clock.now()}
        )
        context = await dispatch.order_context(order)
        context.pop("community")
        await dispatch.tell(
            "worker_on_the_way",
            await dispatch.residents_for(order["household"]),
            {**context, "worker": await _worker_name(order), "link": f"/orders/{order_id}"},
            f"order:{order_id}:started",
            urgent=order["level"] == dispatch.URGENT_LEVEL,
        )
    return order


def _code_hash(order_id: int, code: str) -> str:
    return crypto.blind_index(f"{order_id}:{code}", CODE_CONTEXT)


def code_matches(order_id: int, code: str, stored: str) -> bool:
    if not stored:
        return False
    return any(
        hmac.compare_digest(candidate, stored)
        for candidate in crypto.blind_indexes(f"{order_id}:{code}", CODE_CONTEXT)
    )


async def check_out(principal: Principal, order_id: int, *, note: str = "") -> dict[str, Any]:
    """The service is done: credits consumed, slot freed, figures and time bank updated, and a
    one-time confirmation code texted to the resident."""
    from orders import credits

    await _for_provider(principal, order_id)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    now = clock.now()
    async with db.atomic():
        order = await moves.move(
            order_id,
            "complete",
            actor=principal.user_id,
            note=_note(note),
            values={"completed_at": now, "confirm_code_hash": _code_hash(order_id, code)},
        )
        await credits.consume(order_id, note=order["number"], by_user=principal.user_id)
        if order["offering"] is not None:
            await load.release(order["offering"])
        await stats.closed(order["provider"], served=True)
        await _log_volunteer_hours(order)
        context = await dispatch.order_context(order)
        context.pop("community")
        residents = await dispatch.residents_for(order["household"])
        await dispatch.tell(
            "order_done",
            residents,
            {**context, "link": f"/orders/{order_id}"},
            f"order:{order_id}:done",
            False,
        )
        await dispatch.tell(
            "confirmation_code", residents, {**context, "code": code}, f"order:{order_id}:code", True
        )
    return order


async def _log_volunteer_hours(order: dict[str, Any]) -> None:
    provider = await Provider.select(Provider.kind).where(Provider.id == order["provider"]).first()
    if provider is None or provider["kind"] not in VOLUNTEER_KINDS:
        return
    user_id = None
    if order["worker"] is not None:
        worker = await Worker.select(Worker.user).where(Worker.id == order["worker"]).first()
        user_id = worker["user"] if worker else None
    if user_id is None and provider["kind"] == "individual_volunteer":
        users = await dispatch.provider_users(order["provider"])
        user_id = users[0] if len(users) == 1 else None
    if order["started_at"] is not None:
        minutes = int((order["completed_at"] - order["started_at"]).total_seconds() // 60)
    else:
        offering = (
            await Offering.select(Offering.duration_minutes).where(Offering.id == order["offering"]).first()
        )
        minutes = offering["duration_minutes"] if offering else 60
    await timebank.log_hours(
        provider_id=order["provider"],
        minutes=min(timebank.MAX_MINUTES, max(1, minutes)),
        key=timebank.order_key(order["id"], user_id),
        user_id=user_id,
        order_id=order["id"],
        category_id=order["category"],
        served_at=order["completed_at"],
    )


# -- confirming and rating -------------------------------------------------------------------------


def _rating(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        rating = int(value)
    except (TypeError, ValueError):
        rating = 0
    if not 1 <= rating <= 5:
        raise ValidationFailed.field("rating", N_("Choose from 1 to 5 stars."))
    return rating


async def _confirm(
    order_id: int,
    *,
    how: str,
    actor: int | None,
    rating: Any = None,
    comment: str = "",
    dispute: str | None = None,
    note: str = "",
) -> dict[str, Any]:
    stars = _rating(rating)
    now = clock.now()
    values: dict[str, Any] = {"confirmed_at": now, "closed_at": now}
    if stars is not None:
        values["rating"] = stars
        values["rating_comment"] = _note(comment)
    if dispute is not None:
        values["dispute"] = dispute
    async with db.atomic():
        order = await moves.move(
            order_id,
            "confirm",
            actor=actor,
            note=_note(note),
            values=values,
            detail={"how": how, "rating": stars},
        )
        if stars is not None and order["provider"] is not None:
            await stats.rated(order["provider"], stars)
    return order


async def confirm(
    principal: Principal, order_id: int, *, rating: Any = None, comment: str = ""
) -> dict[str, Any]:
    """The resident (or their steward) confirms the service was done, with an optional 1–5 rating."""
    order = await _for_household(principal, order_id)
    if order["dispute"] == "open":
        raise Conflict(N_("This order is disputed: the steward settles it."))
    how = "resident" if principal.has_role(Role.RESIDENT) else "steward"
    return await _confirm(order_id, how=how, actor=principal.user_id, rating=rating, comment=comment)


async def confirm_with_code(
    order_id: int, code: str, *, principal: Principal | None = None, rating: Any = None
) -> dict[str, Any]:
    """Confirm with the code texted to the resident (told to the worker, or sent back by SMS)."""
    code = "".join(str(code).split())
    if not (code.isdigit() and len(code) == CODE_DIGITS):
        raise ValidationFailed.field("code", N_("Enter the 6-digit code from the text message."))
    await ratelimit.check("order-confirm-code", str(order_id), *CODE_TRIES)
    order = await _order(order_id)
    if principal is not None and principal.has_role(*PROVIDER_ROLES[:2]):
        principal.ensure_linked(LinkKind.PROVIDER, order["provider"])
    if not code_matches(order_id, code, order["confirm_code_hash"]):
        raise WrongCode()
    if order["dispute"] == "open":
        raise Conflict(N_("This order is disputed: the steward settles it."))
    actor = principal.user_id if principal is not None else None
    return await _confirm(order_id, how="code", actor=actor, rating=rating)


async def auto_confirm_due() -> int:
    """Confirm orders served ``auto_confirm_days`` ago that nobody confirmed or disputed."""
    cutoff = clock.now() - timedelta(days=get_settings().auto_confirm_days)
    confirmed = 0
    while True:
        rows = (
            await Order.select(Order.id)
            .where(
                (Order.state == State.COMPLETED.value)
                & (Order.completed_at < cutoff)
                & (Order.dispute != "open")
            )
            .order_by(Order.id)
            .limit(AUTO_CONFIRM_BATCH)
        )
        for row in rows:
            try:
                await _confirm(row["id"], how="auto", actor=None, note="auto")
                confirmed += 1
            except Conflict:
                continue  # confirmed or disputed meanwhile
        if len(rows) < AUTO_CONFIRM_BATCH:
            return confirmed


# -- disputes and no-shows -------------------------------------------------------------------------


async def dispute(principal: Principal, order_id: int, *, note: str) -> dict[str, Any]:
    """The resident says the service was not as it should be; a steward settles it."""
    if not note.strip():
        raise ValidationFailed.field("note", N_("Say what went wrong."))
    await _for_household(principal, order_id)
    async with db.atomic():
        changed = (
            await Order.update(
                {Order.dispute: "open", Order.dispute_note: _note(note), Order.updated_at: clock.now()}
            )
            .where((Order.id == order_id) & (Order.state == State.COMPLETED.value) & (Order.dispute == ""))
            .returning(*Order.all_columns())
        )
        if not changed:
            raise Conflict(N_("Only a served order that is not confirmed yet can be disputed, once."))
        await moves.record(order_id, "dispute", actor=principal.user_id, note=_note(note))
    return dict(changed[0])


async def settle_dispute(principal: Principal, order_id: int, *, upheld: bool, note: str) -> dict[str, Any]:
    """A steward settles a dispute: upheld gives the credits back; either way the order closes."""
    from orders import credits

    if not principal.has_role(Role.STEWARD, Role.ADMIN):
        raise PermissionDenied()
    if not note.strip():
        raise ValidationFailed.field("note", N_("Write what was decided and why."))
    order = await _for_household(principal, order_id)
    if order["dispute"] != "open":
        raise Conflict(N_("This order has no open dispute."))
    async with db.atomic():
        if upheld:
            await credits.refund(order_id, note=_note(note), by_user=principal.user_id)
        return await _confirm(
            order_id,
            how="dispute_upheld" if upheld else "dispute_rejected",
            actor=principal.user_id,
            dispute="upheld" if upheld else "rejected",
            note=note,
        )


async def fail(principal: Principal, order_id: int, *, note: str) -> dict[str, Any]:
    """The order could not be served (the worker did not turn up): credits released, slot freed,
    and the no-show counts against the provider."""
    from orders import credits

    if not note.strip():
        raise ValidationFailed.field("note", N_("Say what happened."))
    if principal.has_role(Role.STEWARD, Role.ADMIN):
        order = await _for_household(principal, order_id)
    else:
        order = await _for_provider(principal, order_id)
    async with db.atomic():
        order = await moves.move(
            order_id, "fail", actor=principal.user_id, note=_note(note), values={"closed_at": clock.now()}
        )
        await credits.release(order_id, note=_note(note), by_user=principal.user_id)
        if order["offering"] is not None:
            await load.release(order["offering"])
        await stats.closed(order["provider"], served=False)
    return order
