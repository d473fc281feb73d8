"""Tables of `notifications`: requests, deliveries, the inbox, preferences, webhooks, the SMS sandbox."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from marketplace.clock import ClockNow
from marketplace.tables import User


class Notification(Table, tablename="nt_notification"):
    """One event for one recipient, as a caller asked for it; the unique key makes it happen once."""

    id: Serial

    event = Varchar(length=40, index=True)
    user = ForeignKey(references=User, null=True, default=None, index=True, on_delete=OnDelete.cascade)
    phone = Varchar(length=20, null=True, default=None)  # a recipient without an account
    context = JSON(default="{}")
    urgent = Boolean(default=False)
    # event, the caller's dedupe key and the recipient joined: one request per person and event.
    key = Varchar(length=255, unique=True)
    created_at = Timestamptz(default=ClockNow(), index=True)
    dispatched_at = Timestamptz(null=True, default=None)


class Delivery(Table, tablename="nt_delivery"):
    """One notification on one channel (or to one webhook): its state, tries and last error."""

    id: Serial

    notification = ForeignKey(references=Notification, index=True, on_delete=OnDelete.cascade)
    event = Varchar(length=40, index=True)
    channel = Varchar(length=10, index=True)
    user_id = Integer(null=True, default=None, index=True)
    webhook_id = Integer(null=True, default=None)
    # notification id, channel and webhook joined: a delivery is created once.
    key = Varchar(length=80, unique=True)
    # queued → sent; deferred (quiet hours) and retrying (after a failed try) wait for next_at;
    # failed is final, with the reason in last_error.
    status = Varchar(length=10, default="queued", index=True)
    attempts = Integer(default=0)
    next_at = Timestamptz(default=ClockNow(), index=True)
    claimed_until = Timestamptz(null=True, default=None)
    last_error = Text(default="")
    address = Varchar(length=255, default="")  # where it went: a phone, an e-mail address, a URL
    provider_ref = Varchar(length=100, default="")  # the gateway's id of the message
    created_at = Timestamptz(default=ClockNow(), index=True)
    sent_at = Timestamptz(null=True, default=None)


class InboxItem(Table, tablename="nt_inbox_item"):
    """A message in a user's in-app inbox, written in their language when it arrived."""

    id: Serial

    user = ForeignKey(references=User, index=True, on_delete=OnDelete.cascade)
    notification = ForeignKey(references=Notification, unique=True, on_delete=OnDelete.cascade)
    event = Varchar(length=40)
    title = Varchar(length=200)
    body = Text(default="")
    link = Varchar(length=255, default="")
    urgent = Boolean(default=False)
    created_at = Timestamptz(default=ClockNow(), index=True)
    read_at = Timestamptz(null=True, default=None, index=True)


class Preference(Table, tablename="nt_preference"):
    """A user's choices: channels per event, an e-mail address and quiet hours."""

    id: Serial

    user = ForeignKey(references=User, unique=True, on_delete=OnDelete.cascade)
    email = Varchar(length=254, default="")
    # {"event": ["sms", "email"], ...}; an event not listed uses its defaults.
    channels = JSON(default="{}")
    quiet_start = Varchar(length=5, default="")  # "22:00"; empty for no quiet hours
    quiet_end = Varchar(length=5, default="")
    updated_at = Timestamptz(default=ClockNow())


class WebhookSubscription(Table, tablename="nt_webhook"):
    """An integration (a WeChat bridge, say) that receives signed events at a URL."""

    id: Serial

    name = Varchar(length=100)
    url = Varchar(length=500)
    secret = Text()  # encrypted with a key derived from CLOUDMARKET_DATA_KEY
    events = Text(default="")  # event names separated by spaces; empty for every event
    include_phone = Boolean(default=False)
    is_active = Boolean(default=True)
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=ClockNow())


class SandboxSms(Table, tablename="nt_sandbox_sms"):
    """A text the sandbox SMS gateway received instead of a phone (embedded mode and tests)."""

    id: Serial

    phone = Varchar(length=20, index=True)
    text = Text()
    template = Varchar(length=60, default="")
    params = JSON(default="{}")
    # Every request is kept, even a repeat of the same message: the log shows what a phone got.
    message_id = Varchar(length=80, index=True)
    received_at = Timestamptz(default=ClockNow(), index=True)
