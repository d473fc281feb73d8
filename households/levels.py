"""Need levels (分级): transparent rules, kept as data, that add points; thresholds map points to levels.

Plain Python: the rules arrive as a dict an administrator edited, the household as facts;
the result is a level and the explanation of which rules fired for how many points.
Level 1 is the most urgent, 3 the least.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from marketplace.errors import FieldError, ValidationFailed
from marketplace.i18n import N_

LEVELS = (1, 2, 3)

CATEGORIES: dict[str, str] = {
    "dibao": N_("Minimum living allowance (低保)"),
    "tekun": N_("Extreme hardship support (特困)"),
    "dibao_marginal": N_("Marginal to minimum allowance (低保边缘)"),
    "at_risk": N_("At risk of falling back into poverty"),
    "expenditure_hardship": N_("Hardship from essential spending"),
    "low_income_monitored": N_("Other low income (monitored only)"),
}

# The need groups every installation has; an administrator adds more as rows.
BUILTIN_GROUPS: dict[str, str] = {
    "elderly_alone": N_("Elderly living alone"),
    "disabled": N_("Disability"),
    "serious_illness": N_("Serious illness"),
    "child_in_difficulty": N_("Child in difficulty"),
    "single_parent": N_("Single-parent family"),
}

# What a rule can test, and whether it takes a value.
RULE_KINDS: dict[str, str] = {
    "category": N_("Assistance category is"),
    "group": N_("Household is in need group"),
    "disability_grade_at_most": N_("A member's disability grade is at most"),
    "member_age_at_least": N_("A member is at least this old (years)"),
    "members_at_most": N_("The household has at most this many members"),
    "no_phone_user": N_("No member can use a phone"),
}
KINDS_WITHOUT_VALUE = {"no_phone_user"}
INTEGER_KINDS = {"disability_grade_at_most", "member_age_at_least", "members_at_most"}


def _rule(rid: str, kind: str, value: Any, points: int, labels: tuple[str, str]) -> dict[str, Any]:
    zh, en = labels
    return {"id": rid, "kind": kind, "value": value, "points": points, "label_zh": zh, "label_en": en}


DEFAULT_RULES: dict[str, Any] = {
    "rules": [
        _rule("tekun", "category", "tekun", 3, ("特困人员", "Extreme hardship support")),
        _rule("dibao", "category", "dibao", 2, ("低保对象", "Minimum living allowance")),
        _rule(
            "dibao_marginal",
            "category",
            "dibao_marginal",
            1,
            ("低保边缘家庭", "Marginal to minimum allowance"),
        ),
        _rule(
            "at_risk", "category", "at_risk", 1, ("易返贫致贫人口", "At risk of falling back into poverty")
        ),
        _rule("elderly_alone", "group", "elderly_alone", 2, ("独居老人", "Elderly living alone")),
        _rule(
            "disabled_severe",
            "disability_grade_at_most",
            2,
            2,
            ("一、二级残疾", "Disability of grade 1 or 2"),
        ),
        _rule("serious_illness", "group", "serious_illness", 2, ("重病", "Serious illness")),
        _rule("child_in_difficulty", "group", "child_in_difficulty", 2, ("困境儿童", "Child in difficulty")),
        _rule("single_parent", "group", "single_parent", 1, ("单亲家庭", "Single-parent family")),
        _rule("aged_80", "member_age_at_least", 80, 1, ("有80岁以上成员", "A member aged 80 or over")),
        _rule("no_phone_user", "no_phone_user", None, 1, ("家中无人会用手机", "No member can use a phone")),
    ],
    # At least this many points: level 1; at least level2 points: level 2; fewer: level 3.
    "thresholds": {"level1": 5, "level2": 3},
}


@dataclass(frozen=True)
class MemberFacts:
    birth_date: date | None
    disability_grade: int | None
    can_use_phone: bool


@dataclass(frozen=True)
class HouseholdFacts:
    """What the rules may look at; nothing encrypted is needed."""

    category: str
    groups: frozenset[str]
    members: tuple[MemberFacts, ...] = ()


@dataclass(frozen=True)
class Assessment:
    """A level, its points, and the rules that fired: stored and shown as the explanation."""

    level: int
    points: int
    fired: tuple[dict[str, Any], ...]
    thresholds: dict[str, int]
    version: int

    def explanation(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "points": self.points,
            "fired": list(self.fired),
            "thresholds": dict(self.thresholds),
            "version": self.version,
        }


@dataclass
class RuleSet:
    """Rules with their thresholds, as stored; ``version`` 0 is the built-in default."""

    rules: list[dict[str, Any]]
    thresholds: dict[str, int]
    version: int = 0
    extra_groups: frozenset[str] = field(default_factory=frozenset)


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _any_member(facts: HouseholdFacts, test: Any) -> bool:
    return any(test(m) for m in facts.members)


# How each kind of rule tests a household: (facts, the rule's value, today) → fires?
_TESTS: dict[str, Any] = {
    "category": lambda f, v, _: f.category == v,
    "group": lambda f, v, _: v in f.groups,
    "disability_grade_at_most": lambda f, v, _: _any_member(
        f, lambda m: m.disability_grade is not None and m.disability_grade <= int(v)
    ),
    "member_age_at_least": lambda f, v, today: _any_member(
        f, lambda m: m.birth_date is not None and age_on(m.birth_date, today) >= int(v)
    ),
    "members_at_most": lambda f, v, _: 0 < len(f.members) <= int(v),
    "no_phone_user": lambda f, _v, _t: bool(f.members) and not _any_member(f, lambda m: m.can_use_phone),
}


def _fires(rule: dict[str, Any], facts: HouseholdFacts, today: date) -> bool:
    test = _TESTS.get(rule["kind"])
    return bool(test and test(facts, rule.get("value"), today))


def level_for(points: int, thresholds: dict[str, int]) -> int:
    if points >= thresholds["level1"]:
        return 1
    if points >= thresholds["level2"]:
        return 2
    return 3


def assess(facts: HouseholdFacts, rules: RuleSet, today: date) -> Assessment:
    """Score a household: every enabled rule that fires adds its points."""
    fired = tuple(
        {
            "rule": rule["id"],
            "points": int(rule["points"]),
            "label_zh": rule["label_zh"],
            "label_en": rule["label_en"],
        }
        for rule in rules.rules
        if rule.get("enabled", True) and _fires(rule, facts, today)
    )
    points = sum(item["points"] for item in fired)
    return Assessment(
        level=level_for(points, rules.thresholds),
        points=points,
        fired=fired,
        thresholds=dict(rules.thresholds),
        version=rules.version,
    )


def _rule_value(kind: str, raw: Any, known_groups: set[str]) -> tuple[Any, str | None]:
    """The rule's value in its proper type, or the message saying what is wrong with it."""
    if kind in KINDS_WITHOUT_VALUE:
        return None, None
    if kind in INTEGER_KINDS:
        try:
            value = int(str(raw).strip())
        except (TypeError, ValueError):
            value = -1
        if not 0 <= value <= 150:
            return None, N_("Enter a whole number from 0 to 150.")
        return value, None
    if kind == "category" and raw not in CATEGORIES:
        return None, N_("Choose one of the assistance categories.")
    if kind == "group" and raw not in known_groups:
        return None, N_("Choose one of the need groups.")
    return raw, None


