"""The figures of a report on the hand-built district of conftest.py, whose answers are worked out by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from marketplace import clock
from marketplace.errors import NotFound, ValidationFailed
from reports import figures
from reports.figures import Period, Scope, interpolate

NOV = "2026-11"


def by_level(f: figures.Figures) -> dict[int, figures.LevelFigures]:
    return {x.level: x for x in f.levels}


def test_periods_are_counted_in_the_service_zone():
    nov = Period.parse("2026-11")
    zone = ZoneInfo("Asia/Shanghai")
    assert nov.start == datetime(2026, 11, 1, tzinfo=zone)
    assert nov.end == datetime(2026, 12, 1, tzinfo=zone)
    q4 = Period.parse("2026-q4")
    assert (q4.code, q4.start.month, q4.end.year, q4.end.month) == ("2026-Q4", 10, 2027, 1)
    for bad in ("2026-13", "2026-Q5", "November", ""):
        with pytest.raises(ValidationFailed):
            Period.parse(bad)
    with pytest.raises(ValidationFailed):
        Scope.parse("planet:1")


def test_percentiles_interpolate_between_ranks():
    values = [5.0, 10.0, 20.0, 30.0]
    ranked = {i + 1: v for i, v in enumerate(values)}
    assert interpolate(ranked, 4, 50) == 15.0
    assert interpolate(ranked, 4, 90) == pytest.approx(27.0)
    assert interpolate({1: 7.0}, 1, 90) == 7.0
    assert interpolate({}, 0, 50) is None


async def test_community_month(world):
    f = await figures.compute(Scope("community", world.a), Period.parse(NOV))
    assert f.scope_name == "尧化门社区"
    counts = {(c.category, c.level): c.orders for c in f.categories}
    assert counts == {
        ("errands", 1): 2,
        ("errands", 2): 1,
        ("errands", 3): 1,
        ("cleaning", 1): 1,
        ("cleaning", 2): 1,
    }

    levels = by_level(f)
    one, two, three = levels[1], levels[2], levels[3]
    assert (one.submitted, one.accepted, one.completed, one.cancelled, one.escalated) == (3, 3, 2, 0, 0)
    assert one.acceptance_rate == 1.0
    assert one.completion_rate == pytest.approx(0.6667)
    # Accepted after 10, 20, 30 minutes; service began after 60, 90, 240 minutes.
    assert (one.accept_median_minutes, one.accept_p90_minutes) == (20.0, 28.0)
    assert (one.serve_median_minutes, one.serve_p90_minutes) == (90.0, 210.0)
    # Level 2: one accepted, one cancelled before acceptance (left out of the acceptance rate).
    assert (two.submitted, two.accepted, two.completed, two.cancelled) == (2, 1, 1, 1)
    assert (two.acceptance_rate, two.completion_rate) == (1.0, 1.0)
    assert (two.accept_median_minutes, two.accept_p90_minutes, two.serve_median_minutes) == (
        40.0,
        40.0,
        300.0,
    )
    # Level 3: escalated, never accepted.
    assert (three.submitted, three.accepted, three.escalated, three.acceptance_rate) == (1, 0, 1, 0.0)
    assert three.completion_rate is None and three.accept_median_minutes is None

    # Level 1 households h1, h2, h7, h8 (h9 is inactive); only h1 had an order completed in November.
    assert f.reach is not None
    assert (f.reach.level1_households, f.reach.level1_served, f.reach.level1_share) == (4, 1, 0.25)
    # h8 (last order in September) and h6 (nothing) were not reached; h7 was visited.
    assert (f.reach.not_reached, f.reach.not_reached_level1, f.reach.not_reached_level2) == (2, 1, 1)

    # Granted 100 + 100 + 30 temporary; spent 10 + 10 + 20, less a refund of 5.
    assert (f.credits.granted, f.credits.spent) == (230, 35)
    assert (f.satisfaction.rated, f.satisfaction.average, f.satisfaction.by_stars) == (
        2,
        4.0,
        [0, 0, 1, 0, 1],
    )

    assert f.warnings is not None
    w = f.warnings
    assert (w.raised, w.verified, w.verified_on_time, w.open_overdue) == (3, 2, 1, 2)
    assert w.on_time_rate == pytest.approx(0.3333)
    assert f.areas == []


async def test_street_and_district_compare_their_areas(world):
    street = await figures.compute(Scope("street", world.street), Period.parse(NOV))
    rows = {a.name: (a.orders, a.completed, a.not_reached) for a in street.areas}
    assert rows == {"尧化门社区": (6, 3, 2), "新尧社区": (1, 0, 0), "尧林仙居社区": (0, 0, 0)}
    assert by_level(street)[2].submitted == 3

    district = await figures.compute(Scope("district", world.district), Period.parse(NOV))
    streets = {a.name: (a.orders, a.completed) for a in district.areas}
    assert streets["尧化街道"] == (7, 3)
    assert streets["马群街道"] == (1, 1)
    assert sum(c.orders for c in district.categories) == 8
    assert district.reach is not None
    # Level 1: h1, h2, h7, h8 in a and h5 in c; h1 and h5 were served.
    assert (district.reach.level1_households, district.reach.level1_served) == (5, 2)
    assert (district.credits.granted, district.credits.spent) == (330, 45)


async def test_provider_month_counts_its_orders_only(world):
    f = await figures.compute(Scope("provider", world.p1), Period.parse(NOV))
    one = by_level(f)[1]
    # o1, o2, o3 in community a and o8 in c: accepted after 10, 20, 30 and 5 minutes.
    assert (one.submitted, one.accepted, one.completed) == (4, 4, 3)
    assert (one.accept_median_minutes, one.accept_p90_minutes) == (15.0, 27.0)
    assert (f.credits.granted, f.credits.spent) == (0, 30)
    assert (f.satisfaction.rated, f.satisfaction.average) == (2, 4.5)
    assert f.reach is None and f.warnings is None


async def test_quarter_takes_in_its_three_months(world):
    f = await figures.compute(Scope("community", world.a), Period.parse("2026-Q4"))
    one = by_level(f)[1]
    assert (one.submitted, one.completed) == (4, 3)  # o7 of October joins o1, o2, o3
    assert f.credits.granted == 330
    assert f.warnings is not None and f.warnings.raised == 4


async def test_current_month_counts_not_reached_up_to_today(world):
    # In December, h1's orders of early November are still within 60 days, h8's are not.
    f = await figures.compute(Scope("community", world.a), Period.parse("2026-12"))
    assert f.as_of == clock.now()
    assert f.reach is not None and f.reach.not_reached == 2
    clock.advance(timedelta(days=40))  # mid-January: every order and visit of a is older than 60 days
    f = await figures.compute(Scope("community", world.a), Period.parse("2027-01"))
    assert f.reach is not None
    assert (f.reach.not_reached_level1, f.reach.not_reached_level2) == (4, 2)


async def test_not_reached_list_and_unknown_scope(world):
    listed = await figures.not_reached_households(Scope("community", world.a), Period.parse(NOV))
    assert [r["code"] for r in listed] == ["R-h8", "R-h6"]
    with pytest.raises(NotFound):
        await figures.compute(Scope("community", 999_999), Period.parse(NOV))
