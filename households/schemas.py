"""Request and response bodies of the households API (they document the OpenAPI schema)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType, field, structs


class MemberIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    id_number: str = ""  # on a change, empty keeps the stored number
    birth_date: date | None = None
    sex: str = ""
    relation: str = "head"
    phone: str = ""
    disability_grade: int | None = None
    health: str = ""  # on a change, empty keeps the recorded notes (unless health_clear)
    health_clear: bool = False
    can_use_phone: bool = False


class HouseholdIn(Struct, kw_only=True, forbid_unknown_fields=True):
    code: str
    community_id: int
    address: str
    phone: str
    category: str
    groups: list[str] = field(default_factory=list)
    status: str = "active"
    latitude: float | None = None
    longitude: float | None = None
    members: list[MemberIn] = field(default_factory=list)
    yearly_income: int | None = None


class HouseholdPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    """The household's own fields, all optional: only those sent change (members have their own routes).

    A field left out keeps its value; ``null`` clears an optional one (coordinates, income,
    responsible steward).  ``community_id``, ``address``, ``phone``, ``category``, ``groups`` and
    ``status`` cannot be null.
    """

    community_id: int | UnsetType = UNSET
    address: str | UnsetType = UNSET
    phone: str | UnsetType = UNSET
    category: str | UnsetType = UNSET
    groups: list[str] | UnsetType = UNSET
    status: str | UnsetType = UNSET
    latitude: float | UnsetType | None = UNSET
    longitude: float | UnsetType | None = UNSET
    steward_id: int | UnsetType | None = UNSET
    yearly_income: int | UnsetType | None = UNSET


class MemberPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    """A member's fields, all optional: only those sent change.

    A field left out keeps its value; ``null`` clears an optional one (phone, disability grade,
    health notes).  ``name``, ``id_number``, ``relation`` and ``can_use_phone`` cannot be null.
    The birth date and sex, if sent, must agree with the ID number.
    """

    name: str | UnsetType = UNSET
    id_number: str | UnsetType = UNSET
    birth_date: date | UnsetType | None = UNSET
    sex: str | UnsetType | None = UNSET
    relation: str | UnsetType = UNSET
    phone: str | UnsetType | None = UNSET
    disability_grade: int | UnsetType | None = UNSET
    health: str | UnsetType | None = UNSET
    can_use_phone: bool | UnsetType = UNSET


def sent_fields(patch: Struct) -> dict[str, Any]:
    """The fields a PATCH body holds (``null`` included), without those left out."""
    return {name: value for name, value in structs.asdict(patch).items() if value is not UNSET}


class MemberOut(Struct, kw_only=True):
    id: int
    name: str
    id_number_masked: str
    birth_date: date | None
    sex: str
    relation: str
    phone: str
    disability_grade: int | None
    can_use_phone: bool
    # Whether health notes are recorded; their text only for the household itself (staff read it
    # through the audited health-notes route).
    health_recorded: bool = False
    health: str | None = None


class ReasonItem(Struct, kw_only=True):
    rule: str
    points: int
    label_zh: str
    label_en: str


class LevelOut(Struct, kw_only=True):
    level: int | None
    computed_level: int | None
    points: int
    fired: list[ReasonItem]
    thresholds: dict[str, int]
    rules_version: int | None
    override_level: int | None = None
    override_reason: str = ""
    override_until: datetime | None = None


class HistoryItem(Struct, kw_only=True):
    at: datetime
    kind: str
    from_value: str
    to_value: str
    reason: str
    actor_id: int | None
    actor_name: str | None


class HouseholdSummary(Struct, kw_only=True):
    id: int
    code: str
    community_id: int
    community_name: str
    head_name: str
    address: str
    phone: str
    category: str
    groups: list[str]
    status: str
    level: int | None
    level_overridden: bool
    erased: bool
    updated_at: datetime


class HouseholdPage(Struct, kw_only=True):
    items: list[HouseholdSummary]
    page: int
    per_page: int
    total: int
    pages: int


class HouseholdOut(Struct, kw_only=True):
    id: int
    code: str
    community_id: int
    community_name: str
    address: str
    latitude: float | None
    longitude: float | None
    phone: str
    category: str
    groups: list[str]
    status: str
    steward_id: int | None
    level: LevelOut
    members: list[MemberOut]
    history: list[HistoryItem]
    erased: bool
    yearly_income: int | None = None


class OverrideIn(Struct, kw_only=True, forbid_unknown_fields=True):
    level: int
    reason: str
    until: date


class ReasonIn(Struct, kw_only=True, forbid_unknown_fields=True):
    reason: str


class EraseIn(Struct, kw_only=True, forbid_unknown_fields=True):
    reason: str
    confirm_code: str


class ProxyIn(Struct, kw_only=True, forbid_unknown_fields=True):
    phone: str
    display_name: str = ""


class IdNumberOut(Struct, kw_only=True):
    member_id: int
    id_number: str


class HealthReadIn(Struct, kw_only=True):
    reason: str = ""


class HealthNotesOut(Struct, kw_only=True):
    member_id: int
    health: str


class ProxyOut(Struct, kw_only=True):
    user_id: int


class ImportJobOut(Struct, kw_only=True):
    id: int
    filename: str
    dry_run: bool
    state: str
    total_rows: int
    processed_rows: int
    created: int
    updated: int
    unchanged: int
    errors: int
    created_at: datetime
    finished_at: datetime | None


class ImportCellError(Struct, kw_only=True):
    column: str
    message: str


class ImportRowOut(Struct, kw_only=True):
    row: int
    household_code: str
    action: str
    errors: list[ImportCellError]


class ImportRowPage(Struct, kw_only=True):
    items: list[ImportRowOut]
    page: int
    per_page: int
    total: int
    pages: int


def member_out(view: dict[str, Any]) -> MemberOut:
    return MemberOut(**view)


def _level_out(household: dict[str, Any]) -> LevelOut:
    explanation = household["level_explanation"] or {}
    return LevelOut(
        level=household["level"],
        computed_level=household["computed_level"],
        points=household["level_points"],
        fired=[ReasonItem(**item) for item in explanation.get("fired", [])],
        thresholds=explanation.get("thresholds", {}),
        rules_version=explanation.get("version"),
        override_level=household["override_level"],
        override_reason=household["override_reason"],
        override_until=household["override_until"],
    )


def household_out(detail: dict[str, Any]) -> HouseholdOut:
    """The API view of :func:`households.services.household_detail`."""
    h = detail["household"]
    return HouseholdOut(
        id=h["id"],
        code=h["code"],
        community_id=h["community"],
        community_name=detail["community"]["name"] if detail["community"] else "",
        address=h["address"],
        latitude=h["latitude"],
        longitude=h["longitude"],
        phone=h["phone"],
        category=h["category"],
        groups=h["groups"],
        status=h["status"],
        steward_id=h["steward"],
        level=_level_out(h),
        members=[member_out(m) for m in detail["members"]],
        history=[
            HistoryItem(
                at=e["at"],
                kind=e["kind"],
                from_value=e["from_value"],
                to_value=e["to_value"],
                reason=e["reason"],
                actor_id=e["actor"],
                actor_name=e["actor_name"],
            )
            for e in detail["history"]
        ],
        erased=h["erased_at"] is not None,
        yearly_income=h["yearly_income"],
    )


def summary_out(row: dict[str, Any]) -> HouseholdSummary:
    return HouseholdSummary(
        id=row["id"],
        code=row["code"],
        community_id=row["community"],
        community_name=row["community_name"],
        head_name=row["head_name"],
        address=row["address"],
        phone=row["phone"],
        category=row["category"],
        groups=row["groups"],
        status=row["status"],
        level=row["level"],
        level_overridden=row["override_level"] is not None,
        erased=row["erased_at"] is not None,
        updated_at=row["updated_at"],
    )


def job_out(job: dict[str, Any]) -> ImportJobOut:
    return ImportJobOut(
        id=job["id"],
        filename=job["filename"],
        dry_run=job["dry_run"],
        state=job["state"],
        total_rows=job["total_rows"],
        processed_rows=job["processed_rows"],
        created=job["created_count"],
        updated=job["updated_count"],
        unchanged=job["unchanged_count"],
        errors=job["error_count"],
        created_at=job["created_at"],
        finished_at=job["finished_at"],
    )


# -- signals and warnings ------------------------------------------------------------------------


class SignalIn(Struct, kw_only=True):
    """One signal from another department's system."""

    event_id: Annotated[str, Meta(description="Your own id of this event: a resend is recognised")] = ""
    kind: Annotated[
        str,
        Meta(
            description="hospital_bill, accident, disaster, job_loss, earner_death_or_illness, "
            "utility_arrears or school_dropout"
        ),
    ] = ""
    occurred_on: Annotated[str, Meta(description="The day it happened, YYYY-MM-DD")] = ""
    id_number: Annotated[str | None, Meta(description="The person's 18-character ID number")] = None
    household_code: Annotated[str | None, Meta(description="Or the household's registry code")] = None
    person_name: str | None = None
    community_code: Annotated[str | None, Meta(description="Where the person lives, if known")] = None
    details: Annotated[
        dict[str, Any],
        Meta(
            description="Figures of the kind: hospital_bill needs amount (yuan) and out_of_pocket_share "
            "(0 to 1); disaster may give loss (yuan); utility_arrears may give amount (yuan) and months"
        ),
    ] = field(default_factory=dict)
    note: str | None = None


