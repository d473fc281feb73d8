"""The rules of delivery as plain functions: channels, quiet hours, retries, SMS length, context.

Nothing here touches the database or the network, so each rule is tested in microseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from notifications.events import CHOOSABLE, Channel, EventSpec

# -- channels -------------------------------------------------------------------------------------


def channels_for(
    spec: EventSpec,
    choices: Mapping[str, Iterable[str]] | None,
    *,
    has_email: bool,
    email_enabled: bool,
) -> set[Channel]:
    """The channels one user receives an event on.

    ``choices`` maps an event to the channels the user chose for it; an event missing there
    uses the event's defaults.  The inbox always receives, required channels cannot be
    turned off, and e-mail needs an address and a configured mail server.
    """
    if spec.phone_only:
        return {Channel.SMS}
    chosen: set[Channel]
    if choices is not None and spec.event.value in choices:
        chosen = {Channel(c) for c in choices[spec.event.value] if c in {ch.value for ch in CHOOSABLE}}
    else:
        chosen = set(spec.default) & set(CHOOSABLE)
    chosen |= set(spec.required) & set(CHOOSABLE)
    chosen &= set(spec.channels)
    if not (has_email and email_enabled):
        chosen.discard(Channel.EMAIL)
    return {Channel.INBOX, *chosen}


# -- quiet hours ----------------------------------------------------------------------------------

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_time(raw: str) -> time | None:
    """``"22:00"`` → 22:00; None for anything that is not a clock time."""
    match = _HHMM.match(raw.strip())
    if not match:
        return None
    return time(int(match.group(1)), int(match.group(2)))


def parse_quiet_hours(raw: str) -> tuple[time, time] | None:
    """``"22:00-07:00"`` → (22:00, 07:00); None when empty or malformed."""
    start, sep, end = raw.partition("-")
    if not sep:
        return None
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None or a == b:
        return None
    return a, b


def quiet_until(at: datetime, start: time | None, end: time | None, zone: ZoneInfo) -> datetime | None:
    """When quiet hours end if ``at`` falls within them (start inclusive), else None.

    The window may wrap midnight (22:00-07:00).  Times are read in ``zone``.
    """
    if start is None or end is None or start == end:
        return None
    local = at.astimezone(zone)
    now = local.time().replace(tzinfo=None)
    today = local.date()
    if start < end:
        inside = start <= now < end
        ends_on = today
    else:
        inside = now >= start or now < end
        ends_on = today + timedelta(days=1) if now >= start else today
    if not inside:
        return None
    return datetime.combine(ends_on, end, tzinfo=zone)


# -- retries --------------------------------------------------------------------------------------

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY_DELAY = timedelta(hours=1)


def retry_delay(attempts: int, retry_after: timedelta | None = None) -> timedelta:
    """How long to wait after the ``attempts``-th failed try: 30 s, 2 min, 8 min, 32 min, 1 h.

    A gateway's own ``Retry-After`` wins when it asks for longer (up to the cap).
    """
    delay: timedelta = min(FIRST_RETRY * 4 ** max(0, attempts - 1), MAX_RETRY_DELAY)
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, MAX_RETRY_DELAY)
    return delay


@dataclass(frozen=True)
class Outcome:
    """What to record after one try: the status, when to try again, and why."""

    status: str
    next_at: datetime | None = None
    error: str = ""


def after_failure(
    *,
    attempts: int,
    max_attempts: int,
    now: datetime,
    error: str,
    permanent: bool,
    expires_at: datetime | None = None,
    retry_after: timedelta | None = None,
) -> Outcome:
    """Retry later, or give up for good (permanent error, attempts used up, message expired)."""
    if permanent or attempts >= max_attempts:
        return Outcome("failed", error=error)
    next_at = now + retry_delay(attempts, retry_after)
    if expires_at is not None and next_at >= expires_at:
        return Outcome("failed", error=f"{error}; expired before the next try")
    return Outcome("retrying", next_at=next_at, error=error)


# -- SMS length -----------------------------------------------------------------------------------

# The GSM 03.38 basic alphabet; the extension characters count twice.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€")


def sms_segments(text: str) -> int:
    """How many SMS segments a text takes: 160/153 GSM-7 characters, or 70/67 in UCS-2."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        single, multi = 160, 153
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)  # UTF-16 code units
        single, multi = 70, 67
    if units <= single:
        return 1
    return -(-units // multi)


def parse_template_codes(raw: str) -> dict[str, str]:
    """``"new_offer=SMS_1,new_offer.en=SMS_2"`` → a mapping; blanks and malformed parts are skipped."""
    codes: dict[str, str] = {}
    for part in raw.split(","):
        key, sep, code = part.partition("=")
        if sep and key.strip() and code.strip():
            codes[key.strip()] = code.strip()
    return codes


def template_code(codes: Mapping[str, str], event: str, locale: str) -> str | None:
    """The gateway template for an event in a language, falling back to the event's own."""
    short = locale.split("_", maxsplit=1)[0]
    return codes.get(f"{event}.{locale}") or codes.get(f"{event}.{short}") or codes.get(event)


# -- context --------------------------------------------------------------------------------------

_DT, _DATE = "$datetime", "$date"


def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("context datetimes must be timezone-aware")
        return {_DT: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    if isinstance(value, Mapping):
        return {str(k): _tag(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tag(v) for v in value]
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_DT}:
            return datetime.fromisoformat(value[_DT])
        if set(value) == {_DATE}:
            return date.fromisoformat(value[_DATE])
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def encode_context(context: Mapping[str, Any]) -> str:
    """JSON that keeps datetimes and dates; TypeError for values JSON cannot hold."""
    return json.dumps(_tag(context), ensure_ascii=False, sort_keys=True)


def decode_context(raw: str | Mapping[str, Any]) -> dict[str, Any]:
    data = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return {k: _untag(v) for k, v in data.items()}


def check_context(spec: EventSpec, context: Mapping[str, Any]) -> None:
    """ValueError naming the missing or unknown keys: a caller's mistake shows in its tests."""
    missing = [k for k in spec.keys if context.get(k) in (None, "")]
    known = set(spec.keys) | set(spec.optional) | {"link"}
    unknown = sorted(set(context) - known)
    if missing or unknown:
        raise ValueError(
            f"context of {spec.event.value}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}"
        )
    link = context.get("link")
    if link is not None and not (
        isinstance(link, str) and link.startswith("/") and not link.startswith("//")
    ):
        raise ValueError("context link must be a path on this site, e.g. /orders/12")


def redact(context: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The context with secret values blanked (a code, once it has been delivered)."""
    hidden = set(keys)
    return {k: ("***" if k in hidden else v) for k, v in context.items()}
