"""The figures of a report: plain functions over the orders, households and warnings tables.

A report covers one **scope** (a district, a street, a community or a provider) over one
**period** (a month, ``2026-11``, or a quarter, ``2026-Q4``, counted in the service's time
zone).  Each section is one or two SQL queries that run on SQLite and PostgreSQL alike and
return a few rows: counts are grouped in the database; percentiles are PostgreSQL's
``percentile_cont`` there, and on SQLite the two values around each percentile, picked by
rank with a window function and interpolated here.

Definitions (shown on the pages too):

- orders: submitted in the period; *acceptance rate* = accepted ÷ (submitted − cancelled
  before acceptance); *completion rate* = completed ÷ accepted;
- time to accept = submission → acceptance; time to serve = submission → start of service
  (check-in, or completion where no check-in was recorded); median and 90th percentile by
  linear interpolation between ranks, in minutes;
- level 1 households served: level 1 households of the scope (level in force now) with an
  order completed in the period;
- credits granted = monthly and temporary grants; spent = credits of completed orders,
  less refunds;
- satisfaction: ratings given (orders confirmed) in the period;
- warnings raised in the period, and of those the ones verified by their deadline;
- households not reached: level 1–2 households with no order and no verification visit in
  the 60 days up to the end of the period (or today, for the current period).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from households.tables import Community, District, Street
from marketplace import clock, db
from marketplace.errors import NotFound, ValidationFailed
from marketplace.i18n import N_
from marketplace.tables import Category
from orders.tables import Order
from providers.tables import Provider

# Bump when a figure's definition changes: cached reports of an older version are not used.
VERSION = 1
NOT_REACHED_DAYS = 60
LEVELS = (1, 2, 3)
PERCENTILES = (50, 90)
SORT_MEMORY = "64MB"  # PostgreSQL's work_mem for the percentile query only

SCOPE_KINDS = ("district", "street", "community", "provider")
SCOPE_LABELS = {
    "district": N_("District"),
    "street": N_("Street"),
    "community": N_("Community"),
    "provider": N_("Provider"),
}


# -- scope and period ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a report covers: ``district:1``, ``street:3``, ``community:5`` or ``provider:7``."""

    kind: str
    id: int

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, _, ref = (text or "").partition(":")
        if kind not in SCOPE_KINDS or not ref.isdigit():
            raise ValidationFailed.field("scope", N_("Choose what the report covers."))
        return cls(kind, int(ref))

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def is_area(self) -> bool:
        return self.kind != "provider"


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


