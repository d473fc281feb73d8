"""The candidate query: only verified, active providers that serve the community, are open and have room."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers import load
from providers.candidates import candidates
from providers.rules import Interval, is_open, window_spans
from providers.tables import Offering, OpeningHours, Provider, ServiceArea
from tests.catalog_data import seed_catalog
from tests.providers.factories import make_areas, make_offering, make_provider

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI)  # a Monday
HOUR = timedelta(hours=1)


@pytest.fixture
async def world():
    categories = await seed_catalog()
    areas = await make_areas()
    return {"cat": categories, "com": areas["communities"]}


async def ids(world, *, start=MONDAY_9, end=None, category="cleaning", community="尧化门社区", **kwargs):
    found = await candidates(
        world["cat"][category], world["com"][community], start, end or start + HOUR, **kwargs
    )
    return [c.provider_id for c in found]


async def test_a_verified_open_provider_with_room_is_a_candidate(world):
    pid = await make_provider(latitude=32.1, longitude=118.9)
    oid = await make_offering(pid, world["cat"]["cleaning"], [world["com"]["尧化门社区"]], capacity=2)

    found = await candidates(world["cat"]["cleaning"], world["com"]["尧化门社区"], MONDAY_9, MONDAY_9 + HOUR)

    assert [(c.provider_id, c.offering_id) for c in found] == [(pid, oid)]
    assert found[0].spare == 2
    assert (found[0].latitude, found[0].longitude) == (32.1, 118.9)
    assert found[0].stats.acceptance_rate is None  # no figures yet, none invented


@pytest.mark.parametrize("status", ["pending", "refused", "suspended"])
async def test_an_unverified_or_suspended_provider_is_never_a_candidate(world, status):
    good = await make_provider(name="已认证")
    other = await make_provider(name="未认证", status=status)
    for pid in (good, other):
        await make_offering(pid, world["cat"]["cleaning"], [world["com"]["尧化门社区"]])

    assert await ids(world) == [good]


async def test_a_paused_provider_or_withdrawn_offering_is_not_a_candidate(world):
    paused = await make_provider(is_active=False)
    await make_offering(paused, world["cat"]["cleaning"], [world["com"]["尧化门社区"]])
    withdrawn = await make_provider()
    await make_offering(withdrawn, world["cat"]["cleaning"], [world["com"]["尧化门社区"]], is_active=False)

    assert await ids(world) == []


async def test_only_providers_serving_the_community_and_category_are_candidates(world):
    here = await make_provider()
    await make_offering(
        here, world["cat"]["cleaning"], [world["com"]["尧化门社区"], world["com"]["新尧社区"]]
    )
    elsewhere = await make_provider()
    await make_offering(elsewhere, world["cat"]["cleaning"], [world["com"]["仙林社区"]])
    other_service = await make_provider()
    await make_offering(other_service, world["cat"]["meals"], [world["com"]["尧化门社区"]])

    assert await ids(world) == [here]
    assert await ids(world, community="新尧社区") == [here]
    assert await ids(world, community="仙林社区") == [elsewhere]
    assert await ids(world, category="meals") == [other_service]
    assert await ids(world, community="马群社区") == []


async def test_a_provider_closed_over_any_part_of_the_window_is_not_a_candidate(world):
    # Monday 08:00–12:00 and 14:00–18:00; closed on Sundays.
    pid = await make_provider()
    monday = [(0, 8 * 60, 12 * 60), (0, 14 * 60, 18 * 60)]
    await make_offering(pid, world["cat"]["cleaning"], [world["com"]["尧化门社区"]], hours=monday)

    at = lambda h, m=0: MONDAY_9.replace(hour=h, minute=m)  # noqa: E731
    assert await ids(world, start=at(8), end=at(12)) == [pid]  # exactly the opening hours
    assert await ids(world, start=at(11), end=at(13)) == []  # runs into the lunch break
    assert await ids(world, start=at(12, 30), end=at(13, 30)) == []  # in the break
    assert await ids(world, start=at(17), end=at(18, 30)) == []  # past closing
    assert await ids(world, start=at(7, 30), end=at(8, 30)) == []  # before opening
    assert await ids(world, start=at(9) - timedelta(days=1)) == []  # Sunday


async def test_the_window_is_read_in_the_service_time_zone(world):
    pid = await make_provider()
    await make_offering(
        pid, world["cat"]["cleaning"], [world["com"]["尧化门社区"]], hours=[(0, 8 * 60, 10 * 60)]
    )
    # 01:00 UTC on Monday is 09:00 in Shanghai; 09:00 UTC is 17:00 there.
    assert await ids(world, start=datetime(2026, 11, 30, 1, 0, tzinfo=UTC)) == [pid]
    assert await ids(world, start=datetime(2026, 11, 30, 9, 0, tzinfo=UTC)) == []


async def test_a_window_across_midnight_needs_both_days_open(world):
    night = await make_provider(name="夜间")
    await make_offering(
        night,
        world["cat"]["cleaning"],
        [world["com"]["尧化门社区"]],
        hours=[(0, 20 * 60, 24 * 60), (1, 0, 6 * 60)],
    )
    evening = await make_provider(name="只到午夜")
    await make_offering(
        evening, world["cat"]["cleaning"], [world["com"]["尧化门社区"]], hours=[(0, 20 * 60, 24 * 60)]
    )

    start = MONDAY_9.replace(hour=23)
    assert await ids(world, start=start, end=start + 2 * HOUR) == [night]
    assert sorted(await ids(world, start=start, end=start + HOUR)) == sorted(
        [night, evening]
    )  # ends at 24:00


async def test_a_full_provider_is_not_a_candidate_until_an_order_ends(world):
    pid = await make_provider()
    oid = await make_offering(pid, world["cat"]["cleaning"], [world["com"]["尧化门社区"]], capacity=2)

    assert await load.take(oid) is True
    assert await ids(world) == [pid]
    assert await load.take(oid) is True
    assert await ids(world) == []  # full: two orders at once
    assert await load.take(oid) is False  # no third slot

    await load.release(oid)
    assert await ids(world) == [pid]
    await load.release(oid)
    await load.release(oid)  # releasing more than was taken stays at zero
    assert (await Offering.select(Offering.active_orders).where(Offering.id == oid).first())[
        "active_orders"
    ] == 0


async def test_providers_that_declined_are_left_out(world):
    first, second = await make_provider(), await make_provider()
    for pid in (first, second):
        await make_offering(pid, world["cat"]["cleaning"], [world["com"]["尧化门社区"]])

    assert await ids(world) == [first, second]
    assert await ids(world, exclude_provider_ids=[first]) == [second]
    assert await ids(world, exclude_provider_ids={first, second}) == []
    assert await ids(world, limit=1) == [first]


async def test_windows_that_make_no_sense_are_refused(world):
    with pytest.raises(ValueError):
        await ids(world, start=MONDAY_9, end=MONDAY_9 - HOUR)
    with pytest.raises(ValueError):
        await ids(world, start=MONDAY_9, end=MONDAY_9 + timedelta(days=2))


minutes = st.integers(min_value=0, max_value=24 * 60)


@st.composite
def schedules(draw):
    intervals = []
    for weekday in draw(st.lists(st.integers(0, 6), max_size=4, unique=True)):
        a, b = sorted(draw(st.tuples(minutes, minutes)))
        if a < b:
            intervals.append(Interval(weekday, a, b))
    return intervals


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    schedule=schedules(),
    start_offset=st.integers(min_value=0, max_value=7 * 24 * 60 - 1),
    length=st.integers(min_value=0, max_value=16 * 60),
)
async def test_the_query_agrees_with_the_plain_opening_rule(world, schedule, start_offset, length):
    # The SQL and rules.is_open must agree on any schedule and window.
    await ServiceArea.delete(force=True)
    await OpeningHours.delete(force=True)
    await Offering.delete(force=True)
    await Provider.delete(force=True)
    pid = await make_provider()
    await make_offering(
        pid,
        world["cat"]["cleaning"],
        [world["com"]["尧化门社区"]],
        hours=[(i.weekday, i.opens_at, i.closes_at) for i in schedule],
    )
    start = MONDAY_9.replace(hour=0) + timedelta(minutes=start_offset)
    end = start + timedelta(minutes=length)

    expected = is_open(schedule, window_spans(start, end, SHANGHAI))
    assert (await ids(world, start=start, end=end) == [pid]) is expected
