"""The credit ledger: every movement of a household's service credits is one append-only entry.

Kinds and what each does to a household's *available* and *reserved* credits:

==========  ==========  =========  ==============================================
kind        available   reserved   when
==========  ==========  =========  ==============================================
grant       +n                     the monthly grant of the household's level
temporary   +n                     a steward's temporary credits (lapse on a day)
reserve     -n          +n         an order is booked
release     +n          -n         the order is cancelled or not served
consume                 -n         the order is completed
refund      +n                     credits of a served order given back (dispute)
expire      -n                     the unused part of temporary credits lapses
adjust      ±n                     an administrator's correction, with a reason
==========  ==========  =========  ==============================================

Each entry has a unique ``key`` naming the effect (``grant:2026-12:42``, ``reserve:7``), so an
actor or a request that runs twice writes it once.  ``od_credit_account`` carries the running
figures: a reservation is one conditional UPDATE (``... WHERE available >= n``), so two
bookings at once can never overdraw, and :func:`check` recomputes every account from its
entries.  Call the writers inside ``db.atomic()`` together with the change that causes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from marketplace import audit, clock, db
from marketplace.auth import Principal, Role
from marketplace.errors import Conflict, PermissionDenied, ValidationFailed
from marketplace.i18n import N_
from orders.tables import CreditAccount, CreditEntry

log = logging.getLogger("cloudmarket.orders")

MAX_CORRECTION = 10_000


class Kind(StrEnum):
    GRANT = "grant"
    TEMPORARY = "temporary"
    RESERVE = "reserve"
    RELEASE = "release"
    CONSUME = "consume"
    REFUND = "refund"
    EXPIRE = "expire"
    ADJUST = "adjust"


KIND_LABELS = {
    Kind.GRANT: N_("Monthly credits"),
    Kind.TEMPORARY: N_("Temporary credits"),
    Kind.RESERVE: N_("Reserved for an order"),
    Kind.RELEASE: N_("Released (order not served)"),
    Kind.CONSUME: N_("Used by a served order"),
    Kind.REFUND: N_("Given back"),
    Kind.EXPIRE: N_("Temporary credits lapsed"),
    Kind.ADJUST: N_("Correction"),
}


class CreditsExhausted(Conflict):
    """A booking costs more than the household has left (answered as 409)."""

    code = "credits_exhausted"
    default_message = N_(
        "Not enough service credits: this service costs %(cost)s credits and the balance is %(balance)s."
    )


# -- arithmetic (plain Python) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    """What a household can book with now, and what its open orders hold."""

    available: int
    reserved: int

    @property
    def total(self) -> int:
        return self.available + self.reserved


def balance_of(entries: Iterable[Mapping[str, Any]]) -> Balance:
    """The balance the entries add up to: the ledger is the truth, the account a copy of it."""
    available = reserved = 0
    for entry in entries:
        available += int(entry["amount"])
        reserved += int(entry["reserved_change"])
    return Balance(available, reserved)


def lapsing(granted: int, used_since: int, available: int) -> int:
    """How much of a temporary grant lapses: what was not used since it came, never below zero.

    Credits are spent temporary-first, so whatever the household booked (less what came back)
    after the grant counts against it; what lapses can never exceed what is available now.
    """
    return max(0, min(granted - max(0, used_since), available))


# -- reading ---------------------------------------------------------------------------------------


async def balance(household_id: int) -> Balance:
    """The household's balance (zero for a household that never had credits)."""
    row = (
        await CreditAccount.select(CreditAccount.available, CreditAccount.reserved)
        .where(CreditAccount.household == household_id)
        .first()
    )
    if row is None:
        return Balance(0, 0)
    return Balance(row["available"], row["reserved"])


