"""Notifications: what callers ask for, how it is delivered, and what people do with it.

Other packages call one function, :func:`notify`, inside their own ``db.atomic()`` block::

    async with db.atomic():
        ...change the order...
        await notify(Event.ORDER_ACCEPTED, [resident, steward], {...}, dedupe_key=f"order:{id}:accepted")

It writes one request per recipient (the unique key drops repeats) and a message to the
``dispatch`` actor in the same transaction.  Dispatch decides the channels of each
recipient, fills the inbox and creates one delivery per outgoing channel; ``deliver`` sends
one delivery, waiting out quiet hours and retrying with backoff.  Both are safe to run twice.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlparse

from cryptography.fernet import Fernet, InvalidToken

from marketplace import accounts, audit, clock, db, outbox
from marketplace.auth import Principal, Role
from marketplace.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from marketplace.i18n import DEFAULT_LOCALE, N_
from marketplace.pagination import Page, paginate
from marketplace.settings import get_settings
from marketplace.tables import User
from notifications import channels, rendering, rules, signing
from notifications.events import CHOOSABLE, EVENTS, NOISY, Channel, Event, EventSpec, events_for, spec_for
from notifications.tables import (
    Delivery,
    InboxItem,
    Notification,
    Preference,
    SandboxSms,
    WebhookSubscription,
)

log = logging.getLogger("cloudmarket.notifications")

OPEN = ("queued", "deferred", "retrying")
FINAL = ("sent", "failed")
STATUSES = ("queued", "deferred", "retrying", "sent", "failed")
STATUS_LABELS = {
    "queued": N_("Queued"),
    "deferred": N_("Waiting for quiet hours to end"),
    "retrying": N_("Will try again"),
    "sent": N_("Sent"),
    "failed": N_("Failed"),
}
BATCH = 500
CLAIM = timedelta(minutes=2)  # longer than any one send may take (timeouts are 10 s)
EARLY_SLACK = timedelta(seconds=5)  # clocks of two processes may differ a little
SWEEP_GRACE = timedelta(minutes=5)
PAGE_SIZE = 30

Recipient = int | str


# -- asking for a notification -------------------------------------------------------------------


def _recipient_key(recipient: Recipient) -> tuple[str, int | None, str | None]:
    if isinstance(recipient, bool) or not isinstance(recipient, int | str):
        raise TypeError(f"a recipient is a user id or a phone number, not {type(recipient).__name__}")
    if isinstance(recipient, int):
        return f"u{recipient}", recipient, None
    phone = accounts.normalise_phone(recipient)
    if not accounts.PHONE_RE.match(phone):
        raise ValueError("a recipient phone number must be an 11-digit mainland mobile number")
    return f"p{phone}", None, phone


async def notify(
    event: Event | str,
    recipients: Iterable[Recipient],
    context: Mapping[str, Any],
    *,
    dedupe_key: str,
    urgent: bool = False,
) -> list[int]:
    """Ask for ``event`` to reach each recipient (a user id, or a phone number with no account).

    Call it inside the transaction that makes the change: the request and the message to the
    dispatcher commit with it, or not at all.  ``dedupe_key`` names the occurrence (for
    example ``order:42:accepted``): asking again with the same key reaches nobody twice.
    ``urgent`` lets the message through quiet hours (level 1 and safety messages).  A phone
    number receives SMS only; a user receives the inbox and the channels of their choice, and
    the webhooks subscribed to the event.  Returns
    the ids of the new requests; repeats are left out.  Raises ValueError or TypeError for a
    mistake of the caller (unknown event, missing context key, malformed phone number).
    """
    return await notify_each(event, [(recipients, context, dedupe_key)], urgent=urgent)


async def notify_each(
    event: Event | str,
    occurrences: Iterable[tuple[Iterable[Recipient], Mapping[str, Any], str]],
    *,
    urgent: bool = False,
) -> list[int]:
    """:func:`notify` for many occurrences of one event at once, each ``(recipients, context,
    dedupe_key)``: one INSERT and one dispatch message per 500 requests (the month's credit
    notices to tens of thousands of households)."""
    spec = spec_for(event)
    rows: dict[str, Notification] = {}
    for recipients, context, dedupe_key in occurrences:
        rules.check_context(spec, context)
        if not dedupe_key or len(dedupe_key) > 150:
            raise ValueError("dedupe_key must be 1 to 150 characters")
        encoded = rules.encode_context(context)
        for recipient in recipients:
            tag, user_id, phone = _recipient_key(recipient)
            if spec.phone_only and user_id is not None:
                raise ValueError(f"{spec.event.value} goes to a phone number, not to a user id")
            key = f"{spec.event.value}:{dedupe_key}:{tag}"
            rows[key] = Notification(
                event=spec.event.value,
                user=user_id,
                phone=phone,
                context=encoded,
                urgent=urgent or spec.urgent,
                key=key,
            )
    if not rows:
        return []
    from notifications import tasks

    ids: list[int] = []
    async with db.atomic():
        batch = list(rows.values())
        for start in range(0, len(batch), BATCH):
            inserted = (
                await Notification.insert(*batch[start : start + BATCH])
                .on_conflict(action="DO NOTHING")
                .returning(Notification.id)
            )
            ids += [row["id"] for row in inserted]
        for start in range(0, len(ids), BATCH):
            await outbox.send(tasks.dispatch, ids[start : start + BATCH])
    return ids


# -- dispatch: who gets it on which channel --------------------------------------------------------


def _choices(pref: Mapping[str, Any] | None) -> dict[str, list[str]] | None:
    if pref is None:
        return None
    raw = pref["channels"]
    data = rules.decode_context(raw) if raw else {}
    return {k: list(v) for k, v in data.items() if isinstance(v, list)}


def _locale(user: Mapping[str, Any] | None) -> str:
    if user and user["locale"]:
        return str(user["locale"])
    return DEFAULT_LOCALE


def _webhook_wants(subscription: Mapping[str, Any], event: str) -> bool:
    names = subscription["events"].split()
    return not names or event in names


@dataclass
class _Plan:
    """What dispatch writes for a batch of requests: inbox items and deliveries."""

    inbox: list[InboxItem] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


def _plan_one(
    plan: _Plan,
    row: Mapping[str, Any],
    user: Mapping[str, Any] | None,
    *,
    pref: Mapping[str, Any] | None,
    hooks: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Add one request's inbox item and deliveries to the plan."""
    spec = spec_for(row["event"])
    if user is None:  # a bare phone number: SMS only
        wanted = {Channel.SMS}
    else:
        has_email = bool(pref and pref["email"])
        wanted = rules.channels_for(
            spec, _choices(pref), has_email=has_email, email_enabled=bool(get_settings().smtp_host)
        )
    base = {"notification": row["id"], "event": row["event"], "user_id": row["user"], "next_at": now}
    if Channel.INBOX in wanted and user is not None:
        context = rules.decode_context(row["context"])
        text = rendering.render(
            row["event"], _locale(user), context, role=user["role"], name=user["display_name"]
        )
        plan.inbox.append(
            InboxItem(
                user=user["id"],
                notification=row["id"],
                event=row["event"],
                title=text.title[:200],
                body=text.body,
                link=context.get("link") or "",
                urgent=row["urgent"],
                created_at=now,
            )
        )
        plan.deliveries.append(
            Delivery(
                **base, channel="inbox", key=f"{row['id']}:inbox", status="sent", attempts=1, sent_at=now
            )
        )
    for channel in sorted(wanted - {Channel.INBOX}):
        plan.deliveries.append(Delivery(**base, channel=channel.value, key=f"{row['id']}:{channel.value}"))
    if user is None:
        return
    for hook in hooks:
        if _webhook_wants(hook, row["event"]):
            plan.deliveries.append(
                Delivery(
                    **base, channel="webhook", webhook_id=hook["id"], key=f"{row['id']}:webhook:{hook['id']}"
                )
            )


