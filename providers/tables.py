"""Tables of `providers`: organizations and volunteers, offerings, service areas, hours, load."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    DoublePrecision,
    ForeignKey,
    Integer,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from households.tables import Community
from marketplace.clock import ClockNow
from marketplace.tables import Category, User


class Provider(Table, tablename="pv_provider"):
    """An organization or an individual volunteer serving households; verified before any order."""

    id: Serial

    # The id published in the HSDS export (organization id); the serial id stays internal.
    public_id = UUID(unique=True)
    kind = Varchar(length=30, index=True)
    name = Varchar(length=100)
    name_en = Varchar(length=150, default="")
    description = Text(default="")
    # 统一社会信用代码 of an organization (public register data, not personal data).
    credit_code = Varchar(length=18, default="")
    # The contact person: personal data, shown to the provider itself and to administrators only.
    contact_name = Varchar(length=50, default="")
    contact_phone = Varchar(length=20, default="")
    # An organization's office; individual volunteers give none.
    address = Varchar(length=200, default="")
    website = Varchar(length=200, default="")
    latitude = DoublePrecision(null=True, default=None)
    longitude = DoublePrecision(null=True, default=None)
    # The volunteer team an individual volunteer serves with (published only as that team).
    team: ForeignKey[Provider] = ForeignKey(references="self", null=True, default=None, index=True)
    # pending → verified | refused; verified ⇄ suspended; refused → pending (see providers.rules).
    status = Varchar(length=12, default="pending", index=True)
    status_reason = Text(default="")
    # The provider's own switch: taking orders now, or paused (holidays, short of staff).
    is_active = Boolean(default=True)
    verified_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=ClockNow())
    updated_at = Timestamptz(default=ClockNow(), index=True)


class ProviderEvent(Table, tablename="pv_provider_event"):
    """One step of a provider's verification history: who moved it where, why, on what papers."""

    id: Serial

    provider = ForeignKey(references=Provider, index=True)
    action = Varchar(length=20)
    from_status = Varchar(length=12, default="")
    to_status = Varchar(length=12, default="")
    reason = Text(default="")
    # Kinds of documents the administrator checked (codes of providers.rules.DOCUMENT_KINDS).
    documents = JSON(default="[]")
    note = Text(default="")
    by_user = Integer(null=True, default=None)
    at = Timestamptz(default=ClockNow())


class Offering(Table, tablename="pv_offering"):
    """What one provider offers in one category: unit, duration, credits, capacity, hours, areas."""

    id: Serial

    public_id = UUID(unique=True)
    provider = ForeignKey(references=Provider, index=True)
    category = ForeignKey(references=Category, index=True)
    # provider and category joined: one offering per category and provider.
    key = Varchar(length=40, unique=True)
    title = Varchar(length=100, default="")
    description = Text(default="")
    unit = Varchar(length=10, default="visit")
    duration_minutes = Integer(default=60)
    credit_cost = Integer(default=0)
    # Orders this offering can carry at once.
    capacity = Integer(default=1)
    # Orders it carries now: the orders package adds one on acceptance and takes one off when
    # an order ends (providers.load); candidates need active_orders < capacity.
    active_orders = Integer(default=0)
    # Where the service starts from, when not the provider's office.
    latitude = DoublePrecision(null=True, default=None)
    longitude = DoublePrecision(null=True, default=None)
    is_active = Boolean(default=True)
    created_at = Timestamptz(default=ClockNow())
    updated_at = Timestamptz(default=ClockNow(), index=True)


class ServiceArea(Table, tablename="pv_service_area"):
    """A community an offering serves; the offering's category is copied here for the candidate index."""

    id: Serial

    offering = ForeignKey(references=Offering, index=True)
    community = ForeignKey(references=Community)
    category = ForeignKey(references=Category)
    # offering and community joined: a community once per offering.
    key = Varchar(length=40, unique=True)


class OpeningHours(Table, tablename="pv_opening_hours"):
    """One opening interval of an offering on one weekday, in minutes after local midnight."""

    id: Serial

    offering = ForeignKey(references=Offering, index=True)
    weekday = Integer()  # 0 = Monday … 6 = Sunday
    opens_at = Integer()  # 0 … 1439
    closes_at = Integer()  # 1 … 1440 (24:00)


class Worker(Table, tablename="pv_worker"):
    """A person of a provider: staff with a login, or a worker who goes to the homes."""

    id: Serial

    provider = ForeignKey(references=Provider, index=True)
    name = Varchar(length=50)
    phone = Varchar(length=20, default="")
    job_title = Varchar(length=50, default="")
    user = ForeignKey(references=User, null=True, default=None, index=True)
    is_active = Boolean(default=True)
    created_at = Timestamptz(default=ClockNow())


class VolunteerHours(Table, tablename="pv_volunteer_hours"):
    """A time-bank entry: minutes a volunteer served for one order (written by the orders package)."""

    id: Serial

    provider = ForeignKey(references=Provider, index=True)
    user = ForeignKey(references=User, null=True, default=None, index=True)
    order_id = Integer(null=True, default=None)
    category = ForeignKey(references=Category, null=True, default=None)
    minutes = Integer()
    served_at = Timestamptz(default=ClockNow())
    # "order:<order id>:<user id>" (or another source's key): logging the same service twice is a no-op.
    key = Varchar(length=80, unique=True)
    note = Text(default="")
    created_at = Timestamptz(default=ClockNow())


class ProviderStats(Table, tablename="pv_provider_stats"):
    """A provider's response figures, kept current by the orders package; no row means no data yet."""

    id: Serial

    provider = ForeignKey(references=Provider, unique=True)
    offers_total = Integer(default=0)
    offers_accepted = Integer(default=0)
    median_accept_seconds = Integer(null=True, default=None)
    orders_total = Integer(default=0)
    orders_completed = Integer(default=0)
    no_shows = Integer(default=0)
    rating_count = Integer(default=0)
    rating_sum = Integer(default=0)
    updated_at = Timestamptz(default=ClockNow())
