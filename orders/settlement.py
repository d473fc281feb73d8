"""Credits granted each month and temporarily, and what each provider served each month.

Monthly grants: on the first of each month (local time) every active household with a need
level gets its level's monthly credits, once (the entry key is ``grant:<month>:<household>``).
A household that gets a level during a month gets that month's credits at once — for the days
left when ``CLOUDMARKET_CREDITS_PRORATE`` is on (the default), in full otherwise — and the
grant on the first of the next month gives it the whole amount.

Temporary credits (a steward's handling of a warning) lapse after their last day: the unused
part is written off by an ``expire`` entry (see :func:`orders.credits.expire_entry`).

Settlement: per provider and month, the orders confirmed in that month and their credits.
Until the month is closed the figures follow the orders; closing it (an administrator, once
the month is over) writes one line per order and freezes them: a closed month cannot change.
"""

from __future__ import annotations

import calendar
import logging
import math
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from households.events import LevelChanged, on_level_changed
from households.tables import Household
from marketplace import audit, clock, db
from marketplace.auth import LinkKind, Principal, Role
from marketplace.catalog import localized
from marketplace.catalog_services import current_policies, current_policy
from marketplace.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from marketplace.exports import csv_bytes
from marketplace.i18n import N_, current_locale, gettext
from marketplace.settings import get_settings
from marketplace.tables import Category, UserLink
from orders import credits
from orders.tables import CreditAccount, CreditEntry, Order, Settlement, SettlementLine

log = logging.getLogger("cloudmarket.orders")

GRANT_BATCH = 1000
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


# -- months and proration (plain Python) -----------------------------------------------------------


def parse_month(raw: Any) -> str:
    """A month as ``YYYY-MM``; ValidationFailed next to the ``month`` field otherwise."""
    month = str(raw or "").strip()
    if not MONTH_RE.match(month):
        raise ValidationFailed.field("month", N_("Enter a month as YYYY-MM, e.g. 2026-12."))
    return month


def month_of(at: datetime) -> str:
    """The local month a moment falls in."""
    return at.astimezone(clock.local_zone()).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first moment of ``month`` and of the month after, local time, as UTC."""
    year, number = int(month[:4]), int(month[5:7])
    zone = clock.local_zone()
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def prorated(monthly: int, day: date) -> int:
    """The monthly credits for the days left from ``day`` (counted) to the month's end, rounded up."""
    days = calendar.monthrange(day.year, day.month)[1]
    left = days - day.day + 1
    return math.ceil(monthly * left / days)


# -- monthly grants --------------------------------------------------------------------------------


async def _notify_granted(month: str, granted: dict[int, int]) -> None:
    """Tell the residents of each household what came and what they have now."""
    from notifications.events import Event
    from notifications.services import notify_each

    if not granted:
        return
    links = await UserLink.select(UserLink.user, UserLink.target).where(
        (UserLink.kind == LinkKind.HOUSEHOLD.value) & UserLink.target.is_in([str(h) for h in granted])
    )
    users: dict[int, list[int]] = defaultdict(list)
    for link in links:
        users[int(link["target"])].append(link["user"])
    balances = {
        row["household"]: row["available"]
        for row in await CreditAccount.select(CreditAccount.household, CreditAccount.available).where(
            CreditAccount.household.is_in(list(granted))
        )
    }
    first = date(int(month[:4]), int(month[5:7]), 1)
    await notify_each(
        Event.CREDITS_GRANTED,
        [
            (
                users[household_id],
                {
                    "month": first,
                    "credits": amount,
                    "balance": balances.get(household_id, amount),
                    "link": "/credits",
                },
                f"credits:{month}:{household_id}",
            )
            for household_id, amount in granted.items()
            if users.get(household_id) and amount > 0
        ],
    )


async def grant_month(month: str | None = None) -> int:
    """Grant every active household with a level its monthly credits for ``month`` (this month).

    Safe to run again: a household granted before is skipped.  Uses the level policies in
    force on the first of the month.  Returns how many households were granted now.
    """
    month = parse_month(month or month_of(clock.now()))
    policies = await current_policies(month_bounds(month)[0])
    total = 0
    last_id = 0
    while True:
        households = (
            await Household.select(Household.id, Household.level)
            .where(
                (Household.id > last_id)
                & Household.level.is_not_null()
                & (Household.status == "active")
                & Household.erased_at.is_null()
            )
            .order_by(Household.id)
            .limit(GRANT_BATCH)
        )
        if not households:
            break
        last_id = households[-1]["id"]
        amounts = {
            row["id"]: policies[row["level"]].terms.monthly_credits
            for row in households
            if row["level"] in policies
        }
        if amounts:
            total += len(await _grant_batch(month, amounts))
    log.info("monthly credits granted", extra={"month": month, "households": total})
    return total


NEW_ACCOUNTS = "INSERT INTO od_credit_account (household, available, reserved, updated_at)"
NEW_GRANTS = "INSERT INTO od_credit_entry (household, at, kind, amount, reserved_change, key, month, note)"
ADD_GRANTS = "UPDATE od_credit_account SET available = available + g.column2, updated_at = {}"