async def dispatch(notification_ids: Sequence[int]) -> int:
    """Fill the inbox and create the deliveries of these requests; returns the deliveries queued."""
    from notifications import tasks

    rows = await Notification.select().where(
        Notification.id.is_in(list(notification_ids)) & Notification.dispatched_at.is_null()
    )
    if not rows:
        return 0
    now = clock.now()
    user_ids = sorted({row["user"] for row in rows if row["user"] is not None})
    users: dict[int, dict[str, Any]] = {}
    prefs: dict[int, dict[str, Any]] = {}
    if user_ids:
        users = {
            u["id"]: u
            for u in await User.select(
                User.id, User.role, User.display_name, User.locale, User.is_active
            ).where(User.id.is_in(user_ids))
        }
        prefs = {p["user"]: p for p in await Preference.select().where(Preference.user.is_in(user_ids))}
    hooks = await WebhookSubscription.select(WebhookSubscription.id, WebhookSubscription.events).where(
        WebhookSubscription.is_active == True  # noqa: E712 - a Piccolo expression
    )
    plan = _Plan()
    for row in rows:
        user = users.get(row["user"]) if row["user"] is not None else None
        if row["user"] is not None and (user is None or not user["is_active"]):
            continue  # the account is gone or closed: nothing to deliver
        _plan_one(plan, row, user, pref=prefs.get(row["user"]) if user else None, hooks=hooks, now=now)
    inbox, deliveries = plan.inbox, plan.deliveries
    queued = 0
    async with db.atomic():
        for start in range(0, len(inbox), BATCH):
            await InboxItem.insert(*inbox[start : start + BATCH]).on_conflict(action="DO NOTHING")
        for start in range(0, len(deliveries), BATCH):
            created = (
                await Delivery.insert(*deliveries[start : start + BATCH])
                .on_conflict(action="DO NOTHING")
                .returning(Delivery.id, Delivery.status)
            )
            for item in created:
                if item["status"] == "queued":
                    await outbox.send(tasks.deliver, item["id"])
                    queued += 1
        await Notification.update({Notification.dispatched_at: now}).where(
            Notification.id.is_in([row["id"] for row in rows])
        )
    return queued


