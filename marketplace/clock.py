"""The one clock of the service: everything that asks "what time is it" asks here.

Tests move it (``clock.freeze``, ``clock.advance``) so that offer timeouts, SLAs and monthly
grants are tested without sleeping.  Times are timezone-aware UTC; pages show them in the
configured zone.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from piccolo.columns.defaults.timestamptz import TimestamptzNow

from marketplace.settings import get_settings

_lock = threading.Lock()
_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """The current time, UTC, as this process's clock has it."""
    with _lock:
        if _frozen is not None:
            return _frozen
        return datetime.now(UTC) + _offset


def local_zone() -> ZoneInfo:
    return ZoneInfo(get_settings().time_zone)


def local_now() -> datetime:
    """The current time in the service's zone (months and days are counted there)."""
    return now().astimezone(local_zone())


def freeze(at: datetime) -> None:
    """Stop the clock at ``at`` (tests only)."""
    global _frozen
    if at.tzinfo is None:
        raise ValueError("freeze() needs an aware datetime")
    with _lock:
        _frozen = at.astimezone(UTC)


def advance(by: timedelta) -> datetime:
    """Move the clock forward, frozen or running (tests only); returns the new time."""
    global _frozen, _offset
    with _lock:
        if _frozen is not None:
            _frozen += by
        else:
            _offset += by
    return now()


def reset() -> None:
    """Back to real time."""
    global _frozen, _offset
    with _lock:
        _frozen = None
        _offset = timedelta(0)


class ClockNow(TimestamptzNow):
    """Column default: the service clock's now, so that moved clocks move stored times too."""

    def python(self) -> datetime:
        return now()
