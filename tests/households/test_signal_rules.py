"""Signal checking and warning rules as plain functions: no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from households.signals import (
    OpenWarning,
    Outcome,
    SignalFacts,
    WarningRules,
    absorbs,
    clean_signal,
    default_rules,
    evaluate,
    median_hours,
    merge,
    validate_rules,
)
from marketplace.errors import ValidationFailed
from tests.helpers import make_id

TODAY = date(2025, 3, 10)
AT = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)


def bill(amount: float, share: float, income: int | None = None) -> SignalFacts:
    return SignalFacts("hospital_bill", {"amount": amount, "out_of_pocket_share": share}, income)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (bill(60_000, 0.5), ("high", 48, "medical_cost_high")),  # 30,000 out of pocket
        (bill(10_000, 0.5, income=10_000), ("high", 48, "medical_cost_share")),  # half a year's income
        (bill(10_000, 0.5, income=100_000), ("medium", 120, "hospital_bill")),
        (bill(10_000, 0.5), ("medium", 120, "hospital_bill")),  # income unknown: the share rule is silent
        (SignalFacts("disaster", {}), ("high", 24, "disaster")),
        (SignalFacts("utility_arrears", {"months": 4}), ("medium", 120, "arrears_long")),
        (SignalFacts("utility_arrears", {"months": 1}), ("low", 240, "arrears")),
        (SignalFacts("utility_arrears", {}), ("low", 240, "arrears")),
    ],
)
def test_the_most_severe_rule_that_fires_decides(facts, expected):
    outcome = evaluate(default_rules(), facts)
    assert (outcome.severity, outcome.deadline_hours, outcome.rule) == expected


def test_no_rule_no_warning_and_switched_off_rules_do_not_fire():
    rules = WarningRules(
        rules=[dict(r, enabled=r["kind"] != "job_loss") for r in default_rules().rules], window_hours=72
    )
    assert evaluate(rules, SignalFacts("job_loss", {})) is None
    assert evaluate(WarningRules(rules=[], window_hours=72), SignalFacts("accident", {})) is None


def test_a_rule_for_any_kind_and_a_tie_goes_to_the_shorter_deadline():
    rules = WarningRules(
        rules=[
            {
                "id": "slow",
                "kind": "any",
                "measure": "",
                "at_least": None,
                "severity": "high",
                "deadline_hours": 72,
                "label_zh": "x",
                "label_en": "x",
            },
            {
                "id": "fast",
                "kind": "job_loss",
                "measure": "",
                "at_least": None,
                "severity": "high",
                "deadline_hours": 24,
                "label_zh": "x",
                "label_en": "x",
            },
        ],
        window_hours=72,
    )
    assert evaluate(rules, SignalFacts("job_loss", {})) == Outcome("high", 24, "fast")
    assert evaluate(rules, SignalFacts("accident", {})) == Outcome("high", 72, "slow")


def test_a_later_signal_raises_severity_and_brings_the_deadline_closer_never_the_reverse():
    warning = OpenWarning(
        severity="medium", deadline_at=AT + timedelta(hours=120), rule="hospital_bill", opened_at=AT
    )
    later = AT + timedelta(hours=10)
    raised = merge(warning, Outcome("high", 24, "disaster"), later)
    assert (raised.severity, raised.rule, raised.deadline_at, raised.signal_count) == (
        "high",
        "disaster",
        later + timedelta(hours=24),
        2,
    )
    kept = merge(raised, Outcome("low", 240, "arrears"), later)
    assert (kept.severity, kept.deadline_at, kept.signal_count) == ("high", raised.deadline_at, 3)
    assert absorbs(warning, AT + timedelta(hours=72), 72)
    assert not absorbs(warning, AT + timedelta(hours=72, seconds=1), 72)


def test_a_valid_signal_is_cleaned():
    signal = clean_signal(
        {
            "event_id": "H-1",
            "kind": "hospital_bill",
            "occurred_on": "2025-03-01",
            "id_number": make_id(date(1950, 1, 2), 11).lower(),
            "details": {"amount": "56,000", "out_of_pocket_share": "45%"},
        },
        today=TODAY,
        require_event_id=True,
    )
    assert signal.details == {"amount": 56000.0, "out_of_pocket_share": 0.45}
    assert signal.id_number.endswith(make_id(date(1950, 1, 2), 11)[-4:])
    assert len(signal.content_hash()) == 64


def errors_of(raw: dict, *, require_event_id: bool = True) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        clean_signal(raw, today=TODAY, require_event_id=require_event_id)
    return {e.field: e.message % e.params if e.params else e.message for e in caught.value.errors}


def test_each_bad_field_is_named_precisely():
    errors = errors_of({"kind": "flood", "occurred_on": "2025-13-01", "id_number": "320113195001021234"})
    assert set(errors) == {"event_id", "kind", "occurred_on", "id_number"}
    assert "'flood'" in errors["kind"] and "hospital_bill" in errors["kind"]
    assert "check digit" in errors["id_number"]
    errors = errors_of(
        {
            "event_id": "x",
            "kind": "hospital_bill",
            "occurred_on": "2025-03-01",
            "household_code": "A-1",
            "details": {"amount": 100, "out_of_pocket_share": 3, "colour": 1},
        }
    )
    assert set(errors) == {"details.out_of_pocket_share", "details.colour"}
    errors = errors_of(
        {"event_id": "x", "kind": "hospital_bill", "occurred_on": "2099-01-01", "household_code": "A-1"}
    )
    assert set(errors) == {"occurred_on", "details.amount", "details.out_of_pocket_share"}
    errors = errors_of({"event_id": "bad id with spaces", "kind": "accident", "occurred_on": "2025-03-01"})
    assert set(errors) == {"event_id", "id_number"}
    assert (
        "18 characters"
        in errors_of(
            {"event_id": "x", "kind": "accident", "occurred_on": "2025-03-01", "id_number": "12345"}
        )["id_number"]
    )


def test_an_edited_rule_set_is_checked_field_by_field():
    good = default_rules().rules
    clean, window = validate_rules(good, "48")
    assert window == 48 and len(clean) == len(good)
    bad = [
        {"id": "Bad Name", "kind": "flood", "measure": "weight", "severity": "urgent", "deadline_hours": "0"},
        {
            "id": "ok",
            "kind": "accident",
            "measure": "amount",
            "at_least": "-1",
            "severity": "high",
            "deadline_hours": "24",
            "label_zh": "事故",
            "label_en": "Accident",
        },
    ]
    with pytest.raises(ValidationFailed) as caught:
        validate_rules(bad, "0")
    assert {e.field for e in caught.value.errors} == {
        "rules-0-id",
        "rules-0-kind",
        "rules-0-measure",
        "rules-0-severity",
        "rules-0-deadline_hours",
        "rules-0-label",
        "rules-1-at_least",
        "window_hours",
    }


def test_median_time_to_verify():
    assert median_hours([]) is None
    assert median_hours([timedelta(hours=1), timedelta(hours=5), timedelta(hours=3)]) == 3
    assert median_hours([timedelta(hours=1), timedelta(hours=2)]) == 1.5
