"""What orders keep of an erased household: texts people wrote lose its personal values."""

from __future__ import annotations

from households.erasure import scrub_rows
from households.events import Erasure, on_household_erased
from marketplace import db
from orders.tables import ConsentCode, CreditEntry, IdempotentRequest, Offer, Order, OrderEvent


@on_household_erased
async def erase_household(erasure: Erasure) -> None:
    """Orders, their timelines, offers and credit entries stay (ledgers), their free texts are scrubbed."""
    orders = Order.household == erasure.household_id
    await scrub_rows(
        Order,
        orders,
        [
            Order.notes,
            Order.consent_note,
            Order.rating_comment,
            Order.dispute_note,
            Order.cancel_reason,
        ],
        erasure,
    )
    order_ids = [row["id"] for row in await Order.select(Order.id).where(orders)]
    if order_ids:
        await scrub_rows(
            OrderEvent, OrderEvent.order.is_in(order_ids), [OrderEvent.note, OrderEvent.detail], erasure
        )
        await scrub_rows(Offer, Offer.order.is_in(order_ids), [Offer.reasons, Offer.decline_reason], erasure)
    await ConsentCode.update({ConsentCode.phone: ""}).where(ConsentCode.household == erasure.household_id)
    await scrub_rows(CreditEntry, CreditEntry.household == erasure.household_id, [CreditEntry.note], erasure)
    # Kept answers to API writes (kept a day): the household's own accounts' go, others are scrubbed.
    for user_id in erasure.user_ids:
        await IdempotentRequest.delete().where(IdempotentRequest.key.like(f"user:{user_id}:%"))
    mentions = db.contains_any([IdempotentRequest.response], erasure.searched())
    if mentions is not None:
        await scrub_rows(IdempotentRequest, mentions, [IdempotentRequest.response], erasure)
