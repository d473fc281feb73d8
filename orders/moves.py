"""The one way an order changes state: a conditional UPDATE and an order event, in one transaction.

Every service that moves an order calls :func:`move` inside ``db.atomic()`` (it opens one when
none is open), together with whatever else the move writes (ledger entries, offers, outbox
messages, notifications), so a move is all there or not at all.  The UPDATE names the states
the state and version read just before, so of two racing moves exactly one succeeds: the
loser gets :class:`orders.lifecycle.IllegalMove` (409) saying what to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from marketplace import clock, db
from marketplace.errors import NotFound
from marketplace.i18n import N_
from orders import lifecycle
from orders.tables import Order, OrderEvent

CHANGED_MEANWHILE = N_("This order was changed by someone else meanwhile. Reload the page and try again.")

# Called after the commit of each move with (order row, event kind); orders.live publishes.
_listeners: list[Callable[[dict[str, Any], str], None]] = []


def on_move(listener: Callable[[dict[str, Any], str], None]) -> None:
    """Call ``listener(order, kind)`` after each committed move (live tracking)."""
    _listeners.append(listener)


async def move(
    order_id: int,
    action: str,
    *,
    actor: int | None = None,
    note: str = "",
    detail: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Move order ``order_id`` by ``action``; returns the order row as it is after the move.

    ``values`` are further columns to set with the move (by column name).  ``version`` makes
    the move conditional on the version the caller read as well (a form shown before another
    change).  Raises NotFound for a missing order and IllegalMove when the order's state (or
    version) does not allow the action.
    """
    now = clock.now()
    async with db.atomic():
        current = await Order.select(Order.state, Order.version).where(Order.id == order_id).first()
        if current is None:
            raise NotFound()
        target = lifecycle.check(action, current["state"])
        seen = current["version"] if version is None else version
        changes: dict[Any, Any] = {
            Order.state: target.value,
            Order.version: seen + 1,
            Order.updated_at: now,
        }
        for name, value in (values or {}).items():
            changes[getattr(Order, name)] = value
        rows = (
            await Order.update(changes)
            .where((Order.id == order_id) & (Order.state == current["state"]) & (Order.version == seen))
            .returning(*Order.all_columns())
        )
        if not rows:
            # Someone moved or changed the order between our read and our write.
            raise lifecycle.IllegalMove(CHANGED_MEANWHILE)
        row = dict(rows[0])
        await record(
            order_id,
            action,
            actor=actor,
            from_state=current["state"],
            to_state=target.value,
            note=note,
            detail=detail,
        )
        for listener in _listeners:
            db.on_commit(lambda listener=listener: listener(row, action))  # type: ignore[misc]
    return row


async def record(
    order_id: int,
    kind: str,
    *,
    actor: int | None = None,
    from_state: str = "",
    to_state: str = "",
    note: str = "",
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Write one order event (a move, or a note such as an offer declined or a worker assigned)."""
    await OrderEvent.insert(
        OrderEvent(
            order=order_id,
            at=clock.now(),
            actor=actor,
            kind=kind,
            from_state=from_state,
            to_state=to_state,
            note=note,
            detail=json.dumps(dict(detail or {}), default=str),
        )
    )