def _values(row: str, count: int) -> str:
    """A multi-row VALUES list of ``count`` rows like ``row`` (placeholders only: every value is bound)."""
    return ", ".join([row] * count)


async def _grant_batch(month: str, amounts: dict[int, int]) -> dict[int, int]:
    """One transaction, four statements whatever the batch's size: the accounts, the entries
    (once per household and month: the key decides), the balances of those just granted, the
    notices.  A rerun, or a retry after a crash, grants nobody twice."""
    now = clock.now()
    households = list(amounts)
    accounts = _values("({}, 0, 0, {})", len(households))
    entries = _values("({}, {}, 'grant', {}, 0, {}, {}, 'monthly')", len(households))
    async with db.atomic():
        await CreditAccount.raw(
            f"{NEW_ACCOUNTS} VALUES {accounts} ON CONFLICT (household) DO NOTHING",
            *[value for h in households for value in (h, now)],
        )
        inserted = await CreditEntry.raw(
            f"{NEW_GRANTS} VALUES {entries} ON CONFLICT (key) DO NOTHING RETURNING household, amount",
            *[v for h in households for v in (h, now, amounts[h], f"grant:{month}:{h}", month)],
        )
        granted = {row["household"]: row["amount"] for row in inserted}
        if granted:
            # Only the households granted just now: one granted before (a rerun) stays as it is.
            added = _values("(CAST({} AS INTEGER), CAST({} AS INTEGER))", len(granted))
            await CreditAccount.raw(
                f"{ADD_GRANTS} FROM (VALUES {added}) AS g WHERE od_credit_account.household = g.column1",
                now,
                *[v for item in granted.items() for v in item],
            )
        await _notify_granted(month, granted)
    return granted


@on_level_changed
async def grant_on_new_level(change: LevelChanged) -> None:
    """A household that gets a level gets this month's credits now, prorated as the settings say."""
    if change.new_level is None:
        return
    month = month_of(change.at)
    if await CreditEntry.exists().where(CreditEntry.key == f"grant:{month}:{change.household_id}"):
        return
    policy = await current_policy(change.new_level, change.at)
    if policy is None:
        return
    monthly = policy.terms.monthly_credits
    day = change.at.astimezone(clock.local_zone()).date()
    amount = prorated(monthly, day) if get_settings().credits_prorate else monthly
    async with db.atomic():
        entry = await credits.grant(
            change.household_id,
            amount,
            key=f"grant:{month}:{change.household_id}",
            month=month,
            note=f"level {change.new_level} from {day.isoformat()}",
        )
        if entry is not None:
            await _notify_granted(month, {change.household_id: amount})


# -- temporary credits -----------------------------------------------------------------------------


async def expire_temporary(today: date | None = None) -> int:
    """Write off what is left of temporary credits whose last day is before ``today``; how many lapsed."""
    today = today or clock.local_now().date()
    rows = await CreditEntry.raw(
        "SELECT e.id FROM od_credit_entry e WHERE e.kind = {} AND e.valid_until < {} "
        "AND NOT EXISTS (SELECT 1 FROM od_credit_entry x WHERE x.key = {} || CAST(e.id AS TEXT)) "
        "ORDER BY e.id",
        credits.Kind.TEMPORARY.value,
        today,
        "expire:",
    )
    done = 0
    for row in rows:
        if await credits.expire_entry(row["id"]) is not None:
            done += 1
    return done


# -- settlement ------------------------------------------------------------------------------------


def _is_admin(p: Principal) -> bool:
    return p.role == Role.ADMIN and p.client_id is None


async def _confirmed(month: str) -> list[dict[str, Any]]:
    start, end = month_bounds(month)
    rows: list[dict[str, Any]] = (
        await Order.select(
            Order.id, Order.number, Order.provider, Order.credits, Order.category, Order.confirmed_at
        )
        .where(
            (Order.state == "confirmed")
            & Order.provider.is_not_null()
            & (Order.confirmed_at >= start)
            & (Order.confirmed_at < end)
        )
        .order_by(Order.id)
    )
    return rows


async def refresh(month: str) -> int:
    """Bring the open settlements of ``month`` up to date with the confirmed orders; closed ones stay."""
    month = parse_month(month)
    figures: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for order in await _confirmed(month):
        figures[order["provider"]][0] += 1
        figures[order["provider"]][1] += order["credits"]
    async with db.atomic():
        if figures:
            await Settlement.insert(
                *[Settlement(month=month, provider=pid, key=f"{month}:{pid}") for pid in figures]
            ).on_conflict(action="DO NOTHING")
        for row in await Settlement.select().where(
            (Settlement.month == month) & (Settlement.state == "open")
        ):
            count, total = figures.get(row["provider"], [0, 0])
            if (row["orders_count"], row["credits"]) != (count, total):
                await Settlement.update({Settlement.orders_count: count, Settlement.credits: total}).where(
                    (Settlement.id == row["id"]) & (Settlement.state == "open")
                )
    return len(figures)


