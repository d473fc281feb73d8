"""Ranking the candidates of an order: plain Python, no database, every point with its reason.

Five factors, each worth a bounded number of points; a candidate's score is their sum and the
highest score is offered first (ties go to the older offering, so a ranking is repeatable):

==============  ======  ==========================================================
factor          points  how
==============  ======  ==========================================================
distance        0–30    30 at the door, nothing from 10 km; 15 when either place
                        has no coordinates
load            0–20    the share of the offering's capacity still free
rating          0–20    the average rating from 1 (nothing) to 5 (all); 10 unrated
response time   0–15    the median time to accept, 15 at once, nothing from an hour;
                        7.5 with no history
no-shows        −25–0   the share of the provider's orders it did not turn up for
==============  ======  ==========================================================

Each factor leaves a :class:`Reason` (an English message id with its figures) that is stored
on the offer as JSON and translated when a steward reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from marketplace.i18n import N_, gettext
from providers.candidates import Candidate

DISTANCE_POINTS = 30.0
DISTANCE_ZERO_KM = 10.0
LOAD_POINTS = 20.0
RATING_POINTS = 20.0
RESPONSE_POINTS = 15.0
RESPONSE_ZERO_SECONDS = 3600
NO_SHOW_POINTS = 25.0
EARTH_RADIUS_KM = 6371.0

Point = tuple[float, float]


@dataclass(frozen=True)
class Reason:
    """One factor's part of a score: its figure, its points and a sentence for people."""

    factor: str
    value: float | None
    points: float
    text: str
    params: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = dict(self.params)
        return data


@dataclass(frozen=True)
class Ranked:
    """A candidate with its place in the ranking, its score and why."""

    candidate: Candidate
    rank: int
    score: float
    reasons: tuple[Reason, ...]

    def reasons_json(self) -> list[dict[str, Any]]:
        return [reason.as_dict() for reason in self.reasons]


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance between two (latitude, longitude) points in kilometres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _place(latitude: float | None, longitude: float | None) -> Point | None:
    if latitude is None or longitude is None:
        return None
    return (latitude, longitude)


def _distance(candidate: Candidate, home: Point | None) -> Reason:
    start = _place(candidate.latitude, candidate.longitude)
    if home is None or start is None:
        return Reason("distance", None, DISTANCE_POINTS / 2, N_("Distance unknown"), {})
    km = round(distance_km(home, start), 1)
    points = DISTANCE_POINTS * max(0.0, 1 - km / DISTANCE_ZERO_KM)
    return Reason("distance", km, round(points, 2), N_("%(km)s km away"), {"km": km})


def _load(candidate: Candidate) -> Reason:
    capacity = max(candidate.capacity, 1)
    spare = max(0, candidate.spare)
    points = LOAD_POINTS * spare / capacity
    return Reason(
        "load",
        candidate.active_orders,
        round(points, 2),
        N_("%(active)s of %(capacity)s orders in hand"),
        {"active": candidate.active_orders, "capacity": candidate.capacity},
    )


def _rating(candidate: Candidate) -> Reason:
    average = candidate.stats.average_rating
    if average is None:
        return Reason("rating", None, RATING_POINTS / 2, N_("Not rated yet"), {})
    points = RATING_POINTS * min(1.0, max(0.0, (average - 1) / 4))
    return Reason(
        "rating",
        average,
        round(points, 2),
        N_("Rated %(rating)s from %(count)s ratings"),
        {"rating": average, "count": candidate.stats.rating_count},
    )


def _response(candidate: Candidate) -> Reason:
    seconds = candidate.stats.median_accept_seconds
    if seconds is None:
        return Reason("response", None, RESPONSE_POINTS / 2, N_("No response history yet"), {})
    points = RESPONSE_POINTS * max(0.0, 1 - seconds / RESPONSE_ZERO_SECONDS)
    minutes = max(1, math.ceil(seconds / 60))
    return Reason(
        "response",
        seconds,
        round(points, 2),
        N_("Usually accepts within %(minutes)s minutes"),
        {"minutes": minutes},
    )


def _no_shows(candidate: Candidate) -> Reason:
    missed, orders = candidate.stats.no_shows, candidate.orders_total
    if not orders or not missed:
        return Reason("no_shows", 0, 0.0, N_("No missed services on record"), {})
    return Reason(
        "no_shows",
        missed,
        -round(NO_SHOW_POINTS * min(1.0, missed / orders), 2),
        N_("Did not turn up for %(missed)s of %(orders)s orders"),
        {"missed": missed, "orders": orders},
    )


def score(candidate: Candidate, home: Point | None) -> tuple[float, tuple[Reason, ...]]:
    """A candidate's score for an order at ``home`` (None when the household has no coordinates)."""
    reasons = (
        _distance(candidate, home),
        _load(candidate),
        _rating(candidate),
        _response(candidate),
        _no_shows(candidate),
    )
    return round(sum(r.points for r in reasons), 2), reasons


def rank(candidates: Iterable[Candidate], home: Point | None = None) -> list[Ranked]:
    """The candidates best first; equal scores keep the older offering first."""
    scored = [(c, *score(c, home)) for c in candidates]
    scored.sort(key=lambda item: (-item[1], item[0].offering_id))
    return [
        Ranked(candidate=c, rank=i, score=points, reasons=reasons)
        for i, (c, points, reasons) in enumerate(scored, start=1)
    ]


def explain(reasons: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stored reasons for a reader: factor, points and the sentence in the reader's language."""
    return [
        {
            "factor": r.get("factor", ""),
            "points": r.get("points", 0),
            "text": gettext(str(r.get("text", "")), **dict(r.get("params") or {})),
        }
        for r in reasons
    ]