# -- deliver: one message on one channel -----------------------------------------------------------


@dataclass
class _Recipient:
    """Who a delivery goes to, read again at send time (preferences may have changed)."""

    user: dict[str, Any] | None
    pref: dict[str, Any] | None
    phone: str

    @property
    def locale(self) -> str:
        return _locale(self.user)

    @property
    def role(self) -> str | None:
        return self.user["role"] if self.user else None

    @property
    def name(self) -> str:
        return self.user["display_name"] if self.user else ""

    def quiet_hours(self) -> tuple[time, time] | None:
        if self.pref is not None:
            start, end = rules.parse_time(self.pref["quiet_start"]), rules.parse_time(self.pref["quiet_end"])
            return (start, end) if start and end and start != end else None
        return rules.parse_quiet_hours(get_settings().quiet_hours)


async def _recipient(notification: Mapping[str, Any]) -> _Recipient:
    if notification["user"] is None:
        return _Recipient(user=None, pref=None, phone=notification["phone"] or "")
    user = (
        await User.select(User.id, User.phone, User.role, User.display_name, User.locale, User.is_active)
        .where(User.id == notification["user"])
        .first()
    )
    pref = await Preference.select().where(Preference.user == notification["user"]).first()
    return _Recipient(user=user, pref=pref, phone=user["phone"] if user else "")


def _sms_params(context: Mapping[str, Any]) -> dict[str, str]:
    """Context values as strings in the recipient's language, for template-based SMS gateways."""
    params: dict[str, str] = {}
    for key, value in rendering.template_variables(context).items():
        if key not in context or key == "link":
            continue
        if isinstance(value, datetime):
            params[key] = rendering.short_time(value)
        elif isinstance(value, date):
            params[key] = rendering.month_name(value) if key == "month" else rendering.short_date(value)
        else:
            params[key] = str(value)
    return params


async def _send(
    delivery: Mapping[str, Any], notification: Mapping[str, Any], to: _Recipient
) -> tuple[str, str]:
    """Render and send one delivery; returns (receiver's id, address). Raises SendFailed."""
    context = rules.decode_context(notification["context"])
    channel = Channel(delivery["channel"])
    message_id = f"cm-nt-{delivery['id']}"
    if to.user is not None and not to.user["is_active"]:
        raise channels.SendFailed("account closed", permanent=True)
    with rendering.speaking(to.locale) as locale:
        text = rendering.render(notification["event"], locale, context, role=to.role, name=to.name)
        if channel is Channel.SMS:
            if not text.sms:
                raise channels.SendFailed("no SMS text for this event", permanent=True)
            codes = rules.parse_template_codes(get_settings().sms_templates)
            message = channels.SmsMessage(
                message_id=message_id,
                phone=to.phone,
                text=text.sms,
                locale=locale,
                template=rules.template_code(codes, notification["event"], locale),
                params=_sms_params(context),
            )
            return await channels.send_sms(message), to.phone
        if channel is Channel.EMAIL:
            address = to.pref["email"] if to.pref else ""
            if not address:
                raise channels.SendFailed("no e-mail address", permanent=True)
            body = rendering.render_email(text, locale, name=to.name, link=context.get("link"))
            ref = await channels.send_email(to=address, subject=text.title, text=body, message_id=message_id)
            return ref, address
        if channel is Channel.WEBHOOK:
            hook = (
                await WebhookSubscription.select()
                .where(WebhookSubscription.id == delivery["webhook_id"])
                .first()
            )
            if hook is None or not hook["is_active"]:
                raise channels.SendFailed("webhook removed or disabled", permanent=True)
            payload = _webhook_payload(
                notification, context, text, to, locale, include_phone=hook["include_phone"]
            )
            ref = await channels.send_webhook(
                url=hook["url"], secret=decrypt_secret(hook["secret"]), message_id=message_id, payload=payload
            )
            return ref, hook["url"]
    raise channels.SendFailed(f"channel {channel.value} is not sent this way", permanent=True)