def _validate_rule(
    n: int, rule: dict[str, Any], known_groups: set[str], seen: set[str], errors: list[FieldError]
) -> dict[str, Any] | None:
    prefix = f"rules-{n}"
    rid = str(rule.get("id", "")).strip()
    kind = str(rule.get("kind", "")).strip()
    if not rid or not rid.replace("_", "").isalnum() or not rid.isascii():
        errors.append(
            FieldError(f"{prefix}-id", N_("Use letters, digits and underscores for the rule name."))
        )
    elif rid in seen:
        errors.append(FieldError(f"{prefix}-id", N_("Another rule already has this name.")))
    seen.add(rid)
    if kind not in RULE_KINDS:
        errors.append(FieldError(f"{prefix}-kind", N_("Choose what the rule tests.")))
        return None
    value, problem = _rule_value(kind, rule.get("value"), known_groups)
    if problem:
        errors.append(FieldError(f"{prefix}-value", problem))
    try:
        points = int(str(rule.get("points", "")).strip())
    except (TypeError, ValueError):
        points = 99
    if not -10 <= points <= 10:
        errors.append(FieldError(f"{prefix}-points", N_("Enter points from -10 to 10.")))
    label_zh = str(rule.get("label_zh", "")).strip()
    label_en = str(rule.get("label_en", "")).strip()
    if not label_zh or not label_en:
        message = N_("Give the rule a short description in both languages.")
        errors.append(FieldError(f"{prefix}-label", message))
    return {
        "id": rid,
        "kind": kind,
        "value": value,
        "points": points,
        "label_zh": label_zh[:60],
        "label_en": label_en[:80],
        "enabled": bool(rule.get("enabled", True)),
    }


def validate_rules(
    rules: list[dict[str, Any]], thresholds: dict[str, Any], known_groups: set[str]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Check an edited rule set; errors name the field as ``rules-<n>-<part>`` or ``level1``/``level2``."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    clean = [
        checked
        for n, rule in enumerate(rules)
        if (checked := _validate_rule(n, rule, known_groups, seen, errors)) is not None
    ]
    parsed: dict[str, int] = {}
    for name in ("level1", "level2"):
        try:
            parsed[name] = int(str(thresholds.get(name, "")).strip())
        except ValueError:
            errors.append(FieldError(name, N_("Enter a whole number of points.")))
    if len(parsed) == 2 and parsed["level1"] <= parsed["level2"]:
        errors.append(FieldError("level1", N_("Level 1 needs more points than level 2.")))
    if errors:
        raise ValidationFailed(errors=errors)
    return clean, parsed
