"""Signals and warning rules (监测—预警): plain Python, no database, no web.

A signal says that something happened to a person or a household (a hospital bill, a fire, a
job lost ...).  :func:`clean_signal` checks what a sender sent and names every field at fault;
:func:`evaluate` applies the warning rules, kept as data an administrator edits, to one signal:
the most severe rule that fires gives the warning its severity and deadline.  :func:`merge`
says what a further signal for a household does to a warning that is still open.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from households import idnumbers
from marketplace.errors import FieldError, ValidationFailed
from marketplace.i18n import N_

MAX_BATCH = 1000
EARLIEST_SIGNAL = date(2000, 1, 1)


@dataclass(frozen=True)
class Detail:
    """A number a signal of some kind carries: money in yuan, a share from 0 to 1, or a count."""

    name: str
    label: str
    unit: str  # yuan, share, count
    required: bool = False


@dataclass(frozen=True)
class Kind:
    code: str
    label: str
    details: tuple[Detail, ...] = ()


_AMOUNT = Detail("amount", N_("Amount (yuan)"), "yuan", required=True)
KINDS: dict[str, Kind] = {
    kind.code: kind
    for kind in (
        Kind(
            "hospital_bill",
            N_("Hospital bill"),
            (_AMOUNT, Detail("out_of_pocket_share", N_("Share paid out of pocket (0 to 1)"), "share", True)),
        ),
        Kind("accident", N_("Accident")),
        Kind("disaster", N_("Fire or disaster"), (Detail("loss", N_("Loss (yuan)"), "yuan"),)),
        Kind("job_loss", N_("Job loss")),
        Kind("earner_death_or_illness", N_("Death or serious illness of a main earner")),
        Kind(
            "utility_arrears",
            N_("Utility arrears"),
            (
                Detail("amount", N_("Amount (yuan)"), "yuan"),
                Detail("months", N_("Months in arrears"), "count"),
            ),
        ),
        Kind("school_dropout", N_("School dropout")),
    )
}

SEVERITIES: dict[str, str] = {"high": N_("High"), "medium": N_("Medium"), "low": N_("Low")}
SEVERITY_RANK = {"high": 1, "medium": 2, "low": 3}

# What a rule may compare, beside "always" (empty): a detail, or a figure derived from details.
MEASURES: dict[str, str] = {
    "": N_("Always (any signal of the kind)"),
    "amount": N_("Amount (yuan) at least"),
    "out_of_pocket": N_("Out-of-pocket cost (yuan) at least"),
    "share_of_income": N_("Out-of-pocket cost as a share of yearly income at least"),
    "loss": N_("Loss (yuan) at least"),
    "months": N_("Months in arrears at least"),
}
ANY_KIND = "any"
MAX_DEADLINE_HOURS = 24 * 30
MAX_WINDOW_HOURS = 24 * 30


_RULE_FIELDS = ("id", "kind", "measure", "at_least", "severity", "deadline_hours", "label_zh", "label_en")
# name, signal kind, what it compares, at least, severity, hours to verify, Chinese and English descriptions
_DEFAULT_ROWS: list[tuple[str, str, str, float | None, str, int, str, str]] = [
    ("medical_cost_high", "hospital_bill", "out_of_pocket", 20_000, "high", 48,
     "自付医疗费用超过2万元", "Out-of-pocket medical cost over 20,000 yuan"),
    ("medical_cost_share", "hospital_bill", "share_of_income", 0.4, "high", 48,
     "自付医疗费用超过家庭年收入的40%", "Out-of-pocket medical cost over 40% of yearly income"),
    ("hospital_bill", "hospital_bill", "", None, "medium", 120, "住院费用", "Hospital bill"),
    ("accident", "accident", "", None, "high", 48, "意外事故", "Accident"),
    ("disaster", "disaster", "", None, "high", 24, "火灾或自然灾害", "Fire or disaster"),
    ("earner", "earner_death_or_illness", "", None, "high", 48,
     "主要劳动力死亡或重病", "Death or serious illness of a main earner"),
    ("job_loss", "job_loss", "", None, "medium", 120, "失业", "Job loss"),
    ("arrears_long", "utility_arrears", "months", 3, "medium", 120,
     "水电燃气欠费3个月以上", "Utility arrears of 3 months or more"),
    ("arrears", "utility_arrears", "", None, "low", 240, "水电燃气欠费", "Utility arrears"),
    ("dropout", "school_dropout", "", None, "high", 72, "辍学", "School dropout"),
]  # fmt: skip
DEFAULT_RULES: dict[str, Any] = {
    "rules": [{**dict(zip(_RULE_FIELDS, row, strict=True)), "enabled": True} for row in _DEFAULT_ROWS],
    "window_hours": 72,
}


# -- checking a signal -----------------------------------------------------------------------------


@dataclass
class CleanSignal:
    """A checked signal; ``id_number`` is normalised and never logged."""

    event_id: str
    kind: str
    occurred_on: date
    id_number: str
    household_code: str
    person_name: str
    community_code: str
    details: dict[str, float]
    note: str

    def content_hash(self) -> str:
        """A hash of everything but the ID number (compared separately, by its blind index)."""
        body = {
            "kind": self.kind,
            "occurred_on": self.occurred_on.isoformat(),
            "household_code": self.household_code,
            "person_name": self.person_name,
            "community_code": self.community_code,
            "details": self.details,
            "note": self.note,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


EVENT_ID_RE = re.compile(r"^[\w.:/\-]{1,100}$")
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")


def _text(raw: Any) -> str:
    return "" if raw is None else str(raw).strip()


def _number(raw: Any, detail: Detail, errors: list[FieldError]) -> float | None:
    name = f"details.{detail.name}"
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if detail.required:
            errors.append(FieldError(name, N_("This kind of signal needs this figure.")))
        return None
    if isinstance(raw, bool):
        value = -1.0
    elif isinstance(raw, int | float):
        value = float(raw)
    else:
        text = str(raw).strip().replace(",", "").replace("，", "")
        percent = text.endswith("%")
        try:
            value = float(text.rstrip("%"))
        except ValueError:
            value = -1.0
        else:
            if percent:
                value /= 100
    if detail.unit == "share" and not 0 <= value <= 1:
        errors.append(FieldError(name, N_("Give the share as a fraction from 0 to 1, e.g. 0.35.")))
        return None
    if detail.unit == "count" and (value < 0 or value != int(value) or value > 1200):
        errors.append(FieldError(name, N_("Enter a whole number from 0 to 1200.")))
        return None
    if detail.unit == "yuan" and not 0 <= value <= 100_000_000:
        errors.append(FieldError(name, N_("Enter an amount in yuan from 0 to 100,000,000.")))
        return None
    return value


def _occurred_on(raw: Any, today: date, errors: list[FieldError]) -> date:
    if isinstance(raw, date):
        day: date | None = raw
    else:
        try:
            day = date.fromisoformat(_text(raw).replace("/", "-")) if _text(raw) else None
        except ValueError:
            day = None
            errors.append(FieldError("occurred_on", N_("Enter the date as year-month-day, e.g. 2025-03-15.")))
            return today
        if day is None:
            errors.append(FieldError("occurred_on", N_("Enter the day it happened.")))
            return today
    assert day is not None
    if day > today + timedelta(days=1) or day < EARLIEST_SIGNAL:
        errors.append(
            FieldError("occurred_on", N_("The day it happened cannot be in the future or before 2000."))
        )
    return day


def _event_id(raw: Any, required: bool, errors: list[FieldError]) -> str:
    event_id = _text(raw)
    if required and not event_id:
        message = N_("Give each signal your own event id, so that a resend is recognised.")
        errors.append(FieldError("event_id", message))
    elif event_id and not EVENT_ID_RE.match(event_id):
        message = N_("Use up to 100 letters, digits and the characters . : / _ - for the event id.")
        errors.append(FieldError("event_id", message))
    return event_id


def _kind(raw: Any, errors: list[FieldError]) -> Kind | None:
    code = _text(raw)
    kind = KINDS.get(code)
    if kind is None and not code:
        errors.append(FieldError("kind", N_("Say what happened: choose the kind of signal.")))
    elif kind is None:
        params = {"kind": repr(code), "kinds": ", ".join(KINDS)}
        errors.append(FieldError("kind", N_("Unknown signal kind %(kind)s; use one of: %(kinds)s."), params))
    return kind


def _subject(raw: Mapping[str, Any], today: date, errors: list[FieldError]) -> tuple[str, str]:
    """The ID number (checked, normalised) and the household code; at least one is needed."""
    id_number = ""
    raw_id = _text(raw.get("id_number"))
    if raw_id:
        try:
            id_number = idnumbers.parse(raw_id, today=today).value
        except idnumbers.InvalidIdNumber as exc:
            errors.append(FieldError("id_number", exc.message, dict(exc.params)))
    household_code = _text(raw.get("household_code"))
    if household_code and not CODE_RE.match(household_code):
        message = N_("A household code has up to 40 letters, digits, - or _.")
        errors.append(FieldError("household_code", message))
    if not raw_id and not household_code:
        errors.append(FieldError("id_number", N_("Give the person's ID number or the household code.")))
    return id_number, household_code


def _limited(raw: Mapping[str, Any], name: str, most: int, message: str, errors: list[FieldError]) -> str:
    text = _text(raw.get(name))
    if len(text) > most:
        errors.append(FieldError(name, message))
    return text


def _details(raw: Any, kind: Kind | None, errors: list[FieldError]) -> dict[str, float]:
    """The figures a kind of signal carries, each checked; a figure the kind does not have is an error."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        errors.append(FieldError("details", N_('Details are an object of figures, e.g. {"amount": 1200}.')))
        return {}
    if kind is None:
        return {}
    known = {d.name: d for d in kind.details}
    message = N_("Not a detail of this kind of signal; its details are: %(names)s.")
    for name in raw:
        if name not in known:
            errors.append(FieldError(f"details.{name}", message, {"names": ", ".join(known) or "–"}))
    details: dict[str, float] = {}
    for detail in kind.details:
        value = _number(raw.get(detail.name), detail, errors)
        if value is not None:
            details[detail.name] = value
    return details


