"""Tables of `households`: areas, households, members, need groups and levels, activation, warnings."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    Boolean,
    Bytea,
    Date,
    DoublePrecision,
    ForeignKey,
    Integer,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from marketplace.clock import ClockNow
from marketplace.tables import User


class District(Table, tablename="hh_district"):
    """A district (区): the unit a civil-affairs bureau runs the programme for."""

    id: Serial
    code = Varchar(length=12, unique=True)
    name = Varchar(length=50)


class Street(Table, tablename="hh_street"):
    """A street (街道) of a district; its office supervises the stewards of its communities."""

    id: Serial
    district = ForeignKey(references=District, index=True)
    code = Varchar(length=12, unique=True)
    name = Varchar(length=50)
    # The steward of the street office to whom overdue verifications are escalated.
    supervisor = ForeignKey(references=User, null=True, default=None, index=True)


class Community(Table, tablename="hh_community"):
    """A community (社区): every household and every provider service area points at one."""

    id: Serial
    street = ForeignKey(references=Street, index=True)
    code = Varchar(length=15, unique=True)
    name = Varchar(length=50)
    # Takes the warnings of households that have no steward of their own.
    duty_steward = ForeignKey(references=User, null=True, default=None)


class NeedGroup(Table, tablename="hh_need_group"):
    """A need group an administrator added beside the built-in ones (elderly_alone, disabled, ...)."""

    id: Serial
    code = Varchar(length=40, unique=True)
    name_zh = Varchar(length=50)
    name_en = Varchar(length=80)
    created_by = ForeignKey(references=User, null=True, default=None)
    created_at = Timestamptz(default=ClockNow())


class LevelRuleSet(Table, tablename="hh_level_rules"):
    """One saved version of the need-level rules; the highest version is in force."""

    id: Serial
    version = Integer(unique=True)
    rules = JSON(default="[]")
    thresholds = JSON(default="{}")
    note = Text(default="")
    created_by = ForeignKey(references=User, null=True, default=None)
    created_at = Timestamptz(default=ClockNow())


class Household(Table, tablename="hh_household"):
    """A household (家庭) on the assistance registry, with its need groups and level."""

    id: Serial
    code = Varchar(length=40, unique=True)
    community = ForeignKey(references=Community, index=True)
    address = Varchar(length=200, default="")
    latitude = DoublePrecision(null=True, default=None)
    longitude = DoublePrecision(null=True, default=None)
    phone = Varchar(length=20, default="", index=True)
    # Yearly income in yuan as last assessed; warning rules compare costs with it.
    yearly_income = Integer(null=True, default=None)
    category = Varchar(length=30, index=True)
    # Need-group codes joined as ",a,b," so one LIKE finds a group on SQLite and PostgreSQL alike.
    groups = Varchar(length=400, default=",")
    status = Varchar(length=12, default="active", index=True)
    steward = ForeignKey(references=User, null=True, default=None, index=True)
    # The level in force (override if one runs, else computed); what lists, routing and credits read.
    level = Integer(null=True, default=None, index=True)
    computed_level = Integer(null=True, default=None)
    level_points = Integer(default=0)
    level_explanation = JSON(default="{}")
    override_level = Integer(null=True, default=None)
    override_reason = Text(default="")
    override_until = Timestamptz(null=True, default=None, index=True)
    override_by = ForeignKey(references=User, null=True, default=None)
    pseudonym = Varchar(length=20, default="")
    erased_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=ClockNow())
    updated_at = Timestamptz(default=ClockNow())


class Member(Table, tablename="hh_member"):
    """A member of a household; the ID number and health conditions are stored encrypted."""

    id: Serial
    household = ForeignKey(references=Household, index=True)
    name = Varchar(length=50, index=True)
    # AES-GCM ciphertext (marketplace.crypto); the HMAC blind index finds duplicates without it.
    id_cipher = Text(null=True, default=None)
    id_index = Varchar(length=60, null=True, default=None, unique=True)
    # First four and last four characters only: shown everywhere and searched by suffix.
    id_masked = Varchar(length=18, default="", index=True)
    birth_date = Date(null=True, default=None)
    sex = Varchar(length=6, default="")
    relation = Varchar(length=20, default="head")
    phone = Varchar(length=20, default="", index=True)
    disability_grade = Integer(null=True, default=None)
    health_cipher = Text(null=True, default=None)
    can_use_phone = Boolean(default=False)
    created_at = Timestamptz(default=ClockNow())
    updated_at = Timestamptz(default=ClockNow())


class Consent(Table, tablename="hh_consent"):
    """Who in a household consented to what, when and how, as recorded by a steward."""

    id: Serial
    household = ForeignKey(references=Household, index=True)
    given_by = Varchar(length=50)
    scope = Varchar(length=200)
    method = Varchar(length=20)
    given_on = Date()
    recorded_by = ForeignKey(references=User, null=True, default=None)
    recorded_at = Timestamptz(default=ClockNow())


class HouseholdEvent(Table, tablename="hh_household_event"):
    """The household's history: who changed what, when, from what to what, and why."""

    id: Serial
    household = ForeignKey(references=Household, index=True)
    at = Timestamptz(default=ClockNow(), index=True)
    actor = ForeignKey(references=User, null=True, default=None)
    kind = Varchar(length=30, index=True)
    from_value = Varchar(length=100, default="")
    to_value = Varchar(length=100, default="")
    reason = Text(default="")
    detail = JSON(default="{}")