def _webhook_payload(
    notification: Mapping[str, Any],
    context: Mapping[str, Any],
    text: rendering.Rendered,
    to: _Recipient,
    locale: str,
    *,
    include_phone: bool,
) -> dict[str, Any]:
    """A Standard Webhooks style body: ``type``, ``timestamp`` and the event in ``data``."""
    recipient: dict[str, Any] = {"user_id": to.user["id"] if to.user else None, "role": to.role}
    if include_phone:
        recipient["phone"] = to.phone
    return {
        "type": notification["event"],
        "timestamp": clock.now().isoformat(),
        "data": {
            "notification_id": notification["id"],
            "urgent": notification["urgent"],
            "locale": locale,
            "recipient": recipient,
            "title": text.title,
            "body": text.body,
            "sms_text": text.sms,
            "link": rendering.absolute(context.get("link")),
            "context": _jsonable(context),
        },
    }


def _jsonable(context: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in context.items()}


async def deliver(delivery_id: int) -> str:
    """Send one delivery if it is due and nobody else is sending it; returns what happened.

    Quiet hours defer it (unless urgent); a failed send is retried with backoff until the
    attempts run out or the message expires; a second run for the same delivery, at the same
    time or later, sends nothing.
    """
    now = clock.now()
    row = await Delivery.select().where(Delivery.id == delivery_id).first()
    # Done already, or a repeat of an older message (this delivery's own message comes later).
    if row is None or row["status"] in FINAL or row["next_at"] > now + EARLY_SLACK:
        return "skipped"
    notification = await Notification.select().where(Notification.id == row["notification"]).first()
    if notification is None:
        return "skipped"
    spec = spec_for(notification["event"])
    to = await _recipient(notification)
    unclaimed = Delivery.claimed_until.is_null() | (Delivery.claimed_until < now)
    is_open = (Delivery.id == delivery_id) & Delivery.status.is_in(list(OPEN)) & unclaimed

    expires_at = notification["created_at"] + spec.ttl if spec.ttl else None
    if expires_at is not None and now >= expires_at:
        await _record(delivery_id, rules.Outcome("failed", error="expired before it could be sent"), spec)
        return "expired"
    if (
        Channel(row["channel"]) in NOISY
        and not notification["urgent"]
        and await _defer_if_quiet(delivery_id, to, now, is_open)
    ):
        return "deferred"
    return await _attempt(row, notification, to, spec, is_open=is_open, expires_at=expires_at)


async def _attempt(
    row: Mapping[str, Any],
    notification: Mapping[str, Any],
    to: _Recipient,
    spec: EventSpec,
    *,
    is_open: Any,
    expires_at: datetime | None,
) -> str:
    """Claim the delivery, send it, and record the outcome; "busy" if another run holds it."""
    now = clock.now()
    delivery_id = row["id"]
    claimed = (
        await Delivery.update({Delivery.claimed_until: now + CLAIM, Delivery.attempts: Delivery.attempts + 1})
        .where(is_open & (Delivery.next_at <= now + EARLY_SLACK))
        .returning(Delivery.attempts)
    )
    if not claimed:
        return "busy"
    attempts = claimed[0]["attempts"]
    address = ""
    try:
        ref, address = await _send(row, notification, to)
    except channels.SendFailed as exc:
        outcome = rules.after_failure(
            attempts=attempts,
            max_attempts=get_settings().notify_max_attempts,
            now=clock.now(),
            error=exc.reason,
            permanent=exc.permanent,
            expires_at=expires_at,
            retry_after=exc.retry_after,
        )
        ref = ""
    except Exception as exc:
        # A bug or a database hiccup while sending: logged with its trace, retried like a gateway error.
        log.exception("delivery failed unexpectedly", extra={"delivery_id": delivery_id})
        outcome = rules.after_failure(
            attempts=attempts,
            max_attempts=get_settings().notify_max_attempts,
            now=clock.now(),
            error=f"internal error: {type(exc).__name__}",
            permanent=False,
            expires_at=expires_at,
        )
        ref = ""
    else:
        outcome = rules.Outcome("sent")
    await _record(delivery_id, outcome, spec, ref=ref, address=address)
    log.info(
        "delivery",
        extra={
            "delivery_id": delivery_id,
            "event": row["event"],
            "channel": row["channel"],
            "outcome": outcome.status,
            "attempts": attempts,
            "error": outcome.error or None,
        },
    )
    return outcome.status


async def _defer_if_quiet(delivery_id: int, to: _Recipient, now: datetime, is_open: Any) -> bool:
    """Within the recipient's quiet hours, move the delivery to their end; True if it moved."""
    from notifications import tasks

    window = to.quiet_hours()
    until = rules.quiet_until(now, *window, clock.local_zone()) if window else None
    if until is None:
        return False
    async with db.atomic():
        deferred = (
            await Delivery.update({Delivery.status: "deferred", Delivery.next_at: until})
            .where(is_open)
            .returning(Delivery.id)
        )
        if deferred:
            await outbox.send(tasks.deliver, delivery_id, deliver_at=until)
    return True


