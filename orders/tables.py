"""Tables of `orders`: orders and their events, offers, the credit ledger, settlements, requests.

An order's ``state`` moves only through :mod:`orders.lifecycle`; every move writes an
:class:`OrderEvent`.  Credits live in an append-only ledger (:class:`CreditEntry`); the
:class:`CreditAccount` row carries the running figures so that a reservation is one conditional
UPDATE (two bookings at once can never overdraw), and ``orders.credits.check`` recomputes them
from the entries.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    Boolean,
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

from households.tables import Community, Household
from marketplace.clock import ClockNow
from marketplace.tables import Category, User
from providers.tables import Offering, Provider, Worker


class Order(Table, tablename="od_order"):
    """A booked service for one household, from submission to confirmation."""

    id: Serial

    # Shown to people and quoted on the phone: "CS" + date + a sequence, e.g. CS20261206-000042.
    number = Varchar(length=24, unique=True)
    household = ForeignKey(references=Household, index=True)
    # Copied from the household at booking: scopes, routing priority and reports read them here.
    community = ForeignKey(references=Community, index=True)
    level = Integer(index=True)
    category = ForeignKey(references=Category, index=True)
    # A specific offering the resident chose on the shelves, or none (routing picks).
    requested_offering = ForeignKey(references=Offering, null=True, default=None)
    # direct (one provider at a time) or pool (the top N see it; the first to accept wins).
    routing = Varchar(length=10, default="direct")
    state = Varchar(length=12, default="submitted", index=True)
    window_start = Timestamptz(index=True)
    window_end = Timestamptz()
    notes = Text(default="")
    # app (the resident), steward (on behalf), warning (a steward's handling of a warning).
    channel = Varchar(length=10, default="app")
    # What booked it when something may book it twice (warning:<id>:<category>); null otherwise.
    # Unique by an index the migration makes (SQLite cannot add a UNIQUE column to a table).
    source_key = Varchar(length=80, null=True, default=None)
    booked_by = ForeignKey(references=User, null=True, default=None)
    # How the resident agreed to a booking made for them: sms_code, attestation, visit, or ''.
    consent_method = Varchar(length=12, default="")
    consent_note = Text(default="")
    # Credits reserved at booking, consumed on completion, released on cancel or failure.
    credits = Integer(default=0)
    # The winning provider and offering after acceptance; the worker sent to the home.
    provider = ForeignKey(references=Provider, null=True, default=None, index=True)
    offering = ForeignKey(references=Offering, null=True, default=None, index=True)
    worker = ForeignKey(references=Worker, null=True, default=None)
    # Routing rounds so far (each offer or pool round is one); too many → escalated.
    attempts = Integer(default=0)
    escalation_reason = Varchar(length=30, default="")
    # Targets from the level policy at booking.
    accept_by = Timestamptz(null=True, default=None, index=True)
    serve_by = Timestamptz(null=True, default=None)
    sla_missed = Boolean(default=False)
    # The code the resident gives the worker at the door (hashed), to confirm completion by SMS.
    confirm_code_hash = Varchar(length=64, default="")
    rating = Integer(null=True, default=None)
    rating_comment = Text(default="")
    # '', open, upheld, rejected: a resident's complaint after completion.
    dispute = Varchar(length=10, default="")
    dispute_note = Text(default="")
    cancel_reason = Text(default="")
    submitted_at = Timestamptz(default=ClockNow(), index=True)
    offered_at = Timestamptz(null=True, default=None)
    accepted_at = Timestamptz(null=True, default=None)
    started_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None, index=True)
    confirmed_at = Timestamptz(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz(default=ClockNow())
    # Bumped on every move: a move is an UPDATE ... WHERE state = from AND version = seen.
    version = Integer(default=0)


class OrderEvent(Table, tablename="od_order_event"):
    """One move or note in an order's life: who, when, from which state to which, and why."""

    id: Serial

    order = ForeignKey(references=Order, index=True)
    at = Timestamptz(default=ClockNow(), index=True)
    actor = ForeignKey(references=User, null=True, default=None)
    kind = Varchar(length=30)
    from_state = Varchar(length=12, default="")
    to_state = Varchar(length=12, default="")
    note = Text(default="")
    detail = JSON(default="{}")