class ImportJob(Table, tablename="hh_import_job"):
    """An upload of households (CSV or XLSX): a dry run or a real run, with its progress."""

    id: Serial
    created_by = ForeignKey(references=User, null=True, default=None)
    filename = Varchar(length=200)
    file_format = Varchar(length=8)
    # The uploaded file, encrypted (importer.FILE_CONTEXT), until the real run ends or the dry run expires.
    content = Bytea(null=True, default=None)
    dry_run = Boolean(default=True)
    # queued → checking → writing → done | failed
    state = Varchar(length=10, default="queued", index=True)
    total_rows = Integer(default=0)
    processed_rows = Integer(default=0)
    created_count = Integer(default=0)
    updated_count = Integer(default=0)
    unchanged_count = Integer(default=0)
    error_count = Integer(default=0)
    message = Text(default="")
    created_at = Timestamptz(default=ClockNow(), index=True)
    finished_at = Timestamptz(null=True, default=None)


class ImportRow(Table, tablename="hh_import_row"):
    """The outcome of one file row of an import: what it does or would do, and its errors."""

    id: Serial
    job = ForeignKey(references=ImportJob, index=True)
    row_number = Integer()
    household_code = Varchar(length=40, default="")
    action = Varchar(length=10)  # create, update, unchanged, error
    errors = JSON(default="[]")


class ActivationChallenge(Table, tablename="hh_activation"):
    """One request for an activation code: the code only as a keyed hash, with its expiry and tries."""

    id: Serial
    phone = Varchar(length=20, index=True)
    # HMAC of the code (marketplace.crypto); null while no code was sent (unknown or ineligible phone).
    code_hash = Varchar(length=60, null=True, default=None)
    attempts = Integer(default=0)
    expires_at = Timestamptz()
    sent_at = Timestamptz(null=True, default=None)
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=ClockNow(), index=True)


class WarningRuleSet(Table, tablename="hh_warning_rules"):
    """One saved version of the warning rules and the dedupe window; the highest version is in force."""

    id: Serial
    version = Integer(unique=True)
    rules = JSON(default="[]")
    window_hours = Integer(default=72)
    note = Text(default="")
    created_by = ForeignKey(references=User, null=True, default=None)
    created_at = Timestamptz(default=ClockNow())