def clean_signal(raw: Mapping[str, Any], *, today: date, require_event_id: bool) -> CleanSignal:
    """Check one signal as sent; raise ValidationFailed naming each field at fault."""
    errors: list[FieldError] = []
    event_id = _event_id(raw.get("event_id"), require_event_id, errors)
    kind = _kind(raw.get("kind"), errors)
    occurred_on = _occurred_on(raw.get("occurred_on"), today, errors)
    id_number, household_code = _subject(raw, today, errors)
    person_name = _limited(raw, "person_name", 50, N_("Keep the name under 50 characters."), errors)
    community_code = _limited(
        raw, "community_code", 15, N_("A community code has at most 15 characters."), errors
    )
    note = _limited(raw, "note", 1000, N_("Keep the note under 1,000 characters."), errors)
    details = _details(raw.get("details"), kind, errors)
    if errors or kind is None:
        raise ValidationFailed(errors=errors)
    return CleanSignal(
        event_id=event_id,
        kind=kind.code,
        occurred_on=occurred_on,
        id_number=id_number,
        household_code=household_code,
        person_name=person_name,
        community_code=community_code,
        details=details,
        note=note,
    )


# -- warning rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalFacts:
    """What the rules look at: the kind, its figures, and the household's yearly income if known."""

    kind: str
    details: Mapping[str, float]
    yearly_income: int | None = None

    def measure(self, name: str) -> float | None:
        if name in ("amount", "loss", "months"):
            return self.details.get(name)
        if name == "out_of_pocket":
            amount, share = self.details.get("amount"), self.details.get("out_of_pocket_share")
            return None if amount is None or share is None else amount * share
        if name == "share_of_income":
            cost = self.measure("out_of_pocket")
            if cost is None or not self.yearly_income or self.yearly_income <= 0:
                return None
            return cost / self.yearly_income
        return None


