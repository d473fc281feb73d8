"""Rules of `providers`: kinds, the verification steps, what a valid offering and schedule are.

Plain Python (no database, no HTTP), so that every rule is tested in microseconds.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from marketplace.catalog import Unit
from marketplace.errors import Conflict, FieldError, ValidationFailed
from marketplace.i18n import N_

MINUTES_PER_DAY = 24 * 60
MAX_CAPACITY = 500
MAX_DURATION_MINUTES = 12 * 60
MAX_CREDITS = 10_000
MAX_INTERVALS_PER_DAY = 4


class Kind(StrEnum):
    """What sort of provider: four kinds of organization and the individual volunteer."""

    SOCIAL_ORGANIZATION = "social_organization"
    SOCIAL_WORK_AGENCY = "social_work_agency"
    COMPANY = "company"
    VOLUNTEER_TEAM = "volunteer_team"
    INDIVIDUAL_VOLUNTEER = "individual_volunteer"

    @property
    def is_organization(self) -> bool:
        return self is not Kind.INDIVIDUAL_VOLUNTEER


KIND_LABELS = {
    Kind.SOCIAL_ORGANIZATION: N_("Social organization"),
    Kind.SOCIAL_WORK_AGENCY: N_("Social-work agency"),
    Kind.COMPANY: N_("Company"),
    Kind.VOLUNTEER_TEAM: N_("Volunteer team"),
    Kind.INDIVIDUAL_VOLUNTEER: N_("Individual volunteer"),
}


class Status(StrEnum):
    """Where a provider stands with the bureau; only verified providers receive orders."""

    PENDING = "pending"
    VERIFIED = "verified"
    REFUSED = "refused"
    SUSPENDED = "suspended"


STATUS_LABELS = {
    Status.PENDING: N_("Waiting for verification"),
    Status.VERIFIED: N_("Verified"),
    Status.REFUSED: N_("Not approved"),
    Status.SUSPENDED: N_("Suspended by the bureau"),
}


class Action(StrEnum):
    """A step in a provider's verification history."""

    REGISTER = "register"
    VERIFY = "verify"
    REFUSE = "refuse"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    RESUBMIT = "resubmit"


ACTION_LABELS = {
    Action.REGISTER: N_("Registered as a provider"),
    Action.VERIFY: N_("Verified"),
    Action.REFUSE: N_("Refused"),
    Action.SUSPEND: N_("Suspended by the bureau"),
    Action.REINSTATE: N_("Reinstated"),
    Action.RESUBMIT: N_("Sent again for verification"),
}

# action → (the statuses it may start from, the status it leads to)
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status]] = {
    Action.VERIFY: (frozenset({Status.PENDING}), Status.VERIFIED),
    Action.REFUSE: (frozenset({Status.PENDING}), Status.REFUSED),
    Action.SUSPEND: (frozenset({Status.VERIFIED}), Status.SUSPENDED),
    Action.REINSTATE: (frozenset({Status.SUSPENDED}), Status.VERIFIED),
    Action.RESUBMIT: (frozenset({Status.REFUSED}), Status.PENDING),
}
ADMIN_ACTIONS = (Action.VERIFY, Action.REFUSE, Action.SUSPEND, Action.REINSTATE)
NEEDS_REASON = frozenset({Action.REFUSE, Action.SUSPEND})
NEEDS_DOCUMENTS = frozenset({Action.VERIFY})

# Documents an administrator may note as checked.  Only the kind is kept: never a number
# from a personal document (an identity card is checked by sight and not recorded).
DOCUMENT_KINDS = {
    "registration_certificate": N_("Registration certificate of a social organization (登记证书)"),
    "business_licence": N_("Business licence (营业执照)"),
    "credit_code": N_("Unified social credit code checked on the public register"),
    "service_qualification": N_(
        "Qualification for the services offered (e.g. food business licence, health certificates)"
    ),
    "volunteer_registration": N_("Registration in the national volunteer service system"),
    "identity_checked": N_("Identity card seen in person (number not recorded)"),
    "agreement": N_("Service agreement with the civil-affairs bureau signed"),
}