async def entries(household_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
    """The household's latest entries, newest first."""
    rows: list[dict[str, Any]] = (
        await CreditEntry.select()
        .where(CreditEntry.household == household_id)
        .order_by(CreditEntry.id, ascending=False)
        .limit(limit)
    )
    return rows


# -- writing ---------------------------------------------------------------------------------------


async def _ensure_account(household_id: int) -> None:
    await CreditAccount.insert(CreditAccount(household=household_id)).on_conflict(action="DO NOTHING")


async def _append(
    household_id: int,
    kind: Kind,
    amount: int,
    key: str,
    *,
    reserved_change: int = 0,
    order_id: int | None = None,
    valid_until: date | None = None,
    month: str = "",
    note: str = "",
    by_user: int | None = None,
    floor: bool = False,
) -> int | None:
    """Write one entry and move the account with it; None when the key was written before.

    With ``floor`` the account moves only if it stays at or above zero available credits (one
    conditional UPDATE); otherwise :class:`CreditsExhausted` rolls the transaction back.
    """
    async with db.atomic():
        await _ensure_account(household_id)
        inserted = (
            await CreditEntry.insert(
                CreditEntry(
                    household=household_id,
                    at=clock.now(),
                    kind=kind.value,
                    amount=amount,
                    reserved_change=reserved_change,
                    order=order_id,
                    key=key[:80],
                    valid_until=valid_until,
                    month=month or clock.local_now().strftime("%Y-%m"),
                    note=note[:2000],
                    by_user=by_user,
                )
            )
            .on_conflict(action="DO NOTHING")
            .returning(CreditEntry.id)
        )
        if not inserted:
            return None
        where: Any = CreditAccount.household == household_id
        if floor:
            where &= CreditAccount.available >= -amount
        moved = (
            await CreditAccount.update(
                {
                    CreditAccount.available: CreditAccount.available + amount,
                    CreditAccount.reserved: CreditAccount.reserved + reserved_change,
                    CreditAccount.updated_at: clock.now(),
                }
            )
            .where(where)
            .returning(CreditAccount.available)
        )
        if not moved:
            raise CreditsExhausted(cost=-amount, balance=(await balance(household_id)).available)
    return int(inserted[0]["id"])


async def grant(
    household_id: int,
    amount: int,
    *,
    key: str,
    month: str = "",
    note: str = "",
    by_user: int | None = None,
) -> int | None:
    """Add granted credits (``key`` e.g. ``grant:2026-12:<household>``); None if granted before."""
    if amount < 0:
        raise ValueError("a grant cannot be negative")
    return await _append(household_id, Kind.GRANT, amount, key, month=month, note=note, by_user=by_user)


async def grant_temporary(
    household_id: int,
    amount: int,
    *,
    valid_until: date,
    key: str,
    note: str = "",
    by_user: int | None = None,
) -> int | None:
    """Add temporary credits that lapse after ``valid_until``; None if granted before under ``key``."""
    if amount <= 0:
        raise ValidationFailed.field("credits", N_("Enter a number of credits above zero."))
    return await _append(
        household_id,
        Kind.TEMPORARY,
        amount,
        f"temporary:{key}",
        valid_until=valid_until,
        note=note,
        by_user=by_user,
    )


async def reserve(household_id: int, order_id: int, amount: int, *, by_user: int | None = None) -> bool:
    """Hold ``amount`` credits for an order; CreditsExhausted when the balance is short.

    One conditional UPDATE: of any number of bookings racing for the last credits, only those
    the balance covers succeed.  False when the order already holds its reservation.
    """
    if amount < 0:
        raise ValueError("a reservation cannot be negative")
    entry = await _append(
        household_id,
        Kind.RESERVE,
        -amount,
        f"reserve:{order_id}",
        reserved_change=amount,
        order_id=order_id,
        by_user=by_user,
        floor=True,
    )
    return entry is not None


async def _reservation(order_id: int) -> dict[str, Any] | None:
    row: dict[str, Any] | None = (
        await CreditEntry.select(CreditEntry.household, CreditEntry.reserved_change)
        .where((CreditEntry.order == order_id) & (CreditEntry.kind == Kind.RESERVE.value))
        .first()
    )
    return row


async def _end_reservation(order_id: int, kind: Kind, note: str, by_user: int | None) -> bool:
    # One key for both endings: a reservation is released or consumed, once, never both.
    held = await _reservation(order_id)
    if held is None:
        return False
    amount = int(held["reserved_change"])
    entry = await _append(
        held["household"],
        kind,
        amount if kind == Kind.RELEASE else 0,
        f"end:{order_id}",
        reserved_change=-amount,
        order_id=order_id,
        note=note,
        by_user=by_user,
    )
    return entry is not None


async def release(order_id: int, *, note: str = "", by_user: int | None = None) -> bool:
    """Give an order's reserved credits back (cancelled, not served); False if already ended."""
    return await _end_reservation(order_id, Kind.RELEASE, note, by_user)


async def consume(order_id: int, *, note: str = "", by_user: int | None = None) -> bool:
    """Spend an order's reserved credits (completed); False if already ended."""
    return await _end_reservation(order_id, Kind.CONSUME, note, by_user)


async def refund(order_id: int, *, note: str = "", by_user: int | None = None) -> bool:
    """Give back the credits a served order used (a dispute upheld); False if not consumed or done before."""
    used = (
        await CreditEntry.select(CreditEntry.household, CreditEntry.reserved_change)
        .where((CreditEntry.order == order_id) & (CreditEntry.kind == Kind.CONSUME.value))
        .first()
    )
    if used is None:
        return False
    amount = -int(used["reserved_change"])
    entry = await _append(
        used["household"],
        Kind.REFUND,
        amount,
        f"refund:{order_id}",
        order_id=order_id,
        note=note,
        by_user=by_user,
    )
    return entry is not None


async def adjust(household_id: int, amount: int, *, key: str, note: str, by_user: int | None) -> int | None:
    """An administrator's correction, with a reason; never takes the balance below zero."""
    if not note.strip():
        raise ValidationFailed.field("note", N_("Write why the credits are corrected."))
    return await _append(
        household_id, Kind.ADJUST, amount, f"adjust:{key}", note=note, by_user=by_user, floor=amount < 0
    )


async def correct(p: Principal, household_id: int, raw_amount: Any, note: str, *, key: str) -> int | None:
    """An administrator corrects a household's credits; ``key`` makes a resent form harmless."""
    if p.role != Role.ADMIN or p.client_id is not None:
        raise PermissionDenied()
    try:
        amount = int(str(raw_amount).strip())
    except ValueError:
        raise ValidationFailed.field(
            "amount", N_("Enter a whole number, below zero to take credits away.")
        ) from None
    if amount == 0 or abs(amount) > MAX_CORRECTION:
        raise ValidationFailed.field(
            "amount", N_("Enter a number from -%(n)s to %(n)s, not zero."), n=MAX_CORRECTION
        )
    async with db.atomic():
        entry = await adjust(household_id, amount, key=key, note=note.strip()[:2000], by_user=p.user_id)
        await audit.record(
            "credits.corrected", principal=p, target_type="household", target_id=household_id, amount=amount
        )
    return entry


async def expire_entry(temporary_entry_id: int) -> int | None:
    """Let the unused part of one temporary grant lapse; the amount lapsed, or None if done before."""
    async with db.atomic():
        grant_row = await CreditEntry.select().where(CreditEntry.id == temporary_entry_id).first()
        if grant_row is None or grant_row["kind"] != Kind.TEMPORARY.value:
            return None
        household_id = grant_row["household"]
        await _ensure_account(household_id)
        await db.lock_row(CreditAccount, await _account_id(household_id))
        spent = await CreditEntry.select(CreditEntry.amount).where(
            (CreditEntry.household == household_id)
            & (CreditEntry.id > temporary_entry_id)
            & CreditEntry.kind.is_in([Kind.RESERVE.value, Kind.RELEASE.value, Kind.REFUND.value])
        )
        used = -sum(int(row["amount"]) for row in spent)
        lapsed = lapsing(int(grant_row["amount"]), used, (await balance(household_id)).available)
        entry = await _append(
            household_id,
            Kind.EXPIRE,
            -lapsed,
            f"expire:{temporary_entry_id}",
            note=str(grant_row["valid_until"]),
            floor=True,
        )
    return None if entry is None else lapsed


async def _account_id(household_id: int) -> int:
    row = await CreditAccount.select(CreditAccount.id).where(CreditAccount.household == household_id).first()
    return int(row["id"]) if row else 0


# -- reconciliation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """An account whose running figures disagree with its entries (or went below zero)."""

    household_id: int
    stored: Balance
    computed: Balance


async def check() -> list[Difference]:
    """Recompute every account from its entries; the accounts that differ or are negative."""
    sums = await CreditEntry.raw(
        "SELECT household, SUM(amount) AS available, SUM(reserved_change) AS reserved "
        "FROM od_credit_entry GROUP BY household"
    )
    computed = {row["household"]: Balance(int(row["available"]), int(row["reserved"])) for row in sums}
    stored = {
        row["household"]: Balance(row["available"], row["reserved"])
        for row in await CreditAccount.select(
            CreditAccount.household, CreditAccount.available, CreditAccount.reserved
        )
    }
    differences = []
    for household_id in sorted(set(computed) | set(stored)):
        have = stored.get(household_id, Balance(0, 0))
        want = computed.get(household_id, Balance(0, 0))
        if have != want or want.available < 0 or want.reserved < 0:
            differences.append(Difference(household_id, have, want))
    if differences:
        log.error("credit accounts differ from their entries", extra={"households": len(differences)})
    return differences
