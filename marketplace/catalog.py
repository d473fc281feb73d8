"""Rules of the catalog and the level policies: plain Python, no database, no HTTP.

A category has a standard credit cost per unit.  Each need level (1 most urgent … 3) has a
policy: the credits it is granted each month, the cost rules that turn a standard cost into
what a household of that level pays, response targets and routing terms.  The functions here
check what an administrator enters and compute costs; ``marketplace.catalog_services`` reads
and writes the rows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from marketplace.errors import FieldError, ValidationFailed
from marketplace.i18n import N_

NEED_LEVELS = (1, 2, 3)
CODE_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
MAX_CREDITS = 100_000
MAX_PERCENT = 1_000


class Routing(StrEnum):
    """How an order of a category finds its provider."""

    DIRECT = "direct"  # 派单: offered to the best candidate, one at a time
    POOL = "pool"  # 抢单: the top candidates see it, the first to accept wins


ROUTING_LABELS = {
    Routing.DIRECT: N_("Direct offer"),
    Routing.POOL: N_("Open pool"),
}
ROUTING_HINTS = {
    Routing.DIRECT: N_("Offered to the best provider, one at a time."),
    Routing.POOL: N_("Shown to nearby providers; the first to accept serves."),
}


class Unit(StrEnum):
    """What one unit of a service is: the credit cost is per unit."""

    VISIT = "visit"
    HOUR = "hour"
    MEAL = "meal"


UNIT_NAMES = {
    Unit.VISIT: N_("Visit"),
    Unit.HOUR: N_("Hour"),
    Unit.MEAL: N_("Meal"),
}
UNIT_LABELS = {
    Unit.VISIT: N_("per visit"),
    Unit.HOUR: N_("per hour"),
    Unit.MEAL: N_("per meal"),
}


@dataclass(frozen=True)
class CostRules:
    """How a level pays: a percentage of the standard cost, fixed prices, uncovered categories.

    ``fixed`` (category code → credits per unit) wins over ``percent``; a category in
    ``excluded`` is not covered by credits at that level.
    """

    percent: int = 100
    fixed: Mapping[str, int] = field(default_factory=dict)
    excluded: frozenset[str] = frozenset()

    def to_json(self) -> str:
        return json.dumps(
            {
                "percent": self.percent,
                "fixed": dict(sorted(self.fixed.items())),
                "excluded": sorted(self.excluded),
            }
        )

    def as_dict(self) -> dict[str, Any]:
        return {"percent": self.percent, "fixed": dict(self.fixed), "excluded": sorted(self.excluded)}

    @classmethod
    def from_json(cls, raw: str | Mapping[str, Any] | None) -> CostRules:
        """Rules as stored; unknown keys are ignored so that old rows stay readable."""
        data: Any = json.loads(raw) if isinstance(raw, str) else (raw or {})
        return cls(
            percent=int(data.get("percent", 100)),
            fixed={str(k): int(v) for k, v in (data.get("fixed") or {}).items()},
            excluded=frozenset(str(c) for c in data.get("excluded") or ()),
        )


def credit_cost(category_code: str, standard_cost: int, rules: CostRules, units: int = 1) -> int | None:
    """What ``units`` of a category cost a household under ``rules``; None when not covered.

    A percentage is rounded up to whole credits, so that a discount never makes a paid
    service free by rounding.
    """
    if category_code in rules.excluded:
        return None
    if category_code in rules.fixed:
        return rules.fixed[category_code] * units
    if standard_cost <= 0 or rules.percent <= 0:
        return 0
    return math.ceil(standard_cost * rules.percent / 100) * units


@dataclass(frozen=True)
class PolicyTerms:
    """What a need level gets: the fields an administrator sets for one version of a policy."""

    monthly_credits: int
    cost_rules: CostRules
    accept_minutes: int
    service_hours: int
    offer_timeout_minutes: int
    routing_priority: int


@dataclass(frozen=True)
class Policy:
    """One stored version of a level's policy."""

    level: int
    version: int
    terms: PolicyTerms
    effective_from: datetime
    reason: str = ""
    changed_by: int | None = None


def current_version(versions: list[Policy], at: datetime) -> Policy | None:
    """The version in force at ``at``: the latest one that has taken effect."""
    in_force = [p for p in versions if p.effective_from <= at]
    if not in_force:
        return None
    return max(in_force, key=lambda p: (p.effective_from, p.version))


def _whole(
    data: Mapping[str, Any], name: str, errors: list[FieldError], *, low: int = 0, high: int = MAX_CREDITS
) -> int:
    raw = data.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        errors.append(FieldError(name, N_("Enter a whole number.")))
        return 0
    try:
        if isinstance(raw, bool):
            raise ValueError(raw)
        value = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError:
        errors.append(FieldError(name, N_("Enter a whole number.")))
        return 0
    if not low <= value <= high:
        errors.append(
            FieldError(name, N_("Enter a number from %(low)s to %(high)s."), {"low": low, "high": high})
        )
    return value


