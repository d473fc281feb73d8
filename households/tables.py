"""Tables of `households`: areas, households, members, need groups and levels, warnings."""

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


class Community(Table, tablename="hh_community"):
    """A community (社区): every household and every provider service area points at one."""

    id: Serial
    street = ForeignKey(references=Street, index=True)
    code = Varchar(length=15, unique=True)
    name = Varchar(length=50)


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
    # The uploaded file until the real run is done (or the dry run expires): personal data.
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