# 统一社会信用代码 (GB 32100-2015): 18 characters, letters without I, O, S, V and Z.
CREDIT_CODE_RE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
TIME_RE = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
WEBSITE_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)

WEEKDAY_LABELS = (
    N_("Monday"),
    N_("Tuesday"),
    N_("Wednesday"),
    N_("Thursday"),
    N_("Friday"),
    N_("Saturday"),
    N_("Sunday"),
)


def next_status(current: Status | str, action: Action) -> Status:
    """The status an action leads to; Conflict when it cannot start from ``current``."""
    starts, to = TRANSITIONS[action]
    if Status(current) not in starts:
        raise Conflict(N_("This provider's status has changed; reload the page to see where it stands."))
    return to


def check_decision(action: Action, reason: str, documents: list[str]) -> None:
    """A refusal or suspension needs a reason; a verification needs the documents checked."""
    errors: list[FieldError] = []
    if action in NEEDS_REASON and not reason.strip():
        errors.append(FieldError("reason", N_("Write the reason: the provider will read it.")))
    unknown = [d for d in documents if d not in DOCUMENT_KINDS]
    if unknown:
        errors.append(FieldError("documents", N_("Choose documents from the list.")))
    if action in NEEDS_DOCUMENTS and not documents:
        errors.append(FieldError("documents", N_("Tick the documents you checked.")))
    if errors:
        raise ValidationFailed(errors=errors)


def credit_code_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code, computed from the first 17."""
    total = sum(_CREDIT_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return _CREDIT_CHARS[(31 - total % 31) % 31]


def credit_code_valid(code: str) -> bool:
    """Format and check character of a unified social credit code."""
    return bool(CREDIT_CODE_RE.match(code)) and credit_code_check_char(code[:17]) == code[17]


def can_receive_orders(status: str, is_active: bool) -> bool:
    return status == Status.VERIFIED and is_active


# -- profiles and offerings ----------------------------------------------------------------------


def text(data: Mapping[str, Any], name: str, limit: int) -> str:
    return str(data.get(name) or "").strip()[:limit]


def flag(raw: Any, default: bool = False) -> bool:
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, list):
        raw = raw[-1] if raw else ""
    return str(raw).strip().lower() in {"1", "true", "on", "yes"}


def whole(
    data: Mapping[str, Any],
    name: str,
    errors: list[FieldError],
    *,
    low: int,
    high: int,
    default: int | None = None,
) -> int:
    raw = data.get(name)
    if (raw is None or (isinstance(raw, str) and not raw.strip())) and default is not None:
        return default
    try:
        if isinstance(raw, bool) or raw is None:
            raise ValueError(raw)
        value = raw if isinstance(raw, int) else int(str(raw).strip())
    except ValueError:
        errors.append(FieldError(name, N_("Enter a whole number.")))
        return low
    if not low <= value <= high:
        errors.append(
            FieldError(name, N_("Enter a number from %(low)s to %(high)s."), {"low": low, "high": high})
        )
    return value


def coordinates(data: Mapping[str, Any], errors: list[FieldError]) -> tuple[float | None, float | None]:
    """Optional latitude and longitude, both or neither, within China's extent."""
    raw_lat, raw_lon = data.get("latitude"), data.get("longitude")
    blank = [v is None or (isinstance(v, str) and not v.strip()) for v in (raw_lat, raw_lon)]
    if all(blank):
        return None, None
    if any(blank):
        errors.append(FieldError("latitude", N_("Enter both the latitude and the longitude, or neither.")))
        return None, None
    try:
        lat, lon = float(str(raw_lat)), float(str(raw_lon))
    except ValueError:
        errors.append(
            FieldError("latitude", N_("Enter the coordinates as decimal degrees, e.g. 32.1062 and 118.9089."))
        )
        return None, None
    if not (3 <= lat <= 54 and 73 <= lon <= 136):
        errors.append(FieldError("latitude", N_("These coordinates are outside China.")))
        return None, None
    return round(lat, 6), round(lon, 6)