async def _record(
    delivery_id: int, outcome: rules.Outcome, spec: EventSpec, *, ref: str = "", address: str = ""
) -> None:
    """Write a try's outcome, release the claim, and schedule the next try if there is one."""
    from notifications import tasks

    now = clock.now()
    values: dict[Any, Any] = {
        Delivery.status: outcome.status,
        Delivery.claimed_until: None,
        Delivery.last_error: outcome.error,
    }
    if outcome.next_at is not None:
        values[Delivery.next_at] = outcome.next_at
    if outcome.status == "sent":
        values |= {Delivery.sent_at: now, Delivery.provider_ref: ref[:100]}
    if address:
        values[Delivery.address] = address[:255]
    async with db.atomic():
        updated = (
            await Delivery.update(values)
            .where((Delivery.id == delivery_id) & Delivery.status.is_in(list(OPEN)))
            .returning(Delivery.notification)
        )
        if not updated:
            return
        if outcome.status == "retrying" and outcome.next_at is not None:
            await outbox.send(tasks.deliver, delivery_id, deliver_at=outcome.next_at)
        if outcome.status in FINAL and spec.secret_keys:
            await _redact_when_done(updated[0]["notification"], spec)


async def _redact_when_done(notification_id: int, spec: EventSpec) -> None:
    """Blank the code in the stored request once no delivery of it is still waiting."""
    waiting = await Delivery.exists().where(
        (Delivery.notification == notification_id) & Delivery.status.is_in(list(OPEN))
    )
    if waiting:
        return
    row = await Notification.select(Notification.context).where(Notification.id == notification_id).first()
    if row is None:
        return
    context = rules.redact(rules.decode_context(row["context"]), spec.secret_keys)
    await Notification.update({Notification.context: rules.encode_context(context)}).where(
        Notification.id == notification_id
    )


async def sweep() -> int:
    """Send again what waits past its time with no message on its way (a lost message, a crash)."""
    from notifications import tasks

    now = clock.now()
    stale = now - SWEEP_GRACE
    overdue = await (
        Delivery.select(Delivery.id)
        .where(
            Delivery.status.is_in(list(OPEN))
            & (Delivery.next_at < stale)
            & (Delivery.claimed_until.is_null() | (Delivery.claimed_until < now))
        )
        .limit(BATCH)
    )
    undispatched = await (
        Notification.select(Notification.id)
        .where(Notification.dispatched_at.is_null() & (Notification.created_at < stale))
        .limit(BATCH)
    )
    async with db.atomic():
        for item in overdue:
            await outbox.send(tasks.deliver, item["id"])
        if undispatched:
            await outbox.send(tasks.dispatch, [item["id"] for item in undispatched])
    if overdue or undispatched:
        log.warning(
            "notifications sent again by the sweeper",
            extra={"deliveries": len(overdue), "requests": len(undispatched)},
        )
    return len(overdue) + len(undispatched)


# -- the inbox -------------------------------------------------------------------------------------


def _user_id(principal: Principal) -> int:
    if principal.user_id is None:
        raise NotFound()
    return principal.user_id


async def unread_count(user_id: int) -> int:
    """Unread inbox items of a user: one indexed count, cheap enough for every page."""
    return int(await InboxItem.count().where((InboxItem.user == user_id) & InboxItem.read_at.is_null()))


async def unread_for(principal: Principal) -> int:
    return await unread_count(_user_id(principal))


async def inbox_page(
    principal: Principal, *, page: int = 1, per_page: int = PAGE_SIZE, unread: bool = False
) -> Page:
    """The caller's inbox, newest first."""
    user_id = _user_id(principal)
    where: Any = InboxItem.user == user_id
    if unread:
        where &= InboxItem.read_at.is_null()
    query = (
        InboxItem.select(
            InboxItem.id,
            InboxItem.event,
            InboxItem.title,
            InboxItem.body,
            InboxItem.link,
            InboxItem.urgent,
            InboxItem.created_at,
            InboxItem.read_at,
        )
        .where(where)
        .order_by(InboxItem.id, ascending=False)
    )
    return await paginate(query, InboxItem.count().where(where), page, per_page)


async def mark_read(principal: Principal, item_id: int) -> str:
    """Mark one of the caller's items read; returns its link (empty if none)."""
    user_id = _user_id(principal)
    item = (
        await InboxItem.select(InboxItem.id, InboxItem.link, InboxItem.read_at)
        .where((InboxItem.id == item_id) & (InboxItem.user == user_id))
        .first()
    )
    if item is None:
        raise NotFound()
    if item["read_at"] is None:
        await InboxItem.update({InboxItem.read_at: clock.now()}).where(InboxItem.id == item_id)
    return str(item["link"] or "")


