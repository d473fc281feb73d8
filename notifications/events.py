"""Every event other packages may notify, with its context keys, channels and defaults.

This is the one place to look up what ``notifications.services.notify`` accepts.  Each event
has a template ``notifications/templates/notifications/events/<event>.txt`` with the blocks
``title`` and ``body`` (inbox and e-mail) and ``sms`` (one short text).  Context values are
strings, numbers, dates or datetimes (shown in the recipient's language and the service's
time zone); a string that is a message id of the catalogs (a service category named with
``N_``) is translated for the recipient.  ``link`` (a path such as ``/orders/12``) is
accepted by every event and becomes the inbox item's link and a full address in e-mails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from marketplace.auth import Role
from marketplace.i18n import N_


class Channel(StrEnum):
    """Ways a message reaches someone."""

    INBOX = "inbox"
    SMS = "sms"
    EMAIL = "email"
    WEBHOOK = "webhook"


CHANNEL_LABELS = {
    Channel.INBOX: N_("Inbox"),
    Channel.SMS: N_("SMS"),
    Channel.EMAIL: N_("E-mail"),
    Channel.WEBHOOK: N_("Webhook"),
}

# Channels that can wake someone up: these wait for the end of quiet hours.
NOISY = frozenset({Channel.SMS, Channel.EMAIL, Channel.WEBHOOK})
# Channels a person chooses on the preferences page (the inbox always receives).
CHOOSABLE = (Channel.SMS, Channel.EMAIL)


class Event(StrEnum):
    """The events; the values are stored and appear in webhook payloads."""

    NEW_OFFER = "new_offer"
    ORDER_ACCEPTED = "order_accepted"
    WORKER_ON_THE_WAY = "worker_on_the_way"
    ORDER_DONE = "order_done"
    CONFIRMATION_CODE = "confirmation_code"
    ORDER_ESCALATED = "order_escalated"
    SLA_MISSED = "sla_missed"
    WARNING_ASSIGNED = "warning_assigned"
    VERIFICATION_OVERDUE = "verification_overdue"
    CREDITS_GRANTED = "credits_granted"
    ACTIVATION_CODE = "activation_code"
    CONSENT_CODE = "consent_code"


@dataclass(frozen=True)
class EventSpec:
    """What an event needs and where it goes unless the recipient chose otherwise."""

    event: Event
    label: str
    """Shown on the preferences page and in the delivery log (a message id)."""
    keys: dict[str, str]
    """Required context keys and what each holds."""
    optional: dict[str, str] = field(default_factory=dict)
    """Context keys a caller may add."""
    audience: frozenset[Role] = frozenset()
    """Roles that receive it; the preferences page shows it to them."""
    default: frozenset[Channel] = frozenset({Channel.INBOX})
    """Channels used unless the recipient turned them off."""
    required: frozenset[Channel] = frozenset()
    """Channels the recipient cannot turn off (codes someone is waiting for)."""
    urgent: bool = False
    """Always ignores quiet hours, whatever the caller says."""
    ttl: timedelta | None = None
    """After this, an undelivered message is pointless and is given up."""
    secret_keys: tuple[str, ...] = ()
    """Context keys blanked in the stored request once every delivery is final."""
    phone_only: bool = False
    """Sent to a bare phone number (no account yet): SMS only."""

    @property
    def channels(self) -> frozenset[Channel]:
        """Channels this event can use for a user recipient."""
        if self.phone_only:
            return frozenset({Channel.SMS})
        return frozenset({Channel.INBOX, Channel.SMS, Channel.EMAIL})


_ORDER = {"order_no": "the order's number as people read it", "service": "the service category's name"}
_FOR = {"resident": "the resident's name, shown to a steward who booked on their behalf"}
STAFF = frozenset({Role.STEWARD, Role.ADMIN})
RESIDENT_SIDE = frozenset({Role.RESIDENT, Role.STEWARD})

EVENTS: dict[Event, EventSpec] = {
    spec.event: spec
    for spec in (
        EventSpec(
            Event.NEW_OFFER,
            N_("New order offered to you"),
            keys={
                **_ORDER,
                "community": "where the service takes place",
                "when": "datetime: when the service is wanted",
            },
            optional={"respond_by": "datetime: when the offer expires"},
            audience=frozenset({Role.PROVIDER_STAFF, Role.VOLUNTEER}),
            default=frozenset({Channel.INBOX, Channel.SMS}),
        ),
        EventSpec(
            Event.ORDER_ACCEPTED,
            N_("Order accepted"),
            keys={**_ORDER, "provider": "who accepted", "when": "datetime: when the service is planned"},
            optional=_FOR,
            audience=RESIDENT_SIDE,
            default=frozenset({Channel.INBOX, Channel.SMS}),
        ),
        EventSpec(
            Event.WORKER_ON_THE_WAY,
            N_("Worker on the way"),
            keys={**_ORDER, "worker": "the worker's name"},
            optional={"eta": "datetime: expected arrival", **_FOR},
            audience=RESIDENT_SIDE,
            default=frozenset({Channel.INBOX, Channel.SMS}),
        ),
        EventSpec(
            Event.ORDER_DONE,
            N_("Service done"),
            keys=_ORDER,
            optional=_FOR,
            audience=RESIDENT_SIDE,
            default=frozenset({Channel.INBOX, Channel.SMS}),
        ),
        EventSpec(
            Event.CONFIRMATION_CODE,
            N_("Confirmation code"),
            keys={**_ORDER, "code": "the code the resident tells the worker once the service is done"},
            audience=frozenset({Role.RESIDENT}),
            default=frozenset({Channel.INBOX, Channel.SMS}),
            required=frozenset({Channel.SMS}),
            urgent=True,
            secret_keys=("code",),
        ),
        EventSpec(
            Event.ORDER_ESCALATED,
            N_("Order needs dispatching"),
            keys={**_ORDER, "community": "the household's community", "level": "int: need level 1-3"},
            optional={"reason": "why routing gave up (a message id)"},
            audience=STAFF,
            default=frozenset({Channel.INBOX, Channel.SMS, Channel.EMAIL}),
        ),
        EventSpec(
            Event.SLA_MISSED,
            N_("Response target missed"),
            keys={
                **_ORDER,
                "community": "the household's community",
                "level": "int: need level 1-3",
                "target": "which target was missed: 'acceptance' or 'service'",
                "due_at": "datetime: when it was due",
            },
            audience=STAFF,
            default=frozenset({Channel.INBOX, Channel.SMS, Channel.EMAIL}),
        ),
        EventSpec(
            Event.WARNING_ASSIGNED,
            N_("Warning to verify"),
            keys={
                "warning_no": "the warning's number",
                "community": "the household's community",
                "signal": "what was reported (a message id, e.g. 'Hospital bill')",
            },
            optional={"level": "int: the household's need level", "household": "a masked household name"},
            audience=STAFF,
            default=frozenset({Channel.INBOX, Channel.SMS, Channel.EMAIL}),
        ),
        EventSpec(
            Event.VERIFICATION_OVERDUE,
            N_("Verification overdue"),
            keys={
                "warning_no": "the warning's number",
                "community": "the household's community",
                "steward": "the steward who should have verified",
                "due_at": "datetime: when the verification was due",
            },
            audience=STAFF,
            default=frozenset({Channel.INBOX, Channel.EMAIL}),
        ),
        EventSpec(
            Event.CREDITS_GRANTED,
            N_("Monthly service credits"),
            keys={
                "month": "date: the first day of the month granted",
                "credits": "int: credits granted",
                "balance": "int: the balance after the grant",
            },
            audience=frozenset({Role.RESIDENT}),
            default=frozenset({Channel.INBOX, Channel.SMS}),
        ),
        EventSpec(
            Event.ACTIVATION_CODE,
            N_("Account activation code"),
            keys={"code": "the one-time code", "minutes": "int: how long the code is valid"},
            required=frozenset({Channel.SMS}),
            default=frozenset({Channel.SMS}),
            urgent=True,
            ttl=timedelta(minutes=30),
            secret_keys=("code",),
            phone_only=True,
        ),
        EventSpec(
            Event.CONSENT_CODE,
            N_("Booking consent code"),
            keys={
                "code": "the one-time code the resident reads back to the steward",
                "steward": "the name of the steward booking on the household's behalf",
                "minutes": "int: how long the code is valid",
            },
            required=frozenset({Channel.SMS}),
            default=frozenset({Channel.SMS}),
            urgent=True,
            ttl=timedelta(minutes=30),
            secret_keys=("code",),
            phone_only=True,
        ),
    )
}

COMMON_KEYS = {"link": "a path on this site the message points to, e.g. /orders/12"}


def spec_for(event: Event | str) -> EventSpec:
    """The spec of an event; ValueError names the known events for an unknown one."""
    try:
        return EVENTS[Event(event)]
    except ValueError:
        raise ValueError(f"unknown event {event!r}; known: {', '.join(Event)}") from None


def events_for(role: Role | None) -> list[EventSpec]:
    """Events a person of this role may receive, in catalogue order."""
    return [spec for spec in EVENTS.values() if role in spec.audience]
