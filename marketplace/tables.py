"""Tables of the app shell: accounts, API clients, the audit log, the outbox and job records."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    ForeignKey,
    Integer,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from marketplace.clock import ClockNow


class User(Table, tablename="cm_user"):
    """A person who logs in: a resident, provider staff, volunteer, steward or admin."""

    id: Serial

    phone = Varchar(length=20, unique=True, index=True)
    display_name = Varchar(length=100)
    role = Varchar(length=20, index=True)
    password_hash = Varchar(length=200, null=True, default=None)
    locale = Varchar(length=10, default="")
    is_active = Boolean(default=True)
    created_at = Timestamptz(default=ClockNow())
    last_login_at = Timestamptz(null=True, default=None)
    password_changed_at = Timestamptz(null=True, default=None)


class UserLink(Table, tablename="cm_user_link"):
    """What a user acts for: a household, a member, a provider, or a community they steward."""

    id: Serial

    user = ForeignKey(references=User, index=True)
    kind = Varchar(length=20)
    target = Varchar(length=64, index=True)
    # user id, kind and target joined: one link of a kind to a thing per user.
    key = Varchar(length=120, unique=True)
    created_at = Timestamptz(default=ClockNow())


class ApiClient(Table, tablename="cm_api_client"):
    """An integration allowed to call the API with a bearer token (stored as a hash)."""

    id: Serial

    name = Varchar(length=100)
    token_prefix = Varchar(length=16, unique=True, index=True)
    token_hash = Varchar(length=64)
    scopes = Text(default="")
    acting_user = ForeignKey(references=User, null=True, default=None)
    created_by = ForeignKey(references=User, null=True, default=None)
    created_at = Timestamptz(default=ClockNow())
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class AuditEvent(Table, tablename="cm_audit_event"):
    """Who did what to which record, when and from where; never holds personal data."""

    id: Serial

    at = Timestamptz(default=ClockNow(), index=True)
    actor_user_id = Integer(null=True, default=None, index=True)
    actor_client_id = Integer(null=True, default=None)
    action = Varchar(length=60, index=True)
    target_type = Varchar(length=40, default="")
    target_id = Varchar(length=64, default="", index=True)
    ip = Varchar(length=45, default="")
    request_id = Varchar(length=32, default="")
    detail = JSON(default="{}")


class OutboxMessage(Table, tablename="cm_outbox"):
    """A message to an actor, written with the change that calls for it; the relay sends it."""

    id = UUID(primary_key=True)
    actor = Varchar(length=100)
    queue = Varchar(length=60)
    args = JSON(default="[]")
    kwargs = JSON(default="{}")
    # pending: not sent yet; sent: with the broker until the actor finishes (then deleted);
    # failed: the actor gave up after its last retry (see JobFailure).
    state = Varchar(length=10, default="pending", index=True)
    due_at = Timestamptz(default=ClockNow(), index=True)
    sends = Integer(default=0)
    created_at = Timestamptz(default=ClockNow())
    sent_at = Timestamptz(null=True, default=None)


class JobFailure(Table, tablename="cm_job_failure"):
    """An actor run that failed after its last retry, kept for an admin to see and act on."""

    id: Serial

    at = Timestamptz(default=ClockNow(), index=True)
    actor = Varchar(length=100, index=True)
    queue = Varchar(length=60)
    message_id = Varchar(length=64, index=True)
    args = JSON(default="[]")
    kwargs = JSON(default="{}")
    retries = Integer(default=0)
    error = Text(default="")
    resolved_at = Timestamptz(null=True, default=None)


class ScheduledRun(Table, tablename="cm_scheduled_run"):
    """One run of a periodic job for one time slot; the unique key makes it happen once."""

    id: Serial

    key = Varchar(length=120, unique=True)
    job = Varchar(length=100)
    slot = Varchar(length=40)
    at = Timestamptz(default=ClockNow())


# -- the catalog and the level policies ---------------------------------------------------------


class Category(Table, tablename="mk_category"):
    """A kind of service on the shelves (errands, cleaning, ...) with its standard credit cost."""

    id: Serial

    # The HSDS taxonomy term id; seeded categories get a fixed one, so exports agree everywhere.
    public_id = UUID(unique=True)
    code = Varchar(length=40, unique=True)
    name_zh = Varchar(length=50)
    name_en = Varchar(length=80)
    description_zh = Text(default="")
    description_en = Text(default="")
    # A file name under /static/icons/ (shipped with the app; no remote images).
    icon = Varchar(length=60, default="")
    # direct: offered to the best candidate, one at a time; pool: the first of the top N wins.
    routing = Varchar(length=10, default="direct")
    unit = Varchar(length=10, default="visit")
    # Credits per unit before the level's cost rules apply.
    credit_cost = Integer(default=10)
    sort_order = Integer(default=100)
    is_active = Boolean(default=True)
    created_at = Timestamptz(default=ClockNow())
    updated_at = Timestamptz(default=ClockNow())


class LevelPolicy(Table, tablename="mk_level_policy"):
    """One version of what a need level gets; a change adds a version, so history stays."""

    id: Serial

    level = Integer(index=True)
    version = Integer()
    # level and version joined: one row per version of a level.
    key = Varchar(length=20, unique=True)
    monthly_credits = Integer()
    # {"percent": 100, "fixed": {"meals": 0}, "excluded": ["haircut"]}: see marketplace.catalog.
    cost_rules = JSON(default="{}")
    accept_minutes = Integer()
    service_hours = Integer()
    offer_timeout_minutes = Integer()
    routing_priority = Integer()
    effective_from = Timestamptz(default=ClockNow(), index=True)
    reason = Text(default="")
    changed_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=ClockNow())