def _codes(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [c for c in re.split(r"[\s,，]+", raw) if c]
    return [str(c) for c in raw]


def parse_fixed(raw: Any, errors: list[FieldError], known: set[str]) -> dict[str, int]:
    """Fixed prices from a mapping or from text lines ``code=credits``."""
    fixed: dict[str, int] = {}
    items: list[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    else:
        items = []
        for part in re.split(r"[\n,，;]+", str(raw or "")):
            if not part.strip():
                continue
            code, sep, value = part.partition("=")
            items.append((code.strip(), value.strip() if sep else ""))
    for code, value in items:
        if code not in known:
            errors.append(
                FieldError("fixed", N_("There is no category with the code %(code)s."), {"code": code})
            )
            continue
        try:
            credits = int(value)
        except (TypeError, ValueError):
            errors.append(FieldError("fixed", N_("Write each fixed price as code=credits, e.g. meals=0.")))
            continue
        if not 0 <= credits <= MAX_CREDITS:
            errors.append(
                FieldError(
                    "fixed", N_("Enter a number from %(low)s to %(high)s."), {"low": 0, "high": MAX_CREDITS}
                )
            )
            continue
        fixed[code] = credits
    return fixed


def validate_terms(data: Mapping[str, Any], category_codes: set[str]) -> PolicyTerms:
    """Policy terms from a form or a JSON body; every bad field is named at once."""
    errors: list[FieldError] = []
    monthly = _whole(data, "monthly_credits", errors)
    percent = _whole(data, "percent", errors, high=MAX_PERCENT)
    fixed = parse_fixed(data.get("fixed"), errors, category_codes)
    excluded = _codes(data.get("excluded"))
    unknown = [c for c in excluded if c not in category_codes]
    if unknown:
        errors.append(
            FieldError("excluded", N_("There is no category with the code %(code)s."), {"code": unknown[0]})
        )
    both = sorted(set(excluded) & set(fixed))
    if both:
        errors.append(
            FieldError(
                "excluded", N_("%(code)s cannot have a fixed price and be excluded."), {"code": both[0]}
            )
        )
    accept = _whole(data, "accept_minutes", errors, low=1, high=7 * 24 * 60)
    service = _whole(data, "service_hours", errors, low=1, high=90 * 24)
    timeout = _whole(data, "offer_timeout_minutes", errors, low=1, high=24 * 60)
    priority = _whole(data, "routing_priority", errors, low=1, high=99)
    if not errors and timeout > accept:
        errors.append(
            FieldError(
                "offer_timeout_minutes",
                N_("An offer must time out before the time to accept runs out (%(n)s minutes)."),
                {"n": accept},
            )
        )
    if not errors and accept > service * 60:
        errors.append(
            FieldError("accept_minutes", N_("The time to accept cannot be longer than the time to service."))
        )
    if errors:
        raise ValidationFailed(errors=errors)
    return PolicyTerms(
        monthly_credits=monthly,
        cost_rules=CostRules(percent=percent, fixed=fixed, excluded=frozenset(excluded)),
        accept_minutes=accept,
        service_hours=service,
        offer_timeout_minutes=timeout,
        routing_priority=priority,
    )


@dataclass(frozen=True)
class CategoryFields:
    """What an administrator sets on a category."""

    code: str
    name_zh: str
    name_en: str
    description_zh: str
    description_en: str
    icon: str
    routing: Routing
    unit: Unit
    credit_cost: int
    sort_order: int
    is_active: bool


def _text(data: Mapping[str, Any], name: str, limit: int) -> str:
    return str(data.get(name) or "").strip()[:limit]


def _flag(raw: Any, default: bool) -> bool:
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    return str(raw).strip().lower() in {"1", "true", "on", "yes"}


def validate_category(
    data: Mapping[str, Any], icons: set[str], *, code_fixed: str | None = None
) -> CategoryFields:
    """A category from a form or JSON body; the code cannot change once it exists."""
    errors: list[FieldError] = []
    code = code_fixed or _text(data, "code", 40)
    if code_fixed is None and not CODE_RE.match(code):
        errors.append(
            FieldError(
                "code", N_("Use 2 to 40 lower-case letters, digits or underscores, starting with a letter.")
            )
        )
    name_zh, name_en = _text(data, "name_zh", 50), _text(data, "name_en", 80)
    if not name_zh:
        errors.append(FieldError("name_zh", N_("Enter the Chinese name.")))
    if not name_en:
        errors.append(FieldError("name_en", N_("Enter the English name.")))
    icon = _text(data, "icon", 60) or "generic.svg"
    if icon not in icons:
        errors.append(FieldError("icon", N_("Choose one of the icons offered.")))
    routing = _text(data, "routing", 10)
    if routing not in set(Routing):
        errors.append(FieldError("routing", N_("Choose direct offer or open pool.")))
    unit = _text(data, "unit", 10)
    if unit not in set(Unit):
        errors.append(FieldError("unit", N_("Choose a unit.")))
    cost = _whole(data, "credit_cost", errors)
    sort_order = _whole({"sort_order": data.get("sort_order") or 100}, "sort_order", errors, high=10_000)
    if errors:
        raise ValidationFailed(errors=errors)
    return CategoryFields(
        code=code,
        name_zh=name_zh,
        name_en=name_en,
        description_zh=_text(data, "description_zh", 2000),
        description_en=_text(data, "description_en", 2000),
        icon=icon,
        routing=Routing(routing),
        unit=Unit(unit),
        credit_cost=cost,
        sort_order=sort_order,
        is_active=_flag(data.get("is_active"), True),
    )


def localized(row: Mapping[str, Any], base: str, locale: str) -> str:
    """``name_zh`` or ``name_en`` of a row for the reader's locale, falling back to Chinese."""
    if locale.startswith("en") and row.get(f"{base}_en"):
        return str(row[f"{base}_en"])
    return str(row.get(f"{base}_zh") or row.get(f"{base}_en") or "")
