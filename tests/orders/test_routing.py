"""Ranking: every factor moves a candidate the way it should, and every point has its reason."""

from __future__ import annotations

from dataclasses import replace

from marketplace.i18n import current_locale
from orders import routing
from providers.candidates import Candidate
from providers.rules import Stats

HOME = (32.11, 118.86)
NO_STATS = Stats(None, None, None, None, None, 0)


def cand(
    offering_id: int, *, km: float | None = 1.0, active: int = 0, capacity: int = 4, **stats
) -> Candidate:
    place = (None, None) if km is None else (HOME[0], HOME[1] + km * 0.0106)
    return Candidate(
        provider_id=offering_id * 10,
        offering_id=offering_id,
        kind="social_organization",
        team_id=None,
        credit_cost=0,
        duration_minutes=60,
        capacity=capacity,
        active_orders=active,
        latitude=place[0],
        longitude=place[1],
        stats=replace(NO_STATS, **{k: v for k, v in stats.items() if k != "orders_total"}),
        orders_total=stats.get("orders_total", 0),
    )


def order_of(ranked: list[routing.Ranked]) -> list[int]:
    return [r.candidate.offering_id for r in ranked]


def points(ranked: routing.Ranked, factor: str) -> float:
    return next(r.points for r in ranked.reasons if r.factor == factor)


def test_distance_is_measured_on_the_earth():
    one_km_east = (HOME[0], HOME[1] + 0.0106)
    assert abs(routing.distance_km(HOME, one_km_east) - 1.0) < 0.02
    assert routing.distance_km(HOME, HOME) == 0.0


def test_nearer_ranks_first_and_unknown_places_sit_in_the_middle():
    ranked = routing.rank([cand(1, km=8), cand(2, km=0.5), cand(3, km=None)], HOME)
    assert order_of(ranked) == [2, 3, 1]
    assert [r.rank for r in ranked] == [1, 2, 3]
    assert points(ranked[1], "distance") == routing.DISTANCE_POINTS / 2
    # A household without coordinates: distance counts the same for everyone
    assert {points(r, "distance") for r in routing.rank([cand(1, km=8), cand(2)], None)} == {15.0}


def test_free_capacity_better_rating_and_quick_answers_rank_higher():
    assert order_of(routing.rank([cand(1, active=3), cand(2, active=0)], HOME)) == [2, 1]
    rated = routing.rank(
        [cand(1, average_rating=2.0, rating_count=4), cand(2, average_rating=4.8, rating_count=9)], HOME
    )
    assert order_of(rated) == [2, 1]
    quick = routing.rank([cand(1, median_accept_seconds=3000), cand(2, median_accept_seconds=60)], HOME)
    assert order_of(quick) == [2, 1]


def test_no_shows_cost_points_by_their_share_of_orders():
    ranked = routing.rank([cand(1, no_shows=3, orders_total=10), cand(2, no_shows=0, orders_total=10)], HOME)
    assert order_of(ranked) == [2, 1]
    assert points(ranked[1], "no_shows") == -7.5


def test_equal_scores_keep_the_older_offering_first():
    assert order_of(routing.rank([cand(5), cand(3), cand(4)], HOME)) == [3, 4, 5]


def test_score_is_the_sum_of_its_reasons_and_reads_in_the_readers_language():
    ranked = routing.rank(
        [cand(1, km=2, active=1, average_rating=4.0, rating_count=3, median_accept_seconds=600)], HOME
    )
    best = ranked[0]
    assert best.score == round(sum(r.points for r in best.reasons), 2)
    stored = best.reasons_json()
    assert [r["factor"] for r in stored] == ["distance", "load", "rating", "response", "no_shows"]
    token = current_locale.set("en")
    try:
        texts = [r["text"] for r in routing.explain(stored)]
    finally:
        current_locale.reset(token)
    assert texts[0] == "2.0 km away"
    assert texts[1] == "1 of 4 orders in hand"
    assert texts[3] == "Usually accepts within 10 minutes"
    token = current_locale.set("zh_CN")
    try:
        chinese = routing.explain(stored)[0]["text"]
    finally:
        current_locale.reset(token)
    assert "2.0" in chinese and chinese != texts[0]
