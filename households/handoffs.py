"""Handling outcomes that another package carries out: temporary credits and services booked now.

The credit ledger and orders belong to the ``orders`` package, which households must not
import (dependencies point from orders to households).  So households records the decision and
calls one of the two functions below from the ``households.tasks.hand_off`` actor; the orders
package provides the implementation when its ``tasks`` module is imported::

    from households import handoffs

    @handoffs.provides_credit_grants
    async def grant(request: handoffs.CreditGrant) -> str: ...   # returns the ledger entry's reference

    @handoffs.provides_service_bookings
    async def book(request: handoffs.ServiceBooking) -> str: ...  # returns the order numbers

Until then nothing is granted and nothing is booked: the functions return None, and the warning
shows that the decision is recorded but not carried out.  An implementation keys its effect by
``warning_id`` (the actor may call it twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class CreditGrant:
    """Grant a household temporary service credits, valid until a day, because of a warning."""

    warning_id: int
    household_id: int
    credits: int
    valid_until: date
    reason: str
    granted_by: int | None


@dataclass(frozen=True)
class ServiceBooking:
    """Book services for a household now (service category codes), because of a warning."""

    warning_id: int
    household_id: int
    categories: tuple[str, ...]
    wanted_on: date
    note: str
    booked_by: int | None


CreditGranter = Callable[[CreditGrant], Awaitable[str]]
ServiceBooker = Callable[[ServiceBooking], Awaitable[str]]

_granter: CreditGranter | None = None
_booker: ServiceBooker | None = None


def provides_credit_grants(granter: CreditGranter) -> CreditGranter:
    """The orders package registers how temporary credits are granted (usable as a decorator)."""
    global _granter
    _granter = granter
    return granter


def provides_service_bookings(booker: ServiceBooker) -> ServiceBooker:
    """The orders package registers how services are booked at once (usable as a decorator)."""
    global _booker
    _booker = booker
    return booker


def carried_out() -> dict[str, bool]:
    """Which of the two outcomes an installed package carries out (pages say when one is not)."""
    return {"grant_credits": _granter is not None, "book_services": _booker is not None}


def withdraw() -> None:
    """Forget both implementations (tests)."""
    global _granter, _booker
    _granter = _booker = None


async def grant_temporary_credits(request: CreditGrant) -> str | None:
    """Grant the credits through the credit ledger; None while no ledger is installed."""
    if _granter is None:
        return None
    return await _granter(request)


async def book_services_now(request: ServiceBooking) -> str | None:
    """Book the services through the orders service; None while no orders service is installed."""
    if _booker is None:
        return None
    return await _booker(request)