async def mark_all_read(principal: Principal) -> int:
    """Mark every unread item of the caller read; returns how many."""
    user_id = _user_id(principal)
    done = (
        await InboxItem.update({InboxItem.read_at: clock.now()})
        .where((InboxItem.user == user_id) & InboxItem.read_at.is_null())
        .returning(InboxItem.id)
    )
    return len(done)


# -- preferences -----------------------------------------------------------------------------------

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class EventChoice:
    """One row of the preferences page: an event and, per choosable channel, on/off/locked."""

    event: str
    label: str
    channels: dict[str, bool]
    locked: frozenset[str]
    available: frozenset[str]


@dataclass
class Preferences:
    """A user's notification settings as the page and the API show them."""

    email: str
    quiet_start: str
    quiet_end: str
    events: list[EventChoice] = field(default_factory=list)
    email_enabled: bool = False

    @property
    def quiet_enabled(self) -> bool:
        return bool(self.quiet_start and self.quiet_end)


def _choice_rows(spec_list: list[EventSpec], choices: dict[str, list[str]] | None) -> list[EventChoice]:
    rows = []
    for spec in spec_list:
        on = rules.channels_for(spec, choices, has_email=True, email_enabled=True)
        available = frozenset(c.value for c in CHOOSABLE if c in spec.channels)
        rows.append(
            EventChoice(
                event=spec.event.value,
                label=spec.label,
                channels={c.value: c in on for c in CHOOSABLE if c.value in available},
                locked=frozenset(c.value for c in spec.required),
                available=available,
            )
        )
    return rows


async def get_preferences(principal: Principal) -> Preferences:
    """The caller's settings, with the defaults where they chose nothing."""
    user_id = _user_id(principal)
    pref = await Preference.select().where(Preference.user == user_id).first()
    default_quiet = rules.parse_quiet_hours(get_settings().quiet_hours)
    if pref is None:
        start, end = (t.strftime("%H:%M") for t in default_quiet) if default_quiet else ("", "")
        email, choices = "", None
    else:
        start, end, email, choices = pref["quiet_start"], pref["quiet_end"], pref["email"], _choices(pref)
    return Preferences(
        email=email,
        quiet_start=start,
        quiet_end=end,
        events=_choice_rows(events_for(principal.role), choices),
        email_enabled=bool(get_settings().smtp_host),
    )


async def save_preferences(
    principal: Principal,
    *,
    email: str,
    quiet_start: str,
    quiet_end: str,
    channels_by_event: Mapping[str, Iterable[str]],
) -> Preferences:
    """Store the caller's settings; empty quiet hours turn them off."""
    user_id = _user_id(principal)
    errors: list[FieldError] = []
    email = email.strip()
    if email and (len(email) > 254 or not EMAIL_RE.match(email)):
        errors.append(
            FieldError("email", N_("Enter an e-mail address such as name@example.com, or leave it empty."))
        )
    start, end = quiet_start.strip(), quiet_end.strip()
    if start or end:
        for name, value in (("quiet_start", start), ("quiet_end", end)):
            if rules.parse_time(value) is None:
                errors.append(FieldError(name, N_("Enter a time of day such as 22:00.")))
        if not errors and start == end:
            errors.append(
                FieldError("quiet_end", N_("Quiet hours must end at another time than they start."))
            )
    unknown = [e for e in channels_by_event if e not in {ev.value for ev in Event}]
    if unknown:
        errors.append(FieldError("channels", N_("Unknown event: %(event)s."), {"event": unknown[0]}))
    if errors:
        raise ValidationFailed(errors=errors)
    start_t, end_t = rules.parse_time(start), rules.parse_time(end)
    mine = {spec.event.value for spec in events_for(principal.role)}
    existing = await Preference.select().where(Preference.user == user_id).first()
    choices = _choices(existing) or {}
    for event_name, chosen in channels_by_event.items():
        if event_name not in mine:
            continue
        spec = EVENTS[Event(event_name)]
        allowed = {c.value for c in CHOOSABLE if c in spec.channels}
        choices[event_name] = sorted({c for c in chosen if c in allowed} | {c.value for c in spec.required})
    row = Preference(
        user=user_id,
        email=email,
        quiet_start=start_t.strftime("%H:%M") if start_t else "",
        quiet_end=end_t.strftime("%H:%M") if end_t else "",
        channels=rules.encode_context(choices),
        updated_at=clock.now(),
    )
    updated = [
        Preference.email,
        Preference.quiet_start,
        Preference.quiet_end,
        Preference.channels,
        Preference.updated_at,
    ]
    async with db.atomic():
        await Preference.insert(row).on_conflict(target=Preference.user, action="DO UPDATE", values=updated)
    return await get_preferences(principal)


# -- webhooks (admins) -----------------------------------------------------------------------------


def _ensure_admin(principal: Principal) -> int | None:
    if principal.role != Role.ADMIN:
        raise PermissionDenied()
    return principal.user_id