async def close_month(p: Principal, month: str) -> int:
    """Freeze ``month``: each provider's settlement gets one line per order and cannot change again.

    Only an administrator, only once the month is over; returns the number of settlements closed.
    """
    if not _is_admin(p):
        raise PermissionDenied()
    month = parse_month(month)
    if month_bounds(month)[1] > clock.now():
        raise ValidationFailed.field("month", N_("A month can be closed once it is over."))
    await refresh(month)
    now = clock.now()
    orders = await _confirmed(month)
    closed = 0
    async with db.atomic():
        settlements = await Settlement.select().where(
            (Settlement.month == month) & (Settlement.state == "open")
        )
        if not settlements and await Settlement.exists().where(Settlement.month == month):
            raise Conflict(N_("This month is already closed."))
        for row in settlements:
            lines = [o for o in orders if o["provider"] == row["provider"]]
            if lines:
                await SettlementLine.insert(
                    *[
                        SettlementLine(
                            settlement=row["id"],
                            order=o["id"],
                            credits=o["credits"],
                            detail={
                                "number": o["number"],
                                "category": o["category"],
                                "confirmed_at": o["confirmed_at"].isoformat(),
                            },
                        )
                        for o in lines
                    ]
                ).on_conflict(action="DO NOTHING")
            done = (
                await Settlement.update(
                    {
                        Settlement.state: "closed",
                        Settlement.closed_at: now,
                        Settlement.closed_by: p.user_id,
                        Settlement.orders_count: len(lines),
                        Settlement.credits: sum(o["credits"] for o in lines),
                    }
                )
                .where((Settlement.id == row["id"]) & (Settlement.state == "open"))
                .returning(Settlement.id)
            )
            closed += len(done)
        await audit.record(
            "settlement.closed", principal=p, target_type="month", target_id=month, settlements=closed
        )
    return closed


async def statement(month: str, provider_id: int | None = None) -> list[dict[str, Any]]:
    """Each provider's settlement of ``month`` with its orders: frozen lines once closed, live before."""
    month = parse_month(month)
    query = Settlement.select(
        *Settlement.all_columns(), Settlement.provider.name.as_alias("provider_name")
    ).where(Settlement.month == month)
    if provider_id is not None:
        query = query.where(Settlement.provider == provider_id)
    settlements = await query.order_by(Settlement.provider)
    live = await _confirmed(month)
    frozen = await SettlementLine.select(
        SettlementLine.settlement, SettlementLine.order, SettlementLine.credits, SettlementLine.detail
    ).where(SettlementLine.settlement.is_in([s["id"] for s in settlements] or [0]))
    for row in settlements:
        if row["state"] == "closed":
            row["lines"] = [
                {"order": line["order"], "credits": line["credits"], **_detail(line["detail"])}
                for line in frozen
                if line["settlement"] == row["id"]
            ]
        else:
            row["lines"] = [
                {
                    "order": o["id"],
                    "credits": o["credits"],
                    "number": o["number"],
                    "category": o["category"],
                    "confirmed_at": o["confirmed_at"].isoformat(),
                }
                for o in live
                if o["provider"] == row["provider"]
            ]
    return settlements


def _detail(raw: Any) -> dict[str, Any]:
    import json

    value = json.loads(raw) if isinstance(raw, str) else raw
    return dict(value or {})


CSV_HEADER = (N_("Order"), N_("Confirmed on"), N_("Category"), N_("Credits"))


async def statement_csv(p: Principal, month: str, provider_id: int) -> tuple[str, bytes]:
    """One provider's settlement of ``month`` as a CSV file: its name and content.

    A header row, one line per confirmed order (the frozen lines once the month is closed) and
    a total line.  The provider's own staff may have it, administrators any provider's.
    """
    if not _is_admin(p):
        if not p.has_role(Role.PROVIDER_STAFF, Role.VOLUNTEER):
            raise PermissionDenied()
        p.ensure_linked(LinkKind.PROVIDER, provider_id)
    month = parse_month(month)
    found = await statement(month, provider_id)
    if not found:
        raise NotFound(N_("This provider has no settlement for that month (yet): nothing was confirmed."))
    lines = sorted(found[0]["lines"], key=lambda line: (line["confirmed_at"], line["order"]))
    names = {
        row["id"]: localized(row, "name", current_locale.get())
        for row in await Category.select(Category.id, Category.name_zh, Category.name_en).where(
            Category.id.is_in([line["category"] for line in lines] or [0])
        )
    }
    rows: list[list[Any]] = [[gettext(label) for label in CSV_HEADER]]
    for line in lines:
        day = datetime.fromisoformat(line["confirmed_at"]).astimezone(clock.local_zone()).date()
        rows.append([line["number"], day.isoformat(), names.get(line["category"], ""), line["credits"]])
    rows.append([gettext(N_("Total")), "", gettext(N_("%(count)s orders"), count=len(lines)),
                 sum(line["credits"] for line in lines)])  # fmt: skip
    return f"settlement-{month}-provider-{provider_id}.csv", csv_bytes(rows)