class SignalBatchIn(Struct, kw_only=True):
    signals: Annotated[list[SignalIn], Meta(description="1 to 1,000 signals")]


class FieldErrorOut(Struct, kw_only=True):
    field: str
    message: str


class SignalResultOut(Struct, kw_only=True):
    index: int
    event_id: str
    status: Annotated[str, Meta(description="accepted, duplicate (stored before, same content) or rejected")]
    signal_id: int | None
    errors: list[FieldErrorOut]


class SignalBatchOut(Struct, kw_only=True):
    accepted: int
    duplicate: int
    rejected: int
    results: list[SignalResultOut]


class WarningSummary(Struct, kw_only=True):
    id: int
    number: str
    household_id: int
    household_code: str
    community_name: str
    kind: str
    severity: str
    status: str
    signal_count: int
    opened_at: datetime
    deadline_at: datetime
    overdue: bool
    assigned_to: int | None
    escalated_at: datetime | None
    closed_at: datetime | None
    outcome: str


class WarningPage(Struct, kw_only=True):
    items: list[WarningSummary]
    page: int
    per_page: int
    total: int
    pages: int


def warning_summary(row: dict[str, Any]) -> WarningSummary:
    return WarningSummary(
        id=row["id"],
        number=row["number"],
        household_id=row["household"],
        household_code=row["household_code"],
        community_name=row["community_name"],
        kind=row["kind"],
        severity=row["severity"],
        status=row["status"],
        signal_count=row["signal_count"],
        opened_at=row["opened_at"],
        deadline_at=row["deadline_at"],
        overdue=row["overdue"],
        assigned_to=row["assigned_to"],
        escalated_at=row["escalated_at"],
        closed_at=row["closed_at"],
        outcome=row["outcome"],
    )
