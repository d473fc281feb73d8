"""Rules of the catalog and the level policies, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketplace.catalog import (
    CostRules,
    Policy,
    PolicyTerms,
    credit_cost,
    current_version,
    validate_category,
    validate_terms,
)
from marketplace.errors import ValidationFailed

CODES = {"meals", "cleaning", "haircut"}
GOOD_TERMS = {
    "monthly_credits": "300",
    "percent": "50",
    "accept_minutes": "30",
    "service_hours": "24",
    "offer_timeout_minutes": "10",
    "routing_priority": "1",
}


def fields_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> set[str]:
    return {e.field for e in exc.value.errors}


def test_a_percentage_rounds_up_so_a_discount_never_makes_a_paid_service_free():
    assert credit_cost("cleaning", 30, CostRules(percent=50)) == 15
    assert credit_cost("cleaning", 3, CostRules(percent=10)) == 1
    assert credit_cost("meals", 8, CostRules(percent=100), units=3) == 24


def test_fixed_prices_win_and_excluded_categories_are_not_covered():
    rules = CostRules(percent=50, fixed={"meals": 0}, excluded=frozenset({"haircut"}))
    assert credit_cost("meals", 8, rules) == 0
    assert credit_cost("haircut", 10, rules) is None
    assert credit_cost("cleaning", 30, rules) == 15
    assert credit_cost("cleaning", 0, rules) == 0


def test_cost_rules_survive_storage():
    rules = CostRules(percent=80, fixed={"meals": 2}, excluded=frozenset({"haircut"}))
    assert CostRules.from_json(rules.to_json()) == rules
    assert CostRules.from_json("{}") == CostRules()
    assert CostRules.from_json({"percent": 70, "unknown": 1}).percent == 70


def test_the_version_in_force_is_the_latest_that_has_taken_effect():
    now = datetime(2026, 1, 15, tzinfo=UTC)
    terms = PolicyTerms(100, CostRules(), 30, 24, 10, 1)
    v1 = Policy(1, 1, terms, now - timedelta(days=30))
    v2 = Policy(1, 2, terms, now - timedelta(days=1))
    v3 = Policy(1, 3, terms, now + timedelta(days=10))  # scheduled
    assert current_version([v1, v2, v3], now) is v2
    assert current_version([v1, v2, v3], now + timedelta(days=10)) is v3
    assert current_version([v3], now) is None


def test_valid_terms_are_parsed_from_form_text():
    terms = validate_terms({**GOOD_TERMS, "fixed": "meals=0, cleaning=20", "excluded": "haircut"}, CODES)
    assert terms.monthly_credits == 300
    assert terms.cost_rules == CostRules(50, {"meals": 0, "cleaning": 20}, frozenset({"haircut"}))


def test_every_bad_field_of_a_policy_is_named_at_once():
    with pytest.raises(ValidationFailed) as exc:
        validate_terms(
            {
                "monthly_credits": "",
                "percent": "-5",
                "accept_minutes": "x",
                "service_hours": "24",
                "offer_timeout_minutes": "10",
                "routing_priority": "0",
                "fixed": "laundry=3",
                "excluded": ["nope"],
            },
            CODES,
        )
    assert fields_of(exc) == {
        "monthly_credits",
        "percent",
        "accept_minutes",
        "routing_priority",
        "fixed",
        "excluded",
    }


def test_targets_must_fit_together():
    with pytest.raises(ValidationFailed) as exc:
        validate_terms({**GOOD_TERMS, "offer_timeout_minutes": "45"}, CODES)
    assert fields_of(exc) == {"offer_timeout_minutes"}
    with pytest.raises(ValidationFailed) as exc:
        validate_terms({**GOOD_TERMS, "accept_minutes": "3000", "offer_timeout_minutes": "10"}, CODES)
    assert fields_of(exc) == {"accept_minutes"}
    with pytest.raises(ValidationFailed) as exc:
        validate_terms({**GOOD_TERMS, "fixed": {"meals": 0}, "excluded": ["meals"]}, CODES)
    assert fields_of(exc) == {"excluded"}


def test_a_category_needs_a_code_names_a_known_icon_routing_and_unit():
    good = {
        "code": "laundry",
        "name_zh": "洗衣",
        "name_en": "Laundry",
        "icon": "generic.svg",
        "routing": "pool",
        "unit": "visit",
        "credit_cost": "12",
    }
    fields = validate_category(good, {"generic.svg"})
    assert (fields.code, fields.credit_cost, fields.is_active) == ("laundry", 12, True)
    with pytest.raises(ValidationFailed) as exc:
        validate_category(
            {"code": "Bad Code", "icon": "x.svg", "routing": "auction", "unit": "day", "credit_cost": "-1"},
            {"generic.svg"},
        )
    assert fields_of(exc) == {"code", "name_zh", "name_en", "icon", "routing", "unit", "credit_cost"}
    # The code of an existing category is not read from the input.
    assert (
        validate_category({**good, "code": "other"}, {"generic.svg"}, code_fixed="laundry").code == "laundry"
    )