class Offer(Table, tablename="od_offer"):
    """An order offered to one provider's offering, with the ranking that put it there."""

    id: Serial

    order = ForeignKey(references=Order, index=True)
    provider = ForeignKey(references=Provider, index=True)
    offering = ForeignKey(references=Offering)
    # order and provider joined: a provider is offered an order once, so a re-run routes on.
    key = Varchar(length=40, unique=True)
    round = Integer(default=1)
    rank = Integer(default=1)
    score = DoublePrecision(default=0.0)
    # [{"factor": "distance", "value": 1.2, "points": 30, "text": ...}, ...]
    reasons = JSON(default="[]")
    mode = Varchar(length=10, default="direct")
    # open, accepted, declined, expired, lost (another provider won), withdrawn (order ended).
    state = Varchar(length=10, default="open", index=True)
    offered_at = Timestamptz(default=ClockNow())
    expires_at = Timestamptz(index=True)
    answered_at = Timestamptz(null=True, default=None)
    answered_by = ForeignKey(references=User, null=True, default=None)
    decline_reason = Text(default="")


class CreditAccount(Table, tablename="od_credit_account"):
    """A household's running credit figures; the entries are the truth, these the fast copy."""

    id: Serial

    household = ForeignKey(references=Household, unique=True)
    # Credits the household can book with now (granted - reserved - spent - expired + released).
    available = Integer(default=0)
    # Held by orders not yet completed.
    reserved = Integer(default=0)
    updated_at = Timestamptz(default=ClockNow())


class CreditEntry(Table, tablename="od_credit_entry"):
    """One append-only line of the ledger; ``amount`` is what it adds to the available credits."""

    id: Serial

    household = ForeignKey(references=Household, index=True)
    at = Timestamptz(default=ClockNow(), index=True)
    # grant, temporary, reserve, release, consume, refund, expire, adjust.
    kind = Varchar(length=10, index=True)
    amount = Integer()
    # What it does to the reserved credits (reserve +n, release/consume -n).
    reserved_change = Integer(default=0)
    order = ForeignKey(references=Order, null=True, default=None, index=True)
    # Makes each effect happen once: grant:2026-12:<household>, reserve:<order>, ...
    key = Varchar(length=80, unique=True)
    # Temporary credits lapse after this day.
    valid_until = Date(null=True, default=None)
    month = Varchar(length=7, default="", index=True)
    note = Text(default="")
    by_user = ForeignKey(references=User, null=True, default=None)


class Settlement(Table, tablename="od_settlement"):
    """What one provider served in one month, in credits; frozen when the month is closed."""

    id: Serial

    month = Varchar(length=7, index=True)
    provider = ForeignKey(references=Provider, index=True)
    # month and provider joined.
    key = Varchar(length=30, unique=True)
    orders_count = Integer(default=0)
    credits = Integer(default=0)
    state = Varchar(length=8, default="open")
    closed_at = Timestamptz(null=True, default=None)
    closed_by = ForeignKey(references=User, null=True, default=None)


class SettlementLine(Table, tablename="od_settlement_line"):
    """One order in a closed settlement, as it was when the month closed."""

    id: Serial

    settlement = ForeignKey(references=Settlement, index=True)
    order = ForeignKey(references=Order, unique=True)
    credits = Integer()
    detail = JSON(default="{}")


class ConsentCode(Table, tablename="od_consent_code"):
    """A one-time code texted to a household so that a steward may book on its behalf."""

    id: Serial

    household = ForeignKey(references=Household, index=True)
    # The steward who asked for it; only they can use it.
    steward = ForeignKey(references=User, index=True)
    # Where it was sent (a member's phone or the household's): personal data, deleted with the row.
    phone = Varchar(length=20)
    # HMAC of the code (marketplace.crypto), never the code itself.
    code_hash = Varchar(length=64)
    attempts = Integer(default=0)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    order = ForeignKey(references=Order, null=True, default=None)
    created_at = Timestamptz(default=ClockNow(), index=True)


class IdempotentRequest(Table, tablename="od_idempotent_request"):
    """An API write sent with an Idempotency-Key: its body's hash and the answer it got."""

    id: Serial

    # The caller (user or API client) and the key joined.
    key = Varchar(length=160, unique=True)
    body_hash = Varchar(length=64)
    # in_progress, done.
    state = Varchar(length=12, default="in_progress")
    status_code = Integer(null=True, default=None)
    response = Text(default="")
    created_at = Timestamptz(default=ClockNow(), index=True)