def _fernet() -> Fernet:
    # A key of its own for this purpose, derived from the data key, so neither can unlock the other.
    digest = hashlib.sha256(b"cloudmarket:notifications:webhook-secrets:" + get_settings().data_key.encode())
    return Fernet(base64.urlsafe_b64encode(digest.digest()))


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt_secret(stored: str) -> str:
    try:
        return _fernet().decrypt(stored.encode()).decode()
    except InvalidToken as exc:
        raise channels.SendFailed("webhook secret unreadable (was the data key changed?)") from exc


def _check_webhook_url(raw: str) -> str:
    url = raw.strip()
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parsed.scheme == "https" and host:
        return url
    if parsed.scheme == "http" and loopback:
        return url
    raise ValidationFailed.field(
        "url", N_("Enter an https:// address (plain http:// only for this machine, e.g. http://127.0.0.1).")
    )


@dataclass
class NewWebhook:
    """A webhook just created: its id, and its secret, shown this once."""

    webhook_id: int
    secret: str


async def create_webhook(
    principal: Principal, *, name: str, url: str, events: Iterable[str], include_phone: bool = False
) -> NewWebhook:
    """Subscribe an integration to events (none chosen means every event)."""
    admin = _ensure_admin(principal)
    errors: list[FieldError] = []
    if not name.strip():
        errors.append(FieldError("name", N_("Enter a name for the integration.")))
    try:
        url = _check_webhook_url(url)
    except ValidationFailed as exc:
        errors += exc.errors
    chosen = sorted(set(events))
    if any(e not in {ev.value for ev in Event} for e in chosen):
        errors.append(FieldError("events", N_("Choose events from the list.")))
    if errors:
        raise ValidationFailed(errors=errors)
    secret = signing.new_secret()
    row = WebhookSubscription(
        name=name.strip()[:100],
        url=url,
        secret=encrypt_secret(secret),
        events=" ".join(chosen),
        include_phone=include_phone,
        created_by=admin,
    )
    await row.save()
    await audit.record(
        "notifications.webhook_created", principal=principal, target_type="webhook", target_id=row.id
    )
    return NewWebhook(webhook_id=row.id, secret=secret)


async def list_webhooks(principal: Principal) -> list[dict[str, Any]]:
    _ensure_admin(principal)
    rows = await WebhookSubscription.select(
        WebhookSubscription.id,
        WebhookSubscription.name,
        WebhookSubscription.url,
        WebhookSubscription.events,
        WebhookSubscription.include_phone,
        WebhookSubscription.is_active,
        WebhookSubscription.created_at,
    ).order_by(WebhookSubscription.id)
    for row in rows:
        row["events"] = row["events"].split()
    return rows


async def get_webhook(principal: Principal, webhook_id: int) -> dict[str, Any]:
    for hook in await list_webhooks(principal):
        if hook["id"] == webhook_id:
            return hook
    raise NotFound()


async def set_webhook_active(principal: Principal, webhook_id: int, active: bool) -> None:
    _ensure_admin(principal)
    updated = (
        await WebhookSubscription.update({WebhookSubscription.is_active: active})
        .where(WebhookSubscription.id == webhook_id)
        .returning(WebhookSubscription.id)
    )
    if not updated:
        raise NotFound()
    action = "notifications.webhook_enabled" if active else "notifications.webhook_disabled"
    await audit.record(action, principal=principal, target_type="webhook", target_id=webhook_id)


async def delete_webhook(principal: Principal, webhook_id: int) -> None:
    """Remove a subscription; its deliveries stay in the log, waiting ones fail."""
    _ensure_admin(principal)
    deleted = (
        await WebhookSubscription.delete()
        .where(WebhookSubscription.id == webhook_id)
        .returning(WebhookSubscription.id)
    )
    if not deleted:
        raise NotFound()
    await audit.record(
        "notifications.webhook_deleted", principal=principal, target_type="webhook", target_id=webhook_id
    )


# -- the delivery log (admins) ---------------------------------------------------------------------


@dataclass
class LogFilter:
    """What the delivery log is narrowed to; empty fields do not narrow it."""

    status: str = ""
    channel: str = ""
    event: str = ""
    user_id: int | None = None

    def where(self) -> Any:
        clause: Any = Delivery.id > 0
        if self.status in STATUSES:
            clause &= Delivery.status == self.status
        if self.channel in {c.value for c in Channel}:
            clause &= Delivery.channel == self.channel
        if self.event in {e.value for e in Event}:
            clause &= Delivery.event == self.event
        if self.user_id is not None:
            clause &= Delivery.user_id == self.user_id
        return clause


