"""Who could serve an order: the candidate query the orders package routes with.

A candidate is an active offering of the category, by a verified provider that is taking
orders, serving the household's community, open over the whole service window by its weekly
hours (in the service's time zone), with capacity left.  One query, whatever the number of
providers: the composite index on ``pv_service_area (community, category)`` narrows the rows
to the offerings of one category in one community before anything else is read, and the
opening hours are checked by ``pv_opening_hours (offering, weekday)`` in the same statement.

A steward dispatching an escalated order by hand also sees the offerings that are full or
closed over the window (``include_unavailable=True``): the same query without those two
conditions, with ``is_open`` telling which are open.

Capacity: ``pv_offering.capacity`` is how many orders an offering carries at once and
``pv_offering.active_orders`` how many it carries now.  The orders package keeps that figure
with :mod:`providers.load` (one more on acceptance, one fewer when the order ends), so a
candidate always has ``active_orders < capacity``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplace import clock
from providers.rules import Stats, Status, stats_from_row, window_spans
from providers.tables import Offering

_SELECT = """
SELECT o.id AS offering_id, o.provider AS provider_id, p.kind AS kind, p.team AS team_id,
       o.credit_cost AS credit_cost, o.duration_minutes AS duration_minutes,
       o.capacity AS capacity, o.active_orders AS active_orders,
       COALESCE(o.latitude, p.latitude) AS latitude, COALESCE(o.longitude, p.longitude) AS longitude,
       s.offers_total AS offers_total, s.offers_accepted AS offers_accepted,
       s.median_accept_seconds AS median_accept_seconds, s.orders_total AS orders_total,
       s.orders_completed AS orders_completed, s.no_shows AS no_shows,
       s.rating_count AS rating_count, s.rating_sum AS rating_sum{open_column}
FROM pv_service_area a
JOIN pv_offering o ON o.id = a.offering
JOIN pv_provider p ON p.id = o.provider
LEFT JOIN pv_provider_stats s ON s.provider = p.id
WHERE a.community = {} AND a.category = {}
  AND o.is_active = {} AND p.is_active = {} AND p.status = {}
"""
_HAS_ROOM = "  AND o.active_orders < o.capacity\n"
_OPEN = """EXISTS (SELECT 1 FROM pv_opening_hours h
              WHERE h.offering = o.id AND h.weekday = {} AND h.opens_at <= {} AND h.closes_at >= {})"""


@dataclass(frozen=True)
class Candidate:
    """An offering that could take the order, with what ranking needs to know about it."""

    provider_id: int
    offering_id: int
    kind: str
    team_id: int | None
    credit_cost: int
    duration_minutes: int
    capacity: int
    active_orders: int
    latitude: float | None
    longitude: float | None
    stats: Stats
    # Orders the provider has closed (served or missed): the base of its no-show share.
    orders_total: int = 0
    # Open over the whole window (always true unless asked for unavailable offerings too).
    is_open: bool = True

    @property
    def is_full(self) -> bool:
        return self.active_orders >= self.capacity

    @property
    def spare(self) -> int:
        """Orders it can still take at once."""
        return self.capacity - self.active_orders


def _candidate(row: dict[str, Any]) -> Candidate:
    has_stats = row["offers_total"] is not None
    return Candidate(
        provider_id=row["provider_id"],
        offering_id=row["offering_id"],
        kind=row["kind"],
        team_id=row["team_id"],
        credit_cost=row["credit_cost"],
        duration_minutes=row["duration_minutes"],
        capacity=row["capacity"],
        active_orders=row["active_orders"],
        latitude=row["latitude"],
        longitude=row["longitude"],
        stats=stats_from_row(row if has_stats else None),
        orders_total=row["orders_total"] or 0,
        is_open=bool(row.get("is_open", True)),
    )


async def candidates(
    category_id: int,
    community_id: int,
    window_start: datetime,
    window_end: datetime,
    *,
    exclude_provider_ids: Iterable[int] = (),
    limit: int | None = None,
    include_unavailable: bool = False,
) -> list[Candidate]:
    """Offerings that could serve ``category_id`` in ``community_id`` over the window, by offering id.

    ``exclude_provider_ids`` drops providers that declined or let an offer expire.  The
    window is two aware datetimes, at most a day apart (ValueError otherwise).
    ``include_unavailable`` keeps offerings that are full or closed over the window (a
    steward's dispatch): see ``Candidate.is_full`` and ``Candidate.is_open``.
    """
    spans = window_spans(window_start, window_end, clock.local_zone())
    open_args: list[Any] = []
    for span in spans:
        open_args += [span.weekday, span.start, span.end]
    is_open = " AND ".join(_OPEN for _ in spans)
    args: list[Any] = []
    if include_unavailable:
        sql = _SELECT.replace("{open_column}", f",\n       CASE WHEN {is_open} THEN 1 ELSE 0 END AS is_open")
        args += open_args
    else:
        sql = _SELECT.replace("{open_column}", "")
    args += [community_id, category_id, True, True, Status.VERIFIED.value]
    if not include_unavailable:
        sql += _HAS_ROOM
        sql += "".join(f"  AND {_OPEN}\n" for _ in spans)
        args += open_args
    excluded = sorted({int(pid) for pid in exclude_provider_ids})
    if excluded:
        sql += "  AND o.provider NOT IN (" + ", ".join("{}" for _ in excluded) + ")\n"
        args += excluded
    sql += "ORDER BY o.id"
    if limit is not None:
        sql += " LIMIT {}"
        args.append(int(limit))
    rows = await Offering.raw(sql, *args)
    return [_candidate(row) for row in rows]
