"""Need-level scoring: rules add points with reasons; thresholds map points to levels; edits are checked."""

from __future__ import annotations

from datetime import date

import pytest

from households import levels
from households.levels import DEFAULT_RULES, HouseholdFacts, MemberFacts, RuleSet
from marketplace.errors import ValidationFailed

TODAY = date(2025, 6, 1)
DEFAULT = RuleSet(rules=DEFAULT_RULES["rules"], thresholds=DEFAULT_RULES["thresholds"], version=0)


def member(born=date(1960, 1, 1), grade=None, phone=True) -> MemberFacts:
    return MemberFacts(birth_date=born, disability_grade=grade, can_use_phone=phone)


def test_tekun_elderly_alone_who_cannot_use_a_phone_is_level_1_with_reasons():
    facts = HouseholdFacts("tekun", frozenset({"elderly_alone"}), (member(date(1940, 1, 1), phone=False),))
    result = levels.assess(facts, DEFAULT, TODAY)
    assert result.level == 1
    assert result.points == 3 + 2 + 1 + 1  # tekun, elderly alone, over 80, no phone user
    assert [f["rule"] for f in result.fired] == ["tekun", "elderly_alone", "aged_80", "no_phone_user"]
    assert result.fired[0]["label_zh"] == "特困人员"
    assert result.explanation()["thresholds"] == {"level1": 5, "level2": 3}


def test_a_severe_disability_counts_but_a_mild_one_does_not():
    severe = HouseholdFacts("dibao_marginal", frozenset(), (member(grade=2),))
    mild = HouseholdFacts("dibao_marginal", frozenset(), (member(grade=3),))
    assert levels.assess(severe, DEFAULT, TODAY).points == 1 + 2
    assert levels.assess(severe, DEFAULT, TODAY).level == 2
    assert levels.assess(mild, DEFAULT, TODAY).points == 1
    assert levels.assess(mild, DEFAULT, TODAY).level == 3


def test_age_is_counted_on_the_day():
    turning_80 = HouseholdFacts("low_income_monitored", frozenset(), (member(date(1945, 6, 2)),))
    assert levels.assess(turning_80, DEFAULT, TODAY).points == 0
    assert levels.assess(turning_80, DEFAULT, date(2025, 6, 2)).points == 1


def test_no_rule_fires_for_an_empty_household_on_phones():
    facts = HouseholdFacts("low_income_monitored", frozenset(), ())
    result = levels.assess(facts, DEFAULT, TODAY)
    assert (result.level, result.points, result.fired) == (3, 0, ())


def test_thresholds_are_inclusive():
    assert levels.level_for(5, {"level1": 5, "level2": 3}) == 1
    assert levels.level_for(4, {"level1": 5, "level2": 3}) == 2
    assert levels.level_for(3, {"level1": 5, "level2": 3}) == 2
    assert levels.level_for(2, {"level1": 5, "level2": 3}) == 3


def test_a_disabled_rule_does_not_fire_and_an_edited_rule_set_changes_the_level():
    rules = [dict(r) for r in DEFAULT_RULES["rules"]]
    for rule in rules:
        if rule["id"] == "elderly_alone":
            rule["enabled"] = False
    facts = HouseholdFacts("dibao", frozenset({"elderly_alone"}), (member(),))
    assert levels.assess(facts, DEFAULT, TODAY).points == 4  # dibao 2 + elderly alone 2
    edited = RuleSet(rules=rules, thresholds={"level1": 5, "level2": 3}, version=2)
    result = levels.assess(facts, edited, TODAY)
    assert [f["rule"] for f in result.fired] == ["dibao"]
    assert result.version == 2


def test_rule_edits_are_checked_field_by_field():
    rules = [
        {
            "id": "ok_rule",
            "kind": "group",
            "value": "disabled",
            "points": "2",
            "label_zh": "残疾",
            "label_en": "Disabled",
        },
        {
            "id": "bad name",
            "kind": "category",
            "value": "nonsense",
            "points": "20",
            "label_zh": "",
            "label_en": "x",
        },
        {"id": "ok_rule", "kind": "teleport", "value": "", "points": "1", "label_zh": "a", "label_en": "b"},
    ]
    with pytest.raises(ValidationFailed) as caught:
        levels.validate_rules(rules, {"level1": "3", "level2": "3"}, {"disabled"})
    fields = {e.field for e in caught.value.errors}
    assert fields == {
        "rules-1-id",
        "rules-1-value",
        "rules-1-points",
        "rules-1-label",
        "rules-2-id",
        "rules-2-kind",
        "level1",
    }


def test_valid_rule_edits_come_back_typed():
    rules = [
        {
            "id": "old",
            "kind": "member_age_at_least",
            "value": " 75 ",
            "points": "1",
            "label_zh": "高龄",
            "label_en": "Aged",
        }
    ]
    clean, thresholds = levels.validate_rules(rules, {"level1": "4", "level2": "2"}, set())
    assert clean[0]["value"] == 75 and clean[0]["points"] == 1 and clean[0]["enabled"] is True
    assert thresholds == {"level1": 4, "level2": 2}