def mask_address(channel: str, address: str) -> str:
    """Enough of an address for an admin to tell two apart, not enough to copy."""
    if not address:
        return ""
    if channel == Channel.SMS.value:
        return address[:3] + "****" + address[-4:] if len(address) >= 7 else "****"
    if channel == Channel.EMAIL.value:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return address


async def delivery_log(
    principal: Principal, filters: LogFilter, *, page: int = 1, per_page: int = 50
) -> Page:
    """Deliveries, newest first, with the recipient's name and a masked address."""
    _ensure_admin(principal)
    where = filters.where()
    query = Delivery.select().where(where).order_by(Delivery.id, ascending=False)
    result = await paginate(query, Delivery.count().where(where), page, per_page)
    user_ids = sorted({row["user_id"] for row in result.items if row["user_id"] is not None})
    names = (
        {
            u["id"]: u["display_name"]
            for u in await User.select(User.id, User.display_name).where(User.id.is_in(user_ids))
        }
        if user_ids
        else {}
    )
    for row in result.items:
        row["user_name"] = names.get(row["user_id"], "")
        row["address"] = mask_address(row["channel"], row["address"])
        row.pop("claimed_until", None)
    return result


async def retry_delivery(principal: Principal, delivery_id: int) -> None:
    """Try a failed delivery again from the start (after an admin fixed the cause)."""
    from notifications import tasks

    _ensure_admin(principal)
    async with db.atomic():
        updated = (
            await Delivery.update(
                {Delivery.status: "queued", Delivery.attempts: 0, Delivery.next_at: clock.now()}
            )
            .where(
                (Delivery.id == delivery_id) & (Delivery.status == "failed") & (Delivery.channel != "inbox")
            )
            .returning(Delivery.id)
        )
        if not updated:
            raise NotFound()
        await outbox.send(tasks.deliver, delivery_id)
        await audit.record(
            "notifications.delivery_retried",
            principal=principal,
            target_type="delivery",
            target_id=delivery_id,
        )


# -- the SMS sandbox -------------------------------------------------------------------------------


def sandbox_visible(principal: Principal | None) -> bool:
    """Admins read the sandbox; everyone may when the service says so (embedded demos)."""
    if get_settings().sms_sandbox_public:
        return True
    return principal is not None and principal.role == Role.ADMIN and principal.client_id is None


async def sandbox_messages(principal: Principal | None, *, phone: str = "", page: int = 1) -> Page:
    """Texts the sandbox gateway received, newest first, optionally for one phone number."""
    if not sandbox_visible(principal):
        raise NotFound()
    where: Any = SandboxSms.id > 0
    phone = accounts.normalise_phone(phone)
    if phone:
        where &= SandboxSms.phone == phone
    query = SandboxSms.select().where(where).order_by(SandboxSms.id, ascending=False)
    return await paginate(query, SandboxSms.count().where(where), page, PAGE_SIZE)


async def forget_person(
    user_ids: Sequence[int], phones: Sequence[str], values: Sequence[str], scrub: Callable[[Any], Any]
) -> None:
    """Erasure of a person: what was sent to their accounts or phones goes, mentions elsewhere are scrubbed.

    ``values`` are the texts to look for (as stored); ``scrub`` rewrites a text or JSON value without them.
    """
    sent = Notification.user.is_in(list(user_ids) or [0]) | Notification.phone.is_in(list(phones) or [""])
    ids = [row["id"] for row in await Notification.select(Notification.id).where(sent)]
    if ids:
        await InboxItem.delete().where(InboxItem.notification.is_in(ids))
        await Delivery.delete().where(Delivery.notification.is_in(ids))
        await Notification.delete().where(Notification.id.is_in(ids))
    if phones:
        await SandboxSms.delete().where(SandboxSms.phone.is_in(list(phones)))
    if not values:
        return
    # Mentions in texts to other people (a steward told of a warning): found in the plain-text
    # columns, scrubbed there and in the notification they came from.
    inbox = await InboxItem.select(
        InboxItem.id, InboxItem.notification, InboxItem.title, InboxItem.body
    ).where(db.contains_any([InboxItem.title, InboxItem.body], values))
    for row in inbox:
        await InboxItem.update(
            {InboxItem.title: scrub(row["title"]), InboxItem.body: scrub(row["body"])}
        ).where(InboxItem.id == row["id"])
    for row in await Notification.select(Notification.id, Notification.context).where(
        Notification.id.is_in([row["notification"] for row in inbox] or [0])
    ):
        await Notification.update({Notification.context: scrub(row["context"])}).where(
            Notification.id == row["id"]
        )
    for row in await SandboxSms.select(SandboxSms.id, SandboxSms.text, SandboxSms.params).where(
        db.contains_any([SandboxSms.text], values)
    ):
        await SandboxSms.update(
            {SandboxSms.text: scrub(row["text"]), SandboxSms.params: scrub(row["params"])}
        ).where(SandboxSms.id == row["id"])