@dataclass(frozen=True)
class Outcome:
    """What the rules decided for one signal: a warning of this severity, due in so many hours."""

    severity: str
    deadline_hours: int
    rule: str

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]


@dataclass
class WarningRules:
    """The rules in force and the dedupe window; ``version`` 0 is the built-in default."""

    rules: list[dict[str, Any]]
    window_hours: int
    version: int = 0


def default_rules() -> WarningRules:
    return WarningRules(
        rules=[dict(r) for r in DEFAULT_RULES["rules"]], window_hours=int(DEFAULT_RULES["window_hours"])
    )


def fires(rule: Mapping[str, Any], facts: SignalFacts) -> bool:
    if not rule.get("enabled", True):
        return False
    if rule["kind"] not in (ANY_KIND, facts.kind):
        return False
    if not rule.get("measure"):
        return True
    value = facts.measure(rule["measure"])
    return value is not None and value >= float(rule["at_least"])


def evaluate(rules: WarningRules, facts: SignalFacts) -> Outcome | None:
    """The most severe rule that fires (then the shortest deadline, then the first listed), or None."""
    fired = [
        (SEVERITY_RANK[r["severity"]], int(r["deadline_hours"]), n, r)
        for n, r in enumerate(rules.rules)
        if fires(r, facts)
    ]
    if not fired:
        return None
    _, hours, _, rule = min(fired, key=lambda item: item[:3])
    return Outcome(severity=rule["severity"], deadline_hours=hours, rule=rule["id"])