@dataclass(frozen=True)
class Profile:
    """What a provider says about itself (a registration or an edit of its profile)."""

    name: str
    name_en: str
    description: str
    credit_code: str
    contact_name: str
    address: str
    website: str
    latitude: float | None
    longitude: float | None


def validate_profile(data: Mapping[str, Any], kind: Kind) -> Profile:
    errors: list[FieldError] = []
    profile = _profile(data, kind, errors)
    if errors:
        raise ValidationFailed(errors=errors)
    return profile


def _profile(data: Mapping[str, Any], kind: Kind, errors: list[FieldError]) -> Profile:
    name = text(data, "name", 100)
    if not name:
        errors.append(FieldError("name", N_("Enter the name.")))
    credit_code = text(data, "credit_code", 18).upper()
    if kind.is_organization and kind is not Kind.VOLUNTEER_TEAM and not credit_code:
        errors.append(FieldError("credit_code", N_("Enter the unified social credit code (18 characters).")))
    elif credit_code and not credit_code_valid(credit_code):
        errors.append(
            FieldError(
                "credit_code", N_("This is not a valid unified social credit code; check the 18 characters.")
            )
        )
    contact_name = text(data, "contact_name", 50)
    if kind.is_organization and not contact_name:
        errors.append(FieldError("contact_name", N_("Enter the name of the contact person.")))
    website = text(data, "website", 200)
    if website and not WEBSITE_RE.match(website):
        errors.append(FieldError("website", N_("Enter a web address starting with http:// or https://.")))
    lat, lon = coordinates(data, errors)
    return Profile(
        name=name,
        name_en=text(data, "name_en", 150),
        description=text(data, "description", 2000),
        credit_code=credit_code if kind.is_organization else "",
        contact_name=contact_name or name,
        address=text(data, "address", 200) if kind.is_organization else "",
        website=website,
        latitude=lat if kind.is_organization else None,
        longitude=lon if kind.is_organization else None,
    )


@dataclass(frozen=True)
class Registration:
    """A new provider with its first account."""

    kind: Kind
    profile: Profile
    phone: str
    password: str
    team_id: int | None


def validate_registration(data: Mapping[str, Any]) -> Registration:
    """Everything wrong with a registration at once (the phone and password are checked by accounts)."""
    errors: list[FieldError] = []
    raw_kind = text(data, "kind", 30)
    try:
        kind = Kind(raw_kind)
    except ValueError:
        errors.append(FieldError("kind", N_("Choose what kind of provider you are.")))
        kind = Kind.SOCIAL_ORGANIZATION
    profile = _profile(data, kind, errors)
    team_id = None
    if kind is Kind.INDIVIDUAL_VOLUNTEER and text(data, "team_id", 12):
        team_id = whole(data, "team_id", errors, low=1, high=2**31 - 1)
    if not flag(data.get("consent")):
        errors.append(
            FieldError("consent", N_("Please agree so that the bureau may check what you entered."))
        )
    if errors:
        raise ValidationFailed(errors=errors)
    return Registration(
        kind=kind,
        profile=profile,
        phone=text(data, "phone", 30),
        password=str(data.get("password") or ""),
        team_id=team_id,
    )


@dataclass(frozen=True)
class Interval:
    """An opening interval on one weekday, minutes after local midnight."""

    weekday: int
    opens_at: int
    closes_at: int


def parse_time(raw: str) -> int | None:
    """``"08:30"`` → 510; ``"24:00"`` → 1440; None when not a time of day."""
    match = TIME_RE.match(raw.strip())
    if not match:
        return None
    minutes = int(match.group(1)) * 60 + int(match.group(2))
    return minutes if minutes <= MINUTES_PER_DAY else None