@dataclass(frozen=True)
class Period:
    """A month (``2026-11``) or a quarter (``2026-Q4``) in the service's zone; ``end`` is exclusive."""

    code: str
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str) -> Period:
        text = (text or "").strip().upper()
        zone = clock.local_zone()
        if match := _MONTH.match(text):
            year, month = int(match[1]), int(match[2])
            if not 1 <= month <= 12:
                raise ValidationFailed.field("period", N_("Choose a month or a quarter."))
            first, months = month, 1
        elif match := _QUARTER.match(text):
            year, first, months = int(match[1]), 3 * int(match[2]) - 2, 3
        else:
            raise ValidationFailed.field("period", N_("Choose a month or a quarter."))
        if not 2000 <= year <= 2100:
            raise ValidationFailed.field("period", N_("Choose a month or a quarter."))
        after = first + months
        start = datetime(year, first, 1, tzinfo=zone)
        end = datetime(year + (after - 1) // 12, (after - 1) % 12 + 1, 1, tzinfo=zone)
        return cls(text, start, end)

    @property
    def is_quarter(self) -> bool:
        return "Q" in self.code

    def as_of(self) -> datetime:
        """Where "the last 60 days" end: the period's end, or now while the period runs."""
        return min(self.end, clock.now())

    def is_current(self) -> bool:
        return self.start <= clock.now() < self.end


def current_month() -> str:
    return clock.local_now().strftime("%Y-%m")


def recent_periods(months: int = 12) -> list[str]:
    """The last ``months`` months and the quarters they fall in, newest first (for the picker)."""
    today = clock.local_now()
    year, month = today.year, today.month
    codes: list[str] = []
    for _ in range(months):
        quarter = f"{year}-Q{(month - 1) // 3 + 1}"
        if quarter not in codes:
            codes.append(quarter)
        codes.append(f"{year}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return codes


# -- the figures --------------------------------------------------------------------------------


class CategoryCount(msgspec.Struct):
    """Orders of one category at one need level."""

    category: str
    name_zh: str
    name_en: str
    level: int
    orders: int


class LevelFigures(msgspec.Struct):
    """Orders at one need level: how many were accepted and served, and how fast (minutes)."""

    level: int
    submitted: int
    accepted: int
    completed: int
    cancelled: int
    escalated: int
    sla_missed: int
    acceptance_rate: float | None
    completion_rate: float | None
    accept_median_minutes: float | None
    accept_p90_minutes: float | None
    serve_median_minutes: float | None
    serve_p90_minutes: float | None


class Reach(msgspec.Struct):
    """Level 1 households served in the period; level 1–2 households not reached in 60 days."""

    level1_households: int
    level1_served: int
    level1_share: float | None
    not_reached: int
    not_reached_level1: int
    not_reached_level2: int


class Credits(msgspec.Struct):
    granted: int
    spent: int


class Satisfaction(msgspec.Struct):
    """Ratings (1–5 stars) given in the period; ``by_stars[0]`` counts one-star ratings."""

    rated: int
    average: float | None
    by_stars: list[int]


class WarningFigures(msgspec.Struct):
    raised: int
    verified: int
    verified_on_time: int
    on_time_rate: float | None
    open_overdue: int


class AreaRow(msgspec.Struct):
    """One street of a district, or one community of a street."""

    id: int
    name: str
    orders: int
    completed: int
    not_reached: int


class Figures(msgspec.Struct):
    """Everything a report shows; stored as JSON in the cache and served by the API."""

    version: int
    scope: str
    scope_name: str
    period: str
    start: datetime
    end: datetime
    as_of: datetime
    categories: list[CategoryCount]
    levels: list[LevelFigures]
    credits: Credits
    satisfaction: Satisfaction
    reach: Reach | None = None
    warnings: WarningFigures | None = None
    areas: list[AreaRow] = msgspec.field(default_factory=list)


Progress = Callable[[int, int], Awaitable[None]]


async def _no_progress(done: int, total: int) -> None:
    return None


# -- SQL helpers -----------------------------------------------------------------------------------


def _seconds(later: str, earlier: str) -> str:
    """SQL for the seconds between two timestamp columns."""
    if db.is_postgres():
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def _area_filter(community_column: str, scope: Scope) -> tuple[str, list[Any]]:
    """SQL that keeps rows whose community lies in an area scope (not for providers)."""
    if scope.kind == "community":
        return f"{community_column} = {{}}", [scope.id]
    if scope.kind == "street":
        return f"{community_column} IN (SELECT id FROM hh_community WHERE street = {{}})", [scope.id]
    if scope.kind == "district":
        return (
            f"{community_column} IN (SELECT c.id FROM hh_community c "
            "JOIN hh_street s ON s.id = c.street WHERE s.district = {})",
            [scope.id],
        )
    raise ValueError(f"not an area scope: {scope}")


def _order_filter(scope: Scope) -> tuple[str, list[Any]]:
    if scope.kind == "provider":
        return "o.provider = {}", [scope.id]
    return _area_filter("o.community", scope)


async def _rows(sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    # The SQL is built here from fixed fragments; every value is bound.
    return await Order.raw(sql, *values)  # type: ignore[no-any-return]


def _int(value: Any) -> int:
    return int(value or 0)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def interpolate(ranked: dict[int, float], n: int, pct: int) -> float | None:
    """The ``pct`` percentile of ``n`` sorted values, given the values at the ranks around it.

    Linear interpolation between ranks (as numpy's default): position ``(n - 1) * pct / 100``.
    """
    if n == 0:
        return None
    low = (n - 1) * pct // 100
    high = ((n - 1) * pct + 99) // 100
    fraction = (n - 1) * pct / 100 - low
    a, b = ranked[low + 1], ranked[high + 1]
    return a + (b - a) * fraction


# -- the sections ----------------------------------------------------------------------------------


async def scope_name(scope: Scope) -> str:
    """The scope's name; NotFound if it does not exist."""
    table: Any = {"district": District, "street": Street, "community": Community, "provider": Provider}[
        scope.kind
    ]
    row = await table.select(table.name).where(table.id == scope.id).first()
    if row is None:
        raise NotFound()
    return str(row["name"])


async def _order_groups(scope: Scope, period: Period) -> list[dict[str, Any]]:
    """Orders submitted in the period by category and level, with how far they got: one pass."""
    where, values = _order_filter(scope)
    return await _rows(
        "SELECT o.category AS category, o.level AS level, COUNT(*) AS submitted, "
        "SUM(CASE WHEN o.accepted_at IS NOT NULL THEN 1 ELSE 0 END) AS accepted, "
        "SUM(CASE WHEN o.completed_at IS NOT NULL THEN 1 ELSE 0 END) AS completed, "
        "SUM(CASE WHEN o.state = 'cancelled' THEN 1 ELSE 0 END) AS cancelled, "
        "SUM(CASE WHEN o.state = 'cancelled' AND o.accepted_at IS NULL THEN 1 ELSE 0 END) AS withdrawn, "
        "SUM(CASE WHEN o.state = 'escalated' THEN 1 ELSE 0 END) AS escalated, "
        "SUM(CASE WHEN o.sla_missed THEN 1 ELSE 0 END) AS sla_missed "
        f"FROM od_order o WHERE o.submitted_at >= {{}} AND o.submitted_at < {{}} AND {where} "
        "GROUP BY o.category, o.level",
        [period.start, period.end, *values],
    )


async def categories(
    scope: Scope, period: Period, groups: list[dict[str, Any]] | None = None
) -> list[CategoryCount]:
    rows = groups if groups is not None else await _order_groups(scope, period)
    names = {
        row["id"]: row
        for row in await Category.select(
            Category.id, Category.code, Category.name_zh, Category.name_en, Category.sort_order
        )
    }
    result = [
        CategoryCount(
            category=names[row["category"]]["code"],
            name_zh=names[row["category"]]["name_zh"],
            name_en=names[row["category"]]["name_en"],
            level=_int(row["level"]),
            orders=_int(row["submitted"]),
        )
        for row in rows
    ]
    order = {row["code"]: (row["sort_order"], row["code"]) for row in names.values()}
    return sorted(result, key=lambda c: (order[c.category], c.level))


def _level_counts(groups: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    for row in groups:
        level = counts.setdefault(_int(row["level"]), {})
        for key, value in row.items():
            if key not in ("category", "level"):
                level[key] = level.get(key, 0) + _int(value)
    return counts


async def _durations(scope: Scope, period: Period) -> dict[tuple[str, int], dict[str, float | None]]:
    """Median and 90th percentile of the time to accept and to serve, per level, in minutes.

    PostgreSQL computes them with ``percentile_cont`` (one pass); SQLite has no such aggregate,
    so there a window function picks the two ranks around each percentile.  Both interpolate
    linearly at ``(n - 1) * p``: the same figures on either database (the tests check both).
    """
    where, values = _order_filter(scope)
    served = "COALESCE(o.started_at, o.completed_at)"
    base = f"FROM od_order o WHERE o.submitted_at >= {{}} AND o.submitted_at < {{}} AND {where}"
    measures = (
        ("accept", _seconds("o.accepted_at", "o.submitted_at"), "o.accepted_at IS NOT NULL"),
        ("serve", _seconds(served, "o.submitted_at"), f"{served} IS NOT NULL"),
    )
    params = [period.start, period.end, *values] * len(measures)
    result: dict[tuple[str, int], dict[str, float | None]] = {}
    if db.is_postgres():
        selects = [
            f"SELECT '{name}' AS m, o.level AS g, "
            + ", ".join(
                f"percentile_cont({p / 100}) WITHIN GROUP (ORDER BY {expr}) AS p{p}" for p in PERCENTILES
            )
            + f" {base} AND {condition} GROUP BY o.level"
            for name, expr, condition in measures
        ]
        async with db.atomic():
            # The sorts behind the percentiles spill to disk at the default 4 MB from ~50,000 orders.
            await db.engine().run_ddl(f"SET LOCAL work_mem = '{SORT_MEMORY}'")
            rows = await _rows(" UNION ALL ".join(selects), params)
        for row in rows:
            result[(str(row["m"]), _int(row["g"]))] = {
                f"p{p}": round(float(row[f"p{p}"]) / 60, 1) for p in PERCENTILES
            }
        return result
    ranks = " OR ".join(
        f"rn = 1 + (n - 1) * {p} / 100 OR rn = 1 + ((n - 1) * {p} + 99) / 100" for p in PERCENTILES
    )
    union = " UNION ALL ".join(
        f"SELECT '{name}' AS m, o.level AS g, {expr} AS v {base} AND {condition}"
        for name, expr, condition in measures
    )
    rows = await _rows(
        f"WITH d AS ({union}), r AS (SELECT m, g, v, ROW_NUMBER() OVER (PARTITION BY m, g ORDER BY v) AS rn, "
        "COUNT(*) OVER (PARTITION BY m, g) AS n FROM d) "
        f"SELECT m, g, rn, n, v FROM r WHERE {ranks}",
        params,
    )
    grouped: dict[tuple[str, int], tuple[int, dict[int, float]]] = {}
    for row in rows:
        key = (str(row["m"]), _int(row["g"]))
        n, ranked = grouped.setdefault(key, (_int(row["n"]), {}))
        ranked[_int(row["rn"])] = float(row["v"]) / 60
    for key, (n, ranked) in grouped.items():
        result[key] = {}
        for pct in PERCENTILES:
            value = interpolate(ranked, n, pct)
            result[key][f"p{pct}"] = round(value, 1) if value is not None else None
    return result


async def levels(
    scope: Scope, period: Period, groups: list[dict[str, Any]] | None = None
) -> list[LevelFigures]:
    counts = _level_counts(groups if groups is not None else await _order_groups(scope, period))
    times = await _durations(scope, period)
    result = []
    for level in sorted(set(LEVELS) | set(counts)):
        c = counts.get(level, {})
        accept = times.get(("accept", level), {})
        serve = times.get(("serve", level), {})
        submitted, accepted = c.get("submitted", 0), c.get("accepted", 0)
        result.append(
            LevelFigures(
                level=level,
                submitted=submitted,
                accepted=accepted,
                completed=c.get("completed", 0),
                cancelled=c.get("cancelled", 0),
                escalated=c.get("escalated", 0),
                sla_missed=c.get("sla_missed", 0),
                acceptance_rate=_rate(accepted, submitted - c.get("withdrawn", 0)),
                completion_rate=_rate(c.get("completed", 0), accepted),
                accept_median_minutes=accept.get("p50"),
                accept_p90_minutes=accept.get("p90"),
                serve_median_minutes=serve.get("p50"),
                serve_p90_minutes=serve.get("p90"),
            )
        )
    return result


def _not_reached_sql(scope: Scope, period: Period) -> tuple[str, list[Any]]:
    """Level 1–2 active households of an area with no order and no visit in the 60 days to ``as_of``."""
    where, values = _area_filter("h.community", scope)
    as_of = period.as_of()
    since = as_of - timedelta(days=NOT_REACHED_DAYS)
    since_day = since.astimezone(clock.local_zone()).date()
    sql = (
        "h.level IN (1, 2) AND h.status = 'active' AND h.erased_at IS NULL "
        f"AND {where} "
        "AND NOT EXISTS (SELECT 1 FROM od_order o WHERE o.household = h.id "
        "AND o.submitted_at >= {} AND o.submitted_at < {}) "
        "AND NOT EXISTS (SELECT 1 FROM hh_verification v JOIN hh_warning w ON w.id = v.warning "
        "WHERE w.household = h.id AND v.visited_on >= {} AND v.visited_on <= {})"
    )
    return sql, [*values, since, as_of, since_day, as_of.astimezone(clock.local_zone()).date()]


async def _not_reached_groups(scope: Scope, period: Period) -> list[dict[str, Any]]:
    """Households not reached, counted by street, community and level (for reach and areas alike)."""
    condition, params = _not_reached_sql(scope, period)
    return await _rows(
        "SELECT c.street AS street, h.community AS community, h.level AS level, COUNT(*) AS n "
        f"FROM hh_household h JOIN hh_community c ON c.id = h.community WHERE {condition} "
        "GROUP BY c.street, h.community, h.level",
        params,
    )


async def reach(scope: Scope, period: Period, missed: list[dict[str, Any]] | None = None) -> Reach:
    where, values = _area_filter("h.community", scope)
    served = await _rows(
        "SELECT COUNT(*) AS n, SUM(CASE WHEN EXISTS (SELECT 1 FROM od_order o WHERE o.household = h.id "
        "AND o.completed_at >= {} AND o.completed_at < {}) THEN 1 ELSE 0 END) AS served "
        "FROM hh_household h WHERE h.level = 1 AND h.status = 'active' AND h.erased_at IS NULL "
        f"AND {where}",
        [period.start, period.end, *values],
    )
    by_level: dict[int, int] = {}
    for row in missed if missed is not None else await _not_reached_groups(scope, period):
        by_level[_int(row["level"])] = by_level.get(_int(row["level"]), 0) + _int(row["n"])
    total, hit = _int(served[0]["n"]), _int(served[0]["served"])
    return Reach(
        level1_households=total,
        level1_served=hit,
        level1_share=_rate(hit, total),
        not_reached=sum(by_level.values()),
        not_reached_level1=by_level.get(1, 0),
        not_reached_level2=by_level.get(2, 0),
    )


async def not_reached_households(scope: Scope, period: Period, limit: int = 20) -> list[dict[str, Any]]:
    """The households not reached, level 1 first, longest on the registry first (for lists)."""
    condition, params = _not_reached_sql(scope, period)
    return await _rows(
        "SELECT h.id AS id, h.code AS code, h.level AS level, h.community AS community "
        f"FROM hh_household h WHERE {condition} ORDER BY h.level, h.id LIMIT {int(limit)}",
        params,
    )


async def not_reached_count(scope: Scope, period: Period) -> int:
    condition, params = _not_reached_sql(scope, period)
    rows = await _rows(f"SELECT COUNT(*) AS n FROM hh_household h WHERE {condition}", params)
    return _int(rows[0]["n"])


async def credits(scope: Scope, period: Period) -> Credits:
    if scope.kind == "provider":
        where = 'e."order" IN (SELECT o.id FROM od_order o WHERE o.provider = {})'
        values: list[Any] = [scope.id]
    else:
        area, values = _area_filter("h.community", scope)
        where = f"e.household IN (SELECT h.id FROM hh_household h WHERE {area})"
    rows = await _rows(
        "SELECT SUM(CASE WHEN e.kind IN ('grant', 'temporary') THEN e.amount ELSE 0 END) AS granted, "
        "SUM(CASE WHEN e.kind = 'consume' THEN -e.reserved_change "
        "WHEN e.kind = 'refund' THEN -e.amount ELSE 0 END) AS spent "
        f"FROM od_credit_entry e WHERE e.at >= {{}} AND e.at < {{}} AND {where}",
        [period.start, period.end, *values],
    )
    return Credits(granted=_int(rows[0]["granted"]), spent=_int(rows[0]["spent"]))


async def satisfaction(scope: Scope, period: Period) -> Satisfaction:
    where, values = _order_filter(scope)
    rows = await _rows(
        "SELECT o.rating AS rating, COUNT(*) AS n FROM od_order o WHERE o.rating IS NOT NULL "
        f"AND o.confirmed_at >= {{}} AND o.confirmed_at < {{}} AND {where} GROUP BY o.rating",
        [period.start, period.end, *values],
    )
    stars = [0] * 5
    for row in rows:
        if 1 <= _int(row["rating"]) <= 5:
            stars[_int(row["rating"]) - 1] += _int(row["n"])
    rated = sum(stars)
    average = sum((i + 1) * n for i, n in enumerate(stars)) / rated if rated else None
    return Satisfaction(
        rated=rated, average=round(average, 2) if average is not None else None, by_stars=stars
    )


async def warnings(scope: Scope, period: Period) -> WarningFigures:
    where, values = _area_filter("w.community", scope)
    raised = await _rows(
        "SELECT COUNT(*) AS raised, "
        "SUM(CASE WHEN w.verified_at IS NOT NULL THEN 1 ELSE 0 END) AS verified, "
        "SUM(CASE WHEN w.verified_at IS NOT NULL AND w.verified_at <= w.deadline_at THEN 1 ELSE 0 END) "
        "AS on_time FROM hh_warning w "
        f"WHERE w.opened_at >= {{}} AND w.opened_at < {{}} AND {where}",
        [period.start, period.end, *values],
    )
    as_of = period.as_of()
    overdue = await _rows(
        "SELECT COUNT(*) AS n FROM hh_warning w WHERE w.status = 'open' AND w.deadline_at <= {} "
        f"AND w.opened_at < {{}} AND {where}",
        [as_of, period.end, *values],
    )
    count, on_time = _int(raised[0]["raised"]), _int(raised[0]["on_time"])
    return WarningFigures(
        raised=count,
        verified=_int(raised[0]["verified"]),
        verified_on_time=on_time,
        on_time_rate=_rate(on_time, count),
        open_overdue=_int(overdue[0]["n"]),
    )


async def areas(scope: Scope, period: Period, missed: list[dict[str, Any]] | None = None) -> list[AreaRow]:
    """A district's streets or a street's communities, side by side."""
    if scope.kind == "district":
        children = await Street.select(Street.id, Street.name).where(Street.district == scope.id)
        group = "c.street"
    elif scope.kind == "street":
        children = await Community.select(Community.id, Community.name).where(Community.street == scope.id)
        group = "c.id"
    else:
        return []
    where, values = _order_filter(scope)
    orders = await _rows(
        f"SELECT {group} AS area, COUNT(*) AS n, "
        "SUM(CASE WHEN o.completed_at IS NOT NULL THEN 1 ELSE 0 END) AS completed "
        "FROM od_order o JOIN hh_community c ON c.id = o.community "
        f"WHERE o.submitted_at >= {{}} AND o.submitted_at < {{}} AND {where} GROUP BY {group}",
        [period.start, period.end, *values],
    )
    by_orders = {_int(r["area"]): r for r in orders}
    by_missed: dict[int, int] = {}
    for row in missed if missed is not None else await _not_reached_groups(scope, period):
        area = _int(row["street"] if scope.kind == "district" else row["community"])
        by_missed[area] = by_missed.get(area, 0) + _int(row["n"])
    return [
        AreaRow(
            id=child["id"],
            name=child["name"],
            orders=_int(by_orders.get(child["id"], {}).get("n")),
            completed=_int(by_orders.get(child["id"], {}).get("completed")),
            not_reached=by_missed.get(child["id"], 0),
        )
        for child in sorted(children, key=lambda c: c["id"])
    ]


STEPS_AREA = 7
STEPS_PROVIDER = 4


async def compute(scope: Scope, period: Period, progress: Progress = _no_progress) -> Figures:
    """Every figure of a report, section by section; ``progress(done, total)`` after each."""
    total = STEPS_AREA if scope.is_area else STEPS_PROVIDER
    done = 0

    async def step() -> None:
        nonlocal done
        done += 1
        await progress(done, total)

    name = await scope_name(scope)
    figures = Figures(
        version=VERSION,
        scope=str(scope),
        scope_name=name,
        period=period.code,
        start=period.start,
        end=period.end,
        as_of=period.as_of(),
        categories=[],
        levels=[],
        credits=Credits(0, 0),
        satisfaction=Satisfaction(0, None, [0] * 5),
    )
    groups = await _order_groups(scope, period)
    figures.categories = await categories(scope, period, groups)
    await step()
    figures.levels = await levels(scope, period, groups)
    await step()
    figures.credits = await credits(scope, period)
    await step()
    figures.satisfaction = await satisfaction(scope, period)
    await step()
    if scope.is_area:
        missed = await _not_reached_groups(scope, period)
        figures.reach = await reach(scope, period, missed)
        await step()
        figures.warnings = await warnings(scope, period)
        await step()
        figures.areas = await areas(scope, period, missed)
        await step()
    return figures