@dataclass
class OpenWarning:
    """The parts of an open warning a further signal may change."""

    severity: str
    deadline_at: datetime
    rule: str
    opened_at: datetime
    signal_count: int = 1
    changed: bool = field(default=False, compare=False)


def absorbs(warning: OpenWarning, at: datetime, window_hours: int) -> bool:
    """Whether a signal arriving ``at`` joins this open warning instead of opening another."""
    return at - warning.opened_at <= timedelta(hours=window_hours)


def merge(warning: OpenWarning, outcome: Outcome, at: datetime) -> OpenWarning:
    """A further signal joins an open warning: the severity can only rise, the deadline only come closer."""
    severity, rule = warning.severity, warning.rule
    if outcome.rank < SEVERITY_RANK[warning.severity]:
        severity, rule = outcome.severity, outcome.rule
    deadline = min(warning.deadline_at, at + timedelta(hours=outcome.deadline_hours))
    return OpenWarning(
        severity=severity,
        deadline_at=deadline,
        rule=rule,
        opened_at=warning.opened_at,
        signal_count=warning.signal_count + 1,
        changed=True,
    )


def _whole(raw: Any) -> int:
    try:
        return int(_text(raw))
    except ValueError:
        return 0


def _threshold(rule: Mapping[str, Any], prefix: str, errors: list[FieldError]) -> tuple[str, float | None]:
    """What a rule compares and its threshold (None when it fires for any signal of its kind)."""
    measure = _text(rule.get("measure"))
    if measure not in MEASURES:
        errors.append(FieldError(f"{prefix}measure", N_("Choose what the rule compares.")))
        return measure, None
    if not measure:
        return measure, None
    try:
        at_least = float(_text(rule.get("at_least")).replace(",", ""))
    except ValueError:
        at_least = -1
    if at_least < 0:
        errors.append(FieldError(f"{prefix}at_least", N_("Enter a number (0 or more).")))
    return measure, at_least


def _checked_rule(
    n: int, rule: Mapping[str, Any], seen: set[str], errors: list[FieldError]
) -> dict[str, Any]:
    prefix = f"rules-{n}-"
    rid = _text(rule.get("id"))
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", rid):
        errors.append(FieldError(f"{prefix}id", N_("Use lower-case letters, digits and underscores.")))
    elif rid in seen:
        errors.append(FieldError(f"{prefix}id", N_("Another rule already has this name.")))
    seen.add(rid)
    kind = _text(rule.get("kind"))
    if kind != ANY_KIND and kind not in KINDS:
        errors.append(FieldError(f"{prefix}kind", N_("Choose the kind of signal.")))
    measure, at_least = _threshold(rule, prefix, errors)
    severity = _text(rule.get("severity"))
    if severity not in SEVERITIES:
        errors.append(FieldError(f"{prefix}severity", N_("Choose a severity.")))
    hours = _whole(rule.get("deadline_hours"))
    if not 1 <= hours <= MAX_DEADLINE_HOURS:
        errors.append(FieldError(f"{prefix}deadline_hours", N_("Enter hours from 1 to 720.")))
    label_zh, label_en = _text(rule.get("label_zh")), _text(rule.get("label_en"))
    if not label_zh or not label_en:
        message = N_("Give the rule a short description in both languages.")
        errors.append(FieldError(f"{prefix}label", message))
    return {
        "id": rid,
        "kind": kind,
        "measure": measure,
        "at_least": at_least,
        "severity": severity,
        "deadline_hours": hours,
        "label_zh": label_zh[:60],
        "label_en": label_en[:80],
        "enabled": bool(rule.get("enabled", True)),
    }


def validate_rules(rules: Sequence[Mapping[str, Any]], window_hours: Any) -> tuple[list[dict[str, Any]], int]:
    """Check an edited rule set; errors name the field as ``rules-<n>-<part>`` or ``window_hours``."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    clean = [_checked_rule(n, rule, seen, errors) for n, rule in enumerate(rules)]
    window = _whole(window_hours)
    if not 1 <= window <= MAX_WINDOW_HOURS:
        errors.append(FieldError("window_hours", N_("Enter hours from 1 to 720.")))
    if errors:
        raise ValidationFailed(errors=errors)
    return clean, window


def median_hours(durations: Sequence[timedelta]) -> float | None:
    """The median of some durations, in hours (None for none)."""
    if not durations:
        return None
    ordered = sorted(d.total_seconds() for d in durations)
    middle = len(ordered) // 2
    seconds = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return seconds / 3600