def format_minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def validate_schedule(raw: Any, errors: list[FieldError]) -> list[Interval]:
    """Intervals from ``[{"weekday": 0, "opens": "08:00", "closes": "12:00"}, ...]``.

    Intervals of one day may not overlap; an interval may end at 24:00 and go on from 00:00
    the next day.
    """
    intervals: list[Interval] = []
    for item in raw or []:
        try:
            weekday = int(item.get("weekday"))
        except (TypeError, ValueError):
            weekday = -1
        opens = parse_time(str(item.get("opens", "")))
        closes = parse_time(str(item.get("closes", "")))
        if not 0 <= weekday <= 6:
            errors.append(FieldError("schedule", N_("Each opening time needs a day of the week.")))
            continue
        field_name = f"schedule_{weekday}"
        if opens is None or closes is None:
            errors.append(FieldError(field_name, N_("Write times as HH:MM, e.g. 08:30.")))
            continue
        if closes <= opens:
            errors.append(FieldError(field_name, N_("The closing time must be after the opening time.")))
            continue
        intervals.append(Interval(weekday, opens, closes))
    by_day: dict[int, list[Interval]] = {}
    for interval in intervals:
        by_day.setdefault(interval.weekday, []).append(interval)
    for weekday, day in by_day.items():
        day.sort(key=lambda i: i.opens_at)
        if len(day) > MAX_INTERVALS_PER_DAY:
            errors.append(
                FieldError(
                    f"schedule_{weekday}",
                    N_("At most %(n)s opening times a day."),
                    {"n": MAX_INTERVALS_PER_DAY},
                )
            )
        for before, after in itertools.pairwise(day):
            if after.opens_at < before.closes_at:
                errors.append(
                    FieldError(f"schedule_{weekday}", N_("Opening times of one day may not overlap."))
                )
                break
    return sorted(intervals, key=lambda i: (i.weekday, i.opens_at))


@dataclass(frozen=True)
class OfferingFields:
    """What a provider sets on an offering."""

    title: str
    description: str
    unit: Unit
    duration_minutes: int
    credit_cost: int
    capacity: int
    latitude: float | None
    longitude: float | None
    is_active: bool
    community_ids: list[int]
    schedule: list[Interval]


def validate_offering(data: Mapping[str, Any], known_communities: set[int]) -> OfferingFields:
    errors: list[FieldError] = []
    unit = text(data, "unit", 10)
    if unit not in set(Unit):
        errors.append(FieldError("unit", N_("Choose a unit.")))
        unit = Unit.VISIT
    duration = whole(data, "duration_minutes", errors, low=5, high=MAX_DURATION_MINUTES)
    cost = whole(data, "credit_cost", errors, low=0, high=MAX_CREDITS)
    capacity = whole(data, "capacity", errors, low=1, high=MAX_CAPACITY)
    lat, lon = coordinates(data, errors)
    communities: list[int] = []
    for raw in data.get("community_ids") or []:
        try:
            communities.append(int(raw))
        except (TypeError, ValueError):
            errors.append(FieldError("community_ids", N_("Choose communities from the list.")))
            break
    if any(c not in known_communities for c in communities):
        errors.append(FieldError("community_ids", N_("Choose communities from the list.")))
    if not communities:
        errors.append(FieldError("community_ids", N_("Choose at least one community you serve.")))
    schedule = validate_schedule(data.get("schedule"), errors)
    if not schedule and not any(e.field.startswith("schedule") for e in errors):
        errors.append(FieldError("schedule", N_("Enter at least one opening time.")))
    if errors:
        raise ValidationFailed(errors=errors)
    return OfferingFields(
        title=text(data, "title", 100),
        description=text(data, "description", 2000),
        unit=Unit(unit),
        duration_minutes=duration,
        credit_cost=cost,
        capacity=capacity,
        latitude=lat,
        longitude=lon,
        is_active=flag(data.get("is_active"), True),
        community_ids=sorted(set(communities)),
        schedule=schedule,
    )