class HouseholdWarning(Table, tablename="hh_warning"):
    """A warning (预警) about one household: assigned, verified by a visit, handled, closed."""

    id: Serial
    household = ForeignKey(references=Household, index=True)
    community = ForeignKey(references=Community, index=True)
    # The key of the signal that opened it: finds rows written in bulk again, one warning per first signal.
    first_signal = Varchar(length=170, unique=True)
    severity = Varchar(length=10)
    severity_rank = Integer(index=True)  # 1 high, 2 medium, 3 low: sorts the queue
    rule = Varchar(length=40, default="")
    # open → verified → closed
    status = Varchar(length=10, default="open", index=True)
    signal_count = Integer(default=1)
    opened_at = Timestamptz(default=ClockNow(), index=True)
    last_signal_at = Timestamptz(default=ClockNow())
    deadline_at = Timestamptz(index=True)
    assigned_to = ForeignKey(references=User, null=True, default=None, index=True)
    assigned_via = Varchar(length=20, default="")  # household_steward, duty_steward, reassigned, none
    assigned_at = Timestamptz(null=True, default=None)
    escalated_at = Timestamptz(null=True, default=None, index=True)
    escalated_to = ForeignKey(references=User, null=True, default=None)
    verified_at = Timestamptz(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None, index=True)
    closed_by = ForeignKey(references=User, null=True, default=None)
    outcome = Varchar(length=20, default="")
    outcome_detail = JSON(default="{}")
    # For outcomes carried out by another service: none, pending, not_available, done.
    handoff_state = Varchar(length=15, default="none")
    handoff_ref = Varchar(length=100, default="")


class Signal(Table, tablename="hh_signal"):
    """A signal (监测信号) from another department, an admin's file or a steward: matched or for review."""

    id: Serial
    # Who sent it and their event id, joined: a signal sent twice is stored once.
    key = Varchar(length=160, unique=True)
    source = Varchar(length=10)  # api, csv, steward
    sender_client = Integer(null=True, default=None)
    event_id = Varchar(length=100, default="")
    content_hash = Varchar(length=64, default="")
    kind = Varchar(length=30, index=True)
    occurred_on = Date()
    received_at = Timestamptz(default=ClockNow(), index=True)
    # The person's ID number: encrypted, its blind index for matching, the masked form for pages.
    id_cipher = Text(null=True, default=None)
    id_index = Varchar(length=60, null=True, default=None, index=True)
    id_masked = Varchar(length=18, default="")
    person_name = Varchar(length=50, default="")
    household_code = Varchar(length=40, default="")
    community_code = Varchar(length=15, default="")
    details = JSON(default="{}")
    note = Text(default="")
    # matched, unmatched (for review), dismissed
    status = Varchar(length=10, index=True)
    matched_by = Varchar(length=15, default="")  # id_number, household_code, review
    household = ForeignKey(references=Household, null=True, default=None, index=True)
    warning = ForeignKey(references=HouseholdWarning, null=True, default=None, index=True)
    rule = Varchar(length=40, default="")
    reported_by = ForeignKey(references=User, null=True, default=None)
    reviewed_by = ForeignKey(references=User, null=True, default=None)
    review_note = Text(default="")


class WarningEvent(Table, tablename="hh_warning_event"):
    """A warning's timeline: opened, signal added, assigned, escalated, verified, handled."""

    id: Serial
    warning = ForeignKey(references=HouseholdWarning, index=True)
    at = Timestamptz(default=ClockNow())
    actor = ForeignKey(references=User, null=True, default=None)
    kind = Varchar(length=20)
    detail = JSON(default="{}")


class Verification(Table, tablename="hh_verification"):
    """The home visit that verified a warning: when, who was met, what was found, what is needed."""

    id: Serial
    warning = ForeignKey(references=HouseholdWarning, unique=True)
    visited_on = Date()
    visited_by = ForeignKey(references=User, null=True, default=None)
    met = Varchar(length=100)
    findings = Text()
    needs = JSON(default="[]")
    recorded_at = Timestamptz(default=ClockNow())


class VerificationPhoto(Table, tablename="hh_verification_photo"):
    """A photo taken on a verification visit, stored on disk under var/ by a random name."""

    id: Serial
    warning = ForeignKey(references=HouseholdWarning, index=True)
    stored_name = Varchar(length=80, unique=True)
    content_type = Varchar(length=20)
    size = Integer()
    uploaded_by = ForeignKey(references=User, null=True, default=None)
    uploaded_at = Timestamptz(default=ClockNow())
