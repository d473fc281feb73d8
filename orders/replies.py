"""Confirming an order by replying to the text with its code: what the SMS gateway forwards.

The gateway POSTs each text a resident sends to ``/api/v1/sms/inbound``, signed per Standard
Webhooks with ``CLOUDMARKET_SMS_GATEWAY_SECRET``.  The sender's number leads to the households
it reaches (a member's or the household's own number, or a linked resident account such as a
family member's), and to their orders that were served and wait for confirmation; the order
whose code the text holds is confirmed through :func:`orders.fulfilment.confirm_with_code`.

What a reply may say (:func:`parse`): digits are read after turning full-width ones into
ASCII, and words around them are ignored, so ``123456``, ``确认 123456`` and ``好 123456 5星``
all work.  The digit groups must be the 6-digit code, optionally followed by one digit from 1
to 5: the rating.  Anything else (no code, two codes, a rating of 7) is not understood.

Every answer is 200 with an ``outcome`` (a gateway retries anything else), and the same
gateway message id answers the same however often it comes (``orders.idempotency``).
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from households.tables import Household, Member
from marketplace.accounts import normalise_phone
from marketplace.auth import LinkKind, Role
from marketplace.errors import Conflict, RateLimited
from marketplace.i18n import N_, gettext
from marketplace.tables import User, UserLink
from orders import fulfilment, idempotency
from orders.booking import mask_phone
from orders.lifecycle import State
from orders.tables import Order

log = logging.getLogger("cloudmarket.orders")

CALLER = "sms-gateway"
_DIGITS = re.compile(r"\d+")


class Outcome(StrEnum):
    """What became of one text; the gateway reads it from the answer."""

    CONFIRMED = "confirmed"
    NOT_UNDERSTOOD = "not_understood"
    UNKNOWN_SENDER = "unknown_sender"
    NO_ORDER = "no_order"
    WRONG_CODE = "wrong_code"
    RATE_LIMITED = "rate_limited"


# What the gateway may text back, if it answers replies.
REPLIES = {
    Outcome.CONFIRMED: N_("Thank you: order %(number)s is confirmed."),
    Outcome.NOT_UNDERSTOOD: N_(
        "Reply with the 6-digit code from the text, and a rating from 1 to 5 if you like."
    ),
    Outcome.UNKNOWN_SENDER: N_("This number has no order waiting for confirmation."),
    Outcome.NO_ORDER: N_("This number has no order waiting for confirmation."),
    Outcome.WRONG_CODE: N_("This code is not right. Check the text message and try again."),
    Outcome.RATE_LIMITED: N_("Too many wrong codes. Try again in an hour, or ask your steward."),
}


@dataclass(frozen=True)
class Reply:
    """A code and an optional rating read from a text."""

    code: str
    rating: int | None = None


def parse(text: str) -> Reply | None:
    """The code (and rating) in a resident's reply, or None if the text does not fit the grammar."""
    groups = _DIGITS.findall(unicodedata.normalize("NFKC", text or ""))
    if not groups or len(groups[0]) != fulfilment.CODE_DIGITS or len(groups) > 2:
        return None
    if len(groups) == 1:
        return Reply(groups[0])
    rating = groups[1]
    if len(rating) != 1 or not 1 <= int(rating) <= 5:
        return None
    return Reply(groups[0], int(rating))


async def households_reached(phone: str) -> set[int]:
    """The households this mobile belongs to: a member's number, the household's own, or a
    resident account linked to the household (a proxy such as a son or daughter)."""
    members = await Member.select(Member.household).where(Member.phone == phone)
    homes = await Household.select(Household.id).where(Household.phone == phone)
    found = {row["household"] for row in members} | {row["id"] for row in homes}
    user = (
        await User.select(User.id)
        .where((User.phone == phone) & (User.role == Role.RESIDENT.value) & (User.is_active == True))  # noqa: E712
        .first()
    )
    if user is not None:
        links = await UserLink.select(UserLink.target).where(
            (UserLink.user == user["id"]) & (UserLink.kind == LinkKind.HOUSEHOLD.value)
        )
        found |= {int(row["target"]) for row in links if str(row["target"]).isdigit()}
    return found


async def _waiting(households: set[int]) -> list[dict[str, Any]]:
    """Served orders of these households that wait for confirmation and are not disputed."""
    rows: list[dict[str, Any]] = (
        await Order.select(Order.id, Order.number, Order.confirm_code_hash)
        .where(
            Order.household.is_in(list(households))
            & (Order.state == State.COMPLETED.value)
            & (Order.dispute != "open")
        )
        .order_by(Order.completed_at)
    )
    return rows


async def _confirm(phone: str, text: str) -> tuple[Outcome, str | None]:
    """Act on one text: the outcome and the number of the order it concerns."""
    reply = parse(text)
    if reply is None:
        return Outcome.NOT_UNDERSTOOD, None
    households = await households_reached(phone)
    if not households:
        return Outcome.UNKNOWN_SENDER, None
    waiting = await _waiting(households)
    if not waiting:
        return Outcome.NO_ORDER, None
    matching = [o for o in waiting if fulfilment.code_matches(o["id"], reply.code, o["confirm_code_hash"])]
    # A wrong code counts as a try against every order it might have been meant for, so guessing
    # meets the per-order limit of confirm_with_code; a right one only against its own order.
    outcome = Outcome.WRONG_CODE
    for order in matching or waiting:
        try:
            await fulfilment.confirm_with_code(order["id"], reply.code, rating=reply.rating)
        except RateLimited:
            outcome = Outcome.RATE_LIMITED
        except fulfilment.WrongCode:
            continue
        except Conflict:
            continue  # confirmed or disputed meanwhile
        else:
            return Outcome.CONFIRMED, str(order["number"])
    return outcome, None


async def receive(message_id: str, phone: str, text: str, body: bytes) -> dict[str, Any]:
    """Handle one text forwarded by the gateway, once per gateway message id; the answer to give."""
    sender = normalise_phone(phone)

    async def handle() -> tuple[int, str]:
        outcome, number = await _confirm(sender, text)
        log.info(
            "sms reply handled",
            extra={
                "sms_id": message_id,
                "phone": mask_phone(sender),
                "outcome": outcome.value,
                "order": number,
            },
        )
        answer = {
            "id": message_id,
            "outcome": outcome.value,
            "order": number,
            "reply": gettext(REPLIES[outcome], number=number or ""),
        }
        return 200, json.dumps(answer, ensure_ascii=False)

    replay = await idempotency.run(CALLER, message_id, body, handle)
    answer: dict[str, Any] = json.loads(replay.body)
    return answer