# -- time windows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaySpan:
    """The part of a time window that falls on one local day: weekday and minutes after midnight."""

    weekday: int
    start: int
    end: int


def window_spans(start: datetime, end: datetime, zone: ZoneInfo) -> list[DaySpan]:
    """Split a service window into the local days it covers (one, or two across midnight).

    Each span must fall inside one opening interval of its day for the provider to be open
    over the whole window.  Windows longer than a day are refused: a service is booked for a
    visit, not a stay.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("window times must be timezone-aware")
    if end < start:
        raise ValueError("the window ends before it starts")
    if end - start > timedelta(days=1):
        raise ValueError("a window may not be longer than a day")
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    start_min = local_start.hour * 60 + local_start.minute
    end_min = local_end.hour * 60 + local_end.minute + (1 if local_end.second or local_end.microsecond else 0)
    if local_start.date() == local_end.date():
        return [DaySpan(local_start.weekday(), start_min, max(end_min, start_min))]
    spans = [DaySpan(local_start.weekday(), start_min, MINUTES_PER_DAY)]
    if end_min > 0:
        spans.append(DaySpan(local_end.weekday(), 0, end_min))
    return spans


def is_open(intervals: list[Interval], spans: list[DaySpan]) -> bool:
    """Whether every span lies inside one interval of its weekday (the candidate query's rule)."""
    return all(
        any(i.weekday == s.weekday and i.opens_at <= s.start and i.closes_at >= s.end for i in intervals)
        for s in spans
    )


def local_day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


# -- statistics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """A provider's response figures; a figure is None while there is nothing to compute it from."""

    acceptance_rate: float | None
    median_accept_seconds: int | None
    completion_rate: float | None
    no_shows: int | None
    average_rating: float | None
    rating_count: int

    @property
    def has_data(self) -> bool:
        return any(
            v is not None
            for v in (
                self.acceptance_rate,
                self.median_accept_seconds,
                self.completion_rate,
                self.average_rating,
            )
        )


def stats_from_row(row: Mapping[str, Any] | None) -> Stats:
    """Rates from the counts the orders package keeps; nothing is invented for an empty row."""
    if row is None:
        return Stats(None, None, None, None, None, 0)
    offers, accepted = row["offers_total"], row["offers_accepted"]
    orders, completed = row["orders_total"], row["orders_completed"]
    ratings, rating_sum = row["rating_count"], row["rating_sum"]
    return Stats(
        acceptance_rate=accepted / offers if offers else None,
        median_accept_seconds=row["median_accept_seconds"],
        completion_rate=completed / orders if orders else None,
        no_shows=row["no_shows"] if orders else None,
        average_rating=round(rating_sum / ratings, 2) if ratings else None,
        rating_count=ratings,
    )


def hours_lines(intervals: list[Interval], day_names: list[str]) -> list[str]:
    """Opening hours for people: days with the same hours together, e.g. "Monday–Friday 08:00–18:00"."""
    by_day: dict[int, list[tuple[int, int]]] = {}
    for interval in intervals:
        by_day.setdefault(interval.weekday, []).append((interval.opens_at, interval.closes_at))
    groups: dict[tuple[tuple[int, int], ...], list[int]] = {}
    for day in sorted(by_day):
        groups.setdefault(tuple(sorted(by_day[day])), []).append(day)
    lines = []
    for hours, days in sorted(groups.items(), key=lambda item: item[1][0]):
        runs: list[list[int]] = []
        for day in days:
            if runs and runs[-1][-1] == day - 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        day_text = ", ".join(
            f"{day_names[run[0]]}–{day_names[run[-1]]}"
            if len(run) > 2
            else ", ".join(day_names[d] for d in run)
            for run in runs
        )
        hour_text = ", ".join(f"{format_minutes(o)}–{format_minutes(c)}" for o, c in hours)
        lines.append(f"{day_text} {hour_text}")
    return lines
