"""Rules of `providers` without a database: kinds, verification steps, schedules, windows, figures."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from marketplace.errors import Conflict, ValidationFailed
from providers.rules import (
    Action,
    DaySpan,
    Interval,
    Kind,
    Status,
    check_decision,
    credit_code_check_char,
    credit_code_valid,
    hours_lines,
    next_status,
    stats_from_row,
    validate_offering,
    validate_registration,
    validate_schedule,
    window_spans,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def test_credit_codes_are_checked_by_their_check_character():
    assert credit_code_valid("91440300708461136T")  # a real, published code
    assert not credit_code_valid("91440300708461136A")
    assert not credit_code_valid("9144030070846113")
    assert not credit_code_valid("91440300708461136O")  # O is not used in these codes
    first = "52320113MJ5010203"
    assert credit_code_valid(first + credit_code_check_char(first))


@pytest.mark.parametrize(
    ("status", "action", "to"),
    [
        ("pending", Action.VERIFY, Status.VERIFIED),
        ("pending", Action.REFUSE, Status.REFUSED),
        ("verified", Action.SUSPEND, Status.SUSPENDED),
        ("suspended", Action.REINSTATE, Status.VERIFIED),
        ("refused", Action.RESUBMIT, Status.PENDING),
    ],
)
def test_the_allowed_verification_steps(status, action, to):
    assert next_status(status, action) is to


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("verified", Action.VERIFY),
        ("refused", Action.VERIFY),
        ("pending", Action.SUSPEND),
        ("verified", Action.RESUBMIT),
    ],
)
def test_steps_from_the_wrong_status_conflict(status, action):
    with pytest.raises(Conflict):
        next_status(status, action)


def test_a_refusal_needs_a_reason_and_a_verification_needs_documents():
    with pytest.raises(ValidationFailed) as exc:
        check_decision(Action.REFUSE, "  ", [])
    assert [e.field for e in exc.value.errors] == ["reason"]
    with pytest.raises(ValidationFailed) as exc:
        check_decision(Action.VERIFY, "", [])
    assert [e.field for e in exc.value.errors] == ["documents"]
    with pytest.raises(ValidationFailed):
        check_decision(Action.VERIFY, "", ["a photocopy of my ID"])
    check_decision(Action.VERIFY, "", ["credit_code", "agreement"])


def test_registration_names_every_missing_field():
    with pytest.raises(ValidationFailed) as exc:
        validate_registration({"kind": "company", "credit_code": "123"})
    assert {e.field for e in exc.value.errors} == {"name", "credit_code", "contact_name", "consent"}
    individual = validate_registration(
        {"kind": "individual_volunteer", "name": "陈", "consent": "on", "address": "x"}
    )
    assert individual.kind is Kind.INDIVIDUAL_VOLUNTEER
    assert individual.profile.address == ""  # a volunteer's home is not asked for
    assert individual.profile.contact_name == "陈"


def test_schedules_reject_bad_times_and_overlaps():
    errors = []
    intervals = validate_schedule(
        [
            {"weekday": 0, "opens": "08:00", "closes": "12:00"},
            {"weekday": 0, "opens": "13:30", "closes": "24:00"},
            {"weekday": 1, "opens": "9:00", "closes": "10:00"},
        ],
        errors,
    )
    assert errors == []
    assert intervals == [Interval(0, 480, 720), Interval(0, 810, 1440), Interval(1, 540, 600)]

    errors = []
    validate_schedule(
        [
            {"weekday": 2, "opens": "08:00", "closes": "12:00"},
            {"weekday": 2, "opens": "11:00", "closes": "14:00"},
            {"weekday": 3, "opens": "18:00", "closes": "08:00"},
            {"weekday": 4, "opens": "8h", "closes": "25:00"},
            {"weekday": 9, "opens": "08:00", "closes": "09:00"},
        ],
        errors,
    )
    assert sorted(e.field for e in errors) == ["schedule", "schedule_2", "schedule_3", "schedule_4"]


def test_an_offering_needs_communities_hours_and_sane_numbers():
    with pytest.raises(ValidationFailed) as exc:
        validate_offering(
            {"unit": "visit", "duration_minutes": "0", "credit_cost": "5", "capacity": "0"}, {1, 2}
        )
    assert {e.field for e in exc.value.errors} == {
        "duration_minutes",
        "capacity",
        "community_ids",
        "schedule",
    }
    with pytest.raises(ValidationFailed) as exc:
        validate_offering(
            {
                "unit": "visit",
                "duration_minutes": "60",
                "credit_cost": "5",
                "capacity": "2",
                "community_ids": ["1", "99"],
                "schedule": [{"weekday": 0, "opens": "08:00", "closes": "09:00"}],
                "latitude": "32.1",
            },
            {1, 2},
        )
    assert {e.field for e in exc.value.errors} == {"community_ids", "latitude"}


def test_a_window_is_split_at_local_midnight():
    monday_23 = datetime(2026, 11, 30, 23, 0, tzinfo=SHANGHAI)
    assert window_spans(monday_23, monday_23.replace(hour=23, minute=30), SHANGHAI) == [
        DaySpan(0, 1380, 1410)
    ]
    assert window_spans(monday_23, datetime(2026, 12, 1, 1, 0, tzinfo=SHANGHAI), SHANGHAI) == [
        DaySpan(0, 1380, 1440),
        DaySpan(1, 0, 60),
    ]
    # Ending exactly at midnight needs Monday only, up to 24:00.
    assert window_spans(monday_23, datetime(2026, 12, 1, 0, 0, tzinfo=SHANGHAI), SHANGHAI) == [
        DaySpan(0, 1380, 1440)
    ]
    # UTC input is read in the service's zone: 15:00 UTC Monday is 23:00 in Shanghai.
    assert window_spans(datetime(2026, 11, 30, 15, 0, tzinfo=UTC), monday_23, SHANGHAI) == [
        DaySpan(0, 1380, 1380)
    ]
    with pytest.raises(ValueError):
        window_spans(datetime(2026, 11, 30, 9, 0), monday_23, SHANGHAI)


def test_opening_hours_read_like_a_shop_door():
    weekdays = [Interval(d, 480, 1080) for d in range(5)]
    assert hours_lines([*weekdays, Interval(5, 540, 720)], DAYS) == ["Mon–Fri 08:00–18:00", "Sat 09:00–12:00"]
    assert hours_lines([Interval(1, 600, 660), Interval(3, 600, 660)], DAYS) == ["Tue, Thu 10:00–11:00"]
    assert hours_lines([], DAYS) == []


def test_figures_are_only_computed_from_data():
    empty = stats_from_row(None)
    assert not empty.has_data
    assert empty.acceptance_rate is None and empty.average_rating is None and empty.no_shows is None
    row = {
        "offers_total": 10,
        "offers_accepted": 8,
        "median_accept_seconds": 300,
        "orders_total": 8,
        "orders_completed": 6,
        "no_shows": 1,
        "rating_count": 4,
        "rating_sum": 18,
    }
    stats = stats_from_row(row)
    assert (stats.acceptance_rate, stats.completion_rate, stats.average_rating, stats.no_shows) == (
        0.8,
        0.75,
        4.5,
        1,
    )
    assert stats_from_row({**row, "offers_total": 0, "offers_accepted": 0}).acceptance_rate is None
